//! What a person does to their own account, whichever page or route asks: prove they know
//! their password (the one login, as their own email, so the limits count and clear as for
//! any login) and set a new one (web.md §5, §6, §7).

use crate::auth::ldap;
use crate::auth::login::{Client, Credentials, Login, LoginRefusal, Method};
use crate::auth::policy;
use crate::error::ApiError;
use crate::store::limits::username_key;
use crate::store::{AuditEntry, Realm, StoreError, User};

/// Why a password was not accepted, in the order web.md §5 checks, or the store failed.
#[derive(Debug)]
pub enum PasswordRefusal {
    ManagedByLdap,
    /// Seconds until the limits have room again.
    TooManyAttempts(f64),
    WrongPassword,
    TooWeak,
    Store(StoreError),
}

impl From<StoreError> for PasswordRefusal {
    fn from(e: StoreError) -> PasswordRefusal {
        PasswordRefusal::Store(e)
    }
}

impl From<PasswordRefusal> for ApiError {
    /// The API's answers (web.md §5).
    fn from(refusal: PasswordRefusal) -> ApiError {
        match refusal {
            PasswordRefusal::ManagedByLdap => ApiError::password_managed_by_ldap(),
            PasswordRefusal::TooManyAttempts(retry_after) => {
                ApiError::too_many_attempts(retry_after)
            }
            PasswordRefusal::WrongPassword => ApiError::wrong_old_password(),
            PasswordRefusal::TooWeak => ApiError::new_password_too_weak(),
            PasswordRefusal::Store(e) => ApiError::from(e),
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
///
/// The one re-confirmation of a signed-in person before a change (web.md §4, §7). A user
/// without a password (made by an identity provider, when that lands) will re-confirm here
/// with their current factor, or without one with a provider sign-in of the last 5 minutes.
pub fn confirm_password(
    login: &Login<'_>,
    realm: &Realm,
    user: &User,
    password: &str,
    client: Client<'_>,
) -> Result<String, PasswordRefusal> {
    let credentials = Credentials {
        username: &user.delivery_email,
        password,
    };
    let checked = login.login(realm, credentials, client, Method::Reconfirm)?;
    match checked.outcome {
        Ok(success) if success.user.id == user.id => Ok(success.api_key),
        Ok(_) => Err(PasswordRefusal::WrongPassword),
        Err(LoginRefusal::RateLimited { retry_after }) => {
            Err(PasswordRefusal::TooManyAttempts(retry_after))
        }
        // Password auth off, a hash that must be reset, a directory that is down: no
        // password is right then (web.md §5, check 3).
        Err(_) => Err(PasswordRefusal::WrongPassword),
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
) -> Result<(), PasswordRefusal> {
    let (hash, bucket) = new_hash(login, user, new_password)?;
    login
        .store
        .set_password(user.id, &hash, &bucket, audit)
        .map_err(PasswordRefusal::from)
}

/// The hash of a new password the policy accepts, and the username bucket it clears.
pub fn new_hash(
    login: &Login<'_>,
    user: &User,
    new_password: &str,
) -> Result<(String, String), PasswordRefusal> {
    if policy::check(new_password).is_err() {
        return Err(PasswordRefusal::TooWeak);
    }
    Ok((
        login.hasher.hash(new_password),
        username_key(&user.delivery_email),
    ))
}
