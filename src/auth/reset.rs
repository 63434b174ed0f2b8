//! Password-reset links (web.md §6): who may have one, making one, and finding whose a link
//! is. A link is `/accounts/password/reset/<token>/` with a 256-bit token stored only as its
//! digest; it lives [`DEFAULT_LIFETIME`] unless configured otherwise, never more than
//! [`MAX_LIFETIME`], and a user has at most one, so a newer link kills the older.

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::login::Login;
use crate::auth::{account, token};
use crate::store::{AuditEntry, Bucket, Realm, Rule, Store, StoreResult, User};

/// An hour: long enough for mail that takes a while, short enough that an old message in a
/// mailbox opens nothing. Django's three days is far longer than a person needs.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub const PATH_PREFIX: &str = "/accounts/password/reset/";

pub fn path(token: &str) -> String {
    format!("{PATH_PREFIX}{token}/")
}

/// Why a user may not have a link; every reason gets the same page on the web.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligible {
    RealmDeactivated,
    UserDeactivated,
    PasswordAuthOff,
    ManagedByLdap,
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ineligible::RealmDeactivated => "the realm is deactivated",
            Ineligible::UserDeactivated => "the user is deactivated",
            Ineligible::PasswordAuthOff => "the realm does not check local passwords",
            Ineligible::ManagedByLdap => "the password is managed in LDAP",
        })
    }
}

/// Zulip's order: email auth off, LDAP's address, deactivated realm, deactivated user.
pub fn eligibility(realm: &Realm, user: &User) -> Result<(), Ineligible> {
    if !realm.email_backend() {
        Err(Ineligible::PasswordAuthOff)
    } else if account::managed_by_ldap(realm, user) {
        Err(Ineligible::ManagedByLdap)
    } else if realm.deactivated {
        Err(Ineligible::RealmDeactivated)
    } else if !user.is_active {
        Err(Ineligible::UserDeactivated)
    } else {
        Ok(())
    }
}

/// A fresh link's token for `user`, replacing any older one.
pub fn issue(store: &Store, user: &User, now: f64, lifetime: Duration) -> StoreResult<String> {
    let (secret, digest) = token::fresh();
    store.replace_reset_link(user.id, &digest, now, now + lifetime.as_secs_f64())?;
    Ok(secret)
}

/// The user a live link opens, if the link is one of `realm`'s (it works only on its own
/// realm's host) and its user may still reset.
pub fn holder(store: &Store, realm: &Realm, token: &str, now: f64) -> StoreResult<Option<User>> {
    if !token::is_well_formed(token) {
        return Ok(None);
    }
    let Some(user) = store.reset_link_user(&token::digest(token), now)? else {
        return Ok(None);
    };
    Ok((user.realm_id == realm.id && eligibility(realm, &user).is_ok()).then_some(user))
}

/// Sets `user`'s new password through their link `token`, taking the link in the same
/// transaction (web.md §6): false, with nothing changed, if another request used it first
/// or it expired since [`holder`] found it.
pub fn set_password(
    login: &Login<'_>,
    user: &User,
    token: &str,
    new_password: &str,
    audit: &AuditEntry,
) -> Result<bool, account::PasswordRefusal> {
    let (hash, bucket) = account::new_hash(login, user, new_password)?;
    let digest = token::digest(token);
    Ok(login
        .store
        .reset_password(&digest, crate::clock::now(), user.id, &hash, &bucket, audit)?)
}

/// Zulip's limits on reset requests (web.md §6): per email address 2 an hour and 5 a day,
/// per client address 5 a day. Every request that is not refused counts toward all three,
/// whatever the address, so the limits reveal nothing about accounts.
const EMAIL_HOURLY: Rule = Rule {
    limit: 2,
    window: 3600.0,
};
const EMAIL_DAILY: Rule = Rule {
    limit: 5,
    window: 86_400.0,
};
const ADDRESS_DAILY: Rule = EMAIL_DAILY;

/// The longest window above: the pruner keeps events this long.
pub const LONGEST_LIMIT_WINDOW: f64 = 86_400.0;

/// Whether a reset request for `email` from `client` is within the limits; if so it is
/// counted, atomically.
pub fn request_allowed(
    store: &Store,
    email: &str,
    client: Option<IpAddr>,
    now: f64,
) -> StoreResult<bool> {
    let email = email.trim().to_lowercase();
    let bucket = |key: String, rule| Bucket { key, rule };
    let mut buckets = vec![
        bucket(format!("reset-hour:{email}"), EMAIL_HOURLY),
        bucket(format!("reset-day:{email}"), EMAIL_DAILY),
    ];
    // An unknown address shares one bucket: the limit fails closed (wire.md §8.1).
    let address = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    buckets.push(bucket(format!("reset-addr:{address}"), ADDRESS_DAILY));
    store.count_if_room(&buckets, now)
}
