//! What a person does to their own account, whichever page or route asks: prove they know
//! their password (the one login, as their own email, so the limits count and clear as for
//! any login) and set a new one (web.md §5, §6, §7).

use crate::auth::ldap;
use crate::auth::login::{self, Client, Credentials, Login, Method};
use crate::auth::policy;
use crate::error::ApiError;
use crate::store::limits::username_key;
use crate::store::{AuditEntry, Realm, StoreError, User};

/// Why a password was not accepted, in the order web.md §5 checks, or the store failed.
#[derive(Debug)]
pub enum Refusal {
    ManagedByLdap,
    /// Seconds until the limits have room again.
    TooManyAttempts(f64),
    WrongPassword,
    TooWeak,
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
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

/// Checks that `password` is the user's, as a login with their email: the limits refuse
/// first and count the attempt, a wrong password stays counted, and a right one clears the
/// username's bucket. Returns the user's key (minted if it is their first).
pub fn confirm_password(
    login: &Login<'_>,
    realm: &Realm,
    user: &User,
    password: &str,
    client: Client<'_>,
) -> Result<String, Refusal> {
    let credentials = Credentials {
        username: &user.delivery_email,
        password,
    };
    let checked = login.login(realm, credentials, client, Method::Reconfirm)?;
    match checked.outcome {
        Ok(success) if success.user.id == user.id => Ok(success.api_key),
        Ok(_) => Err(Refusal::WrongPassword),
        Err(login::Refusal::RateLimited { retry_after }) => {
            Err(Refusal::TooManyAttempts(retry_after))
        }
        // Password auth off, a hash that must be reset, a directory that is down: no
        // password is right then (web.md §5, check 3).
        Err(_) => Err(Refusal::WrongPassword),
    }
}

/// Sets a new password the policy accepts, in one durable transaction of the store's: the
/// hash replaced, the username's limit cleared, the user's sessions and reset link ended,
/// `audit` written.
pub fn set_password(
    login: &Login<'_>,
    user: &User,
    new_password: &str,
    audit: &AuditEntry,
) -> Result<(), Refusal> {
    let (hash, bucket) = new_hash(login, user, new_password)?;
    login
        .store
        .set_password(user.id, &hash, &bucket, audit)
        .map_err(Refusal::from)
}

/// The hash of a new password the policy accepts, and the username bucket it clears.
pub fn new_hash(
    login: &Login<'_>,
    user: &User,
    new_password: &str,
) -> Result<(String, String), Refusal> {
    if policy::check(new_password).is_err() {
        return Err(Refusal::TooWeak);
    }
    Ok((
        login.hasher.hash(new_password),
        username_key(&user.delivery_email),
    ))
}
