//! The end of a successful password check, as one engine transaction: what the caller
//! verified, and what the engine found when it looked again.

use super::keys::NewDeviceKey;
use super::limits::Reservation;
use super::model::{AuditEntry, Realm, User};

/// Everything that ends a login whose credentials were verified, done by the engine in one
/// durable transaction (wire.md §5.2 steps 11 and 12, and §9.1): the row is read again,
/// and nothing is written unless it still holds what was verified.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishLogin<'a> {
    pub user_id: i64,
    /// The stored hash the password was verified against; `None` when no local hash was
    /// verified (an LDAP or a dev login), and then the hash is not compared.
    pub verified_hash: Option<&'a str>,
    /// An upgraded hash, written only if the row still holds `verified_hash`.
    pub rehash: Option<&'a str>,
    /// A freshly minted key (auth::key), stored only if the user has none yet; or, with
    /// `device`, the device's own key, always stored (as its digest) and answered.
    pub new_key: &'a str,
    /// Keys per device (wire.md §9.5): the new key's row.
    pub device: Option<NewDeviceKey<'a>>,
    /// The username bucket a success clears.
    pub clear_bucket: Option<&'a str>,
    /// The address bucket's place held during verification, released by a success.
    pub release: Option<Reservation>,
    /// The success row; a `key_minted` row with the same context follows it if the key was
    /// minted.
    pub audit: &'a AuditEntry,
}

impl FinishLogin<'_> {
    /// Why the login must end with nothing written, judged on the user's row and realm as
    /// the engine read them again inside its transaction; `None` when it may finish.
    pub fn changed_since_verified(&self, user: &User, realm: &Realm) -> Option<LoginEnd> {
        if let Some(verified) = self.verified_hash
            && user.password.as_deref() != Some(verified)
        {
            Some(LoginEnd::PasswordChanged)
        } else if realm.deactivated {
            Some(LoginEnd::RealmDeactivated)
        } else if !user.is_active {
            Some(LoginEnd::UserDeactivated)
        } else {
            None
        }
    }
}

/// What the engine found in the transaction that ends a login.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginEnd {
    /// Done: the user as stored now, their current key, and whether this login minted it.
    Done {
        user: User,
        api_key: String,
        minted: bool,
    },
    /// The password changed while it was verified: what was verified is no longer the
    /// password. Nothing was written.
    PasswordChanged,
    /// The user was deactivated meanwhile. Nothing was written.
    UserDeactivated,
    /// The realm was deactivated meanwhile. Nothing was written.
    RealmDeactivated,
    /// The user is gone. Nothing was written.
    UserGone,
}
