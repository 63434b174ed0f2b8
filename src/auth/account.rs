//! What a person does to their own account, whichever page or route asks: prove they know
//! their password (the one login, as their own email, so the limits count and clear as for
//! any login) and set a new one (web.md §5, §6, §7).

use crate::auth::Origin;
use crate::auth::ldap;
use crate::auth::login::{Client, Credentials, Login, LoginRefusal, Method};
use crate::auth::policy;
use crate::auth::second_factor;
use crate::clock;
use crate::error::ApiError;
use crate::store::limits::username_key;
use crate::store::{AuditEntry, AuditEvent, Realm, StoreError, User};

/// Why a password was not accepted, in the order web.md §5 checks, or the store failed.
#[derive(Debug)]
pub enum PasswordRefusal {
    ManagedByLdap,
    /// Seconds until the limits have room again.
    TooManyAttempts(f64),
    WrongPassword,
    TooWeak,
    /// A user without a password whose sign-in is not recent enough to re-confirm, and who
    /// gave no code of a second factor.
    SignInAgain,
    /// A user without a password gave a wrong code of their second factor.
    WrongCode,
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
            PasswordRefusal::WrongPassword
            | PasswordRefusal::SignInAgain
            | PasswordRefusal::WrongCode => ApiError::wrong_old_password(),
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
/// The one re-confirmation of a signed-in person before a change (web.md §4, §7); for a
/// user without a password, [`reconfirm`].
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

/// Whether the user has a password to re-confirm with: a stored hash, or the directory's.
pub fn has_password(realm: &Realm, user: &User) -> bool {
    user.password.is_some() || managed_by_ldap(realm, user)
}

/// How recent a sign-in re-confirms a user without a password (web.md §10.5).
pub const RECONFIRM_SECONDS: f64 = 300.0;

/// A signed-in person's re-confirmation before a change on the account page: their password,
/// or for a user without one (made by an identity provider) a sign-in of the last
/// [`RECONFIRM_SECONDS`] through their provider, or a code of their second factor, checked
/// as a sign-in's code is (both limits, a wrong one counted). `password` is the field that
/// holds the one or the other; `signed_in_at` is when the session began. Returns the user's
/// key, as [`confirm_password`] does.
pub fn reconfirm(
    login: &Login<'_>,
    realm: &Realm,
    user: &User,
    password: &str,
    signed_in_at: Option<f64>,
    client: Client<'_>,
) -> Result<String, PasswordRefusal> {
    if has_password(realm, user) {
        return confirm_password(login, realm, user, password, client);
    }
    if signed_in_at.is_none_or(|at| clock::now() - at > RECONFIRM_SECONDS) {
        if !password.is_empty() && second_factor::has_totp(login.store, user)? {
            return reconfirm_by_code(login, realm, user, password, client);
        }
        return Err(PasswordRefusal::SignInAgain);
    }
    let email = user.delivery_email.clone();
    let checked = login.vouched(realm, Method::Reconfirm, client, || Ok(email))?;
    match checked.outcome {
        Ok(success) if success.user.id == user.id => Ok(success.api_key),
        Err(LoginRefusal::RateLimited { retry_after }) => {
            Err(PasswordRefusal::TooManyAttempts(retry_after))
        }
        _ => Err(PasswordRefusal::SignInAgain),
    }
}

/// A user without a password re-confirms with `code`, of their second factor.
fn reconfirm_by_code(
    login: &Login<'_>,
    realm: &Realm,
    user: &User,
    code: &str,
    client: Client<'_>,
) -> Result<String, PasswordRefusal> {
    let email = user.delivery_email.clone();
    let first = login.vouched_first(realm, Method::Reconfirm, client, || Ok(Ok(email)))?;
    let verified = match first.outcome {
        Ok(verified) if verified.user.id == user.id => login.defer(verified),
        Err(LoginRefusal::RateLimited { retry_after }) => {
            return Err(PasswordRefusal::TooManyAttempts(retry_after));
        }
        _ => return Err(PasswordRefusal::SignInAgain),
    };
    let store = login.store;
    let context = client.audit(AuditEvent::TotpUsed, realm, Some(user.id));
    let username = &user.delivery_email;
    let checked = login.second_factor(realm, username, verified, client, |user| {
        let right = second_factor::check_code(store, realm, user, code, Origin::Web, &context)?;
        Ok(right.then_some(()))
    })?;
    match checked.outcome {
        Ok((success, ())) => Ok(success.api_key),
        Err(LoginRefusal::RateLimited { retry_after }) => {
            Err(PasswordRefusal::TooManyAttempts(retry_after))
        }
        Err(_) => Err(PasswordRefusal::WrongCode),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::tests::{PASSWORD, setup};
    use crate::auth::ratelimit::RateLimits;
    use crate::auth::totp::Secret;
    use crate::store::{NewUser, Role};

    /// Issue 20 item 3: a user without a password re-confirms with a sign-in of the last
    /// five minutes, never with an older one or none; a user with one, with it.
    #[test]
    fn a_user_without_a_password_reconfirms_with_a_recent_sign_in() {
        let (_dir, store, hasher, realm) = setup();
        let login = Login {
            store: &store,
            hasher: &hasher,
            limits: RateLimits::default(),
        };
        let made = NewUser {
            email: "sso@example.com".into(),
            full_name: String::new(),
            role: Role::Member,
            password: None,
            is_active: true,
            api_key: None,
        };
        store.create_users(realm.id, &[made], "t").unwrap();
        let sso = store.require_user(&realm, "sso@example.com").unwrap();
        let client = Client::default();
        let now = clock::now();
        let again = |at: Option<f64>| reconfirm(&login, &realm, &sso, "", at, client);
        assert!(matches!(again(None), Err(PasswordRefusal::SignInAgain)));
        assert!(matches!(
            again(Some(now - RECONFIRM_SECONDS - 1.0)),
            Err(PasswordRefusal::SignInAgain)
        ));
        let key = again(Some(now - 10.0)).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(again(Some(now - 10.0)).unwrap(), key, "the user's one key");

        // With a second factor, a code of it stands in for the sign-in: counted when wrong.
        let secret = Secret::generate();
        let audit = AuditEntry::new(AuditEvent::TotpEnrolled, Some(realm.id), Some(sso.id));
        second_factor::enrol(
            &store,
            &realm,
            &sso,
            &secret,
            None,
            Origin::Operator,
            &audit,
        )
        .unwrap();
        let stale = Some(now - RECONFIRM_SECONDS - 1.0);
        let right = secret.code_at(now as u64);
        let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
        let by_code = |code| reconfirm(&login, &realm, &sso, code, stale, client);
        assert!(matches!(by_code(""), Err(PasswordRefusal::SignInAgain)));
        assert!(matches!(by_code(&wrong), Err(PasswordRefusal::WrongCode)));
        assert_eq!(by_code(&right).unwrap(), key);
        assert!(
            matches!(by_code(&right), Err(PasswordRefusal::WrongCode)),
            "used once"
        );

        // A user with a password gives it, however recent the sign-in.
        let iago = store.require_user(&realm, "iago@example.com").unwrap();
        let with = |password| reconfirm(&login, &realm, &iago, password, Some(now), client);
        assert!(matches!(with("wrong"), Err(PasswordRefusal::WrongPassword)));
        assert!(with(PASSWORD).is_ok());
    }
}
