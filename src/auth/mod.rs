//! Authentication: the login, the browser sign-in's steps, password hashes, LDAP, API keys,
//! rate limits and the second factor.

pub mod account;
pub mod basic;
pub mod devices;
pub mod enrolment;
pub mod jwt;
pub mod key;
pub mod ldap;
pub mod login;
pub mod notice;
pub mod oidc;
pub mod oidc_login;
pub mod passkey;
pub mod passkeys;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod recovery;
pub mod reset;
pub mod retention;
pub mod second_factor;
pub mod session;
pub mod signin;
pub mod token;
pub mod totp;

use crate::store::Realm;

/// Whether anyone can sign in to `realm`: a password backend is in force (local hashes or a
/// configured directory). Without one, every login gets PASSWORD_AUTH_DISABLED (wire.md §4.4),
/// the browser's included.
pub fn accepts_passwords(realm: &Realm) -> bool {
    realm.email_backend() || realm.ldap_backend().is_some()
}

/// Who changed or used a second factor, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Operator,
    Web,
}

impl Origin {
    pub fn detail(self) -> &'static str {
        match self {
            Origin::Operator => "by operator",
            Origin::Web => "web sign-in",
        }
    }
}
