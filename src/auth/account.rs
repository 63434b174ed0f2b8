//! What a person does to their own account, whichever page or route asks: prove they know
//! their password, and set a new one. Both count and clear the per-username limit as a login
//! does, and a new password ends what the old one opened (web.md §5, §6).

use crate::auth::password::{Hasher, Verdict};
use crate::auth::ratelimit::RateLimits;
use crate::auth::{ldap, policy};
use crate::clock;
use crate::error::ApiError;
use crate::store::{AuditEntry, Realm, Store, User};

/// Why a password was not accepted, in the order web.md §5 checks, or the store failed.
#[derive(Debug)]
pub enum Refusal {
    ManagedByLdap,
    /// Seconds until the per-username limit has room again.
    TooManyAttempts(f64),
    WrongPassword,
    TooWeak,
    Store(rusqlite::Error),
}

impl From<rusqlite::Error> for Refusal {
    fn from(e: rusqlite::Error) -> Refusal {
        Refusal::Store(e)
    }
}

impl From<Refusal> for ApiError {
    /// The API's answers (web.md §5).
    fn from(refusal: Refusal) -> ApiError {
        match refusal {
            Refusal::ManagedByLdap => ApiError::password_managed_by_ldap(),
            Refusal::TooManyAttempts(retry_after) => ApiError::too_many_attempts(retry_after),
            Refusal::WrongPassword => ApiError::wrong_old_password(),
            Refusal::TooWeak => ApiError::new_password_too_weak(),
            Refusal::Store(e) => ApiError::from(e),
        }
    }
}

/// Whether the directory, not this server, holds the user's password.
pub fn managed_by_ldap(realm: &Realm, user: &User) -> bool {
    realm
        .ldap_backend()
        .is_some_and(|settings| ldap::manages_email(settings, &user.delivery_email))
}

/// Checks that `password` is the user's, counting the attempt against the per-username limit
/// and refusing a full bucket before the password is looked at. A wrong password leaves the
/// attempt counted; a right one leaves clearing to the caller (it clears on success).
/// Always costs one argon2 verification unless refused before it.
pub fn confirm_password(
    store: &Store,
    hasher: &Hasher,
    limits: &RateLimits,
    realm: &Realm,
    user: &User,
    password: &str,
) -> Result<(), Refusal> {
    if managed_by_ldap(realm, user) {
        return Err(Refusal::ManagedByLdap);
    }
    let quota = limits.attempt(store, &user.delivery_email, clock::now())?;
    if let Some(retry_after) = quota.and_then(|q| q.retry_after) {
        return Err(Refusal::TooManyAttempts(retry_after));
    }
    // With password auth off, no password is right (web.md §5, check 3).
    let stored = if realm.email_backend() {
        user.password.as_deref()
    } else {
        None
    };
    match hasher.verify(stored, password) {
        Verdict::Match { .. } => Ok(()),
        Verdict::Mismatch => Err(Refusal::WrongPassword),
    }
}

/// Sets a new password the policy accepts, in one durable transaction: the hash replaced,
/// the reset link and every other session ended, the limit of every spelling of the username cleared, `audit`
/// written. `keep_session` is the digest of the session that made the change, if any.
pub fn set_password(
    store: &Store,
    hasher: &Hasher,
    user: &User,
    new_password: &str,
    keep_session: Option<&str>,
    audit: &AuditEntry,
) -> Result<(), Refusal> {
    if policy::check(new_password).is_err() {
        return Err(Refusal::TooWeak);
    }
    let hash = hasher.hash(new_password);
    store.durably(|store| {
        store.change_password(user.id, &hash, keep_session)?;
        store.clear_username_buckets(&user.delivery_email)?;
        store.audit(audit)
    })?;
    Ok(())
}
