//! The password login, once, for every way in: the API's `fetch_api_key` and the web
//! sign-in. It walks wire.md §5.2 from step 4 (the realm is the caller's) to step 12 and
//! answers in domain terms; callers map a [`LoginRefusal`] to their own wire or page.
//!
//! It has two halves, so a second factor can sit between them:
//!
//! 1. [`Login::verify`]: email format, both rate limits, the backends' checks, one password
//!    verification (wire.md §10.4), and the audit row of a refusal. A [`Verified`] login has
//!    cleared no bucket and handed out nothing.
//! 2. [`Login::finish`]: one durable store transaction that reads the account again, writes
//!    the upgraded hash only over the verified one, reads or mints the key, clears the
//!    username bucket, releases the address reservation and audits the success. If the
//!    password, the account or the realm changed since the verification, it refuses instead
//!    and writes nothing but the refusal's audit row.
//!
//! [`Login::login`] runs both. Before them, a thread that must never hash (a front thread of
//! the pool) may take [`Login::screen`]: steps 4 and 5 at a look, which answer the refusals
//! given before any hash (a full bucket: the per-username 429) and pass every other attempt
//! on to a hashing thread's [`Login::verify`], having recorded nothing.
//!
//! A caller with a second factor to check calls [`Login::verify`], then [`Login::defer`]
//! (the password was right: its address reservation is released, the username bucket is
//! left as it is), keeps the [`Verified`] until a code comes, and hands it to
//! [`Login::second_factor`], which counts the code against both limits as a password attempt
//! is counted and finishes the login only when the caller's check accepts it.

use std::borrow::Cow;
use std::net::IpAddr;

use log::warn;

use crate::auth::devices;
use crate::auth::key;
use crate::auth::ldap::{self, Outcome};
use crate::auth::notice::{LoginNotice, Told};
use crate::auth::password::{self, Hasher, Verdict};
use crate::auth::policy;
use crate::auth::ratelimit::{self, Gate, Quota, RateLimits};
use crate::clock;
use crate::email;
use crate::metrics;
use crate::store::limits::username_key;
use crate::store::{
    AuditEntry, AuditEvent, FinishLogin, LdapSettings, LoginEnd, NewDeviceKey, NewUser, Realm,
    Reservation, Role, Store, StoreError, StoreResult, User,
};

/// Longer User-Agent strings are cut before they are audited.
const MAX_AUDITED_USER_AGENT: usize = 256;

/// What was typed.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Who is asking, for the address limit and the audit trail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client<'a> {
    pub address: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// The way in, as the audit trail tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `fetch_api_key`.
    Api,
    /// The web sign-in form.
    Web,
    /// `dev_fetch_api_key`: no password at all.
    Dev,
    /// A signed-in person or a key's holder entering their password again, to see their
    /// key or to change their password (web.md §5, §7).
    Reconfirm,
    /// `jwt/fetch_api_key`: a token signed with the realm's key (wire.md §17).
    Jwt,
    /// A sign-in through the realm's OpenID provider (web.md §10).
    Oidc,
    /// A passkey without a username (web.md §9): both factors at once.
    Passkey,
}

impl Method {
    /// The first step of a browser sign-in whose label a stored step kept (web.md §10.2):
    /// the provider's, else the password form's.
    pub fn of_first_step(label: &str) -> Method {
        if label == Method::Oidc.label() {
            Method::Oidc
        } else {
            Method::Web
        }
    }

    /// The `method` label of the login metrics: a password entered again on the account
    /// page or for a password change is not a sign-in, so it has a label of its own.
    pub fn label(self) -> &'static str {
        match self {
            Method::Api => "api",
            Method::Web => "web",
            Method::Dev => "dev",
            Method::Reconfirm => "reconfirm",
            Method::Jwt => "jwt",
            Method::Oidc => "oidc",
            Method::Passkey => "passkey",
        }
    }

    /// The method word of a device's key made by this login (wire.md §9.5); `None` for a
    /// password entered again, which makes no key. `local` tells a local hash from LDAP.
    fn key_method(self, local: bool) -> Option<&'static str> {
        match self {
            Method::Api if local => Some("password"),
            Method::Api => Some("ldap"),
            Method::Web => Some("web"),
            Method::Jwt => Some("jwt"),
            Method::Oidc => Some("oidc"),
            Method::Dev => Some("dev"),
            Method::Passkey => Some("passkey"),
            Method::Reconfirm => None,
        }
    }

    fn detail(self) -> Option<&'static str> {
        match self {
            Method::Api => None,
            Method::Web => Some("web sign-in"),
            Method::Dev => Some("dev login"),
            Method::Reconfirm => Some("password entered again"),
            Method::Jwt => Some("JWT login"),
            Method::Oidc => Some("OpenID Connect sign-in"),
            Method::Passkey => Some("passkey sign-in"),
        }
    }
}

/// Why a login was refused. Callers choose the words; [`LoginRefusal::reason`] is the stable
/// code for logs and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoginRefusal {
    /// Step 4: not an email address (and the realm has no LDAP).
    InvalidEmail,
    /// Step 5: over the address or the username limit.
    RateLimited {
        retry_after: f64,
    },
    /// Step 6.
    PasswordAuthDisabled,
    /// Step 8: no such user in this realm (or the directory knows none).
    UnknownUser,
    /// Steps 7 and 10: empty, wrong or unusable password.
    WrongPassword,
    /// The LDAP directory could not be asked.
    DirectoryUnavailable,
    /// The password changed while it was being verified.
    PasswordChanged,
    /// A second factor's code that was not accepted.
    WrongCode,
    /// A passkey's answer that was not accepted (web.md §9).
    WrongPasskey,
    /// Step 9.
    RealmDeactivated,
    UserDeactivated,
    /// Step 11: the right password, whose hash needs upgrading, fails the policy.
    ResetRequired,
    /// A voucher (a signed token) that does not hold (wire.md §17, row 4).
    BadToken,
    /// A voucher that names no email (wire.md §17, row 5).
    NoEmail,
    /// A vouched-for email that has an account only in another realm (wire.md §17, row 6).
    OtherRealm,
    /// The identity provider's sign-in did not end in a verified email (web.md §10.2).
    ProviderFailed,
}

impl LoginRefusal {
    /// The stable code of logs and audit rows; `None` before step 5, which is not logged as
    /// an authentication failure.
    pub fn reason(self) -> Option<&'static str> {
        Some(match self {
            LoginRefusal::InvalidEmail => return None,
            LoginRefusal::RateLimited { .. } => "RATE_LIMIT_HIT",
            LoginRefusal::PasswordAuthDisabled => "PASSWORD_AUTH_DISABLED",
            LoginRefusal::UnknownUser => "UNKNOWN_USER",
            LoginRefusal::WrongPassword => "WRONG_PASSWORD",
            LoginRefusal::DirectoryUnavailable => "LDAP_UNAVAILABLE",
            LoginRefusal::PasswordChanged => "PASSWORD_CHANGED",
            LoginRefusal::WrongCode => "WRONG_CODE",
            LoginRefusal::WrongPasskey => "WRONG_PASSKEY",
            LoginRefusal::RealmDeactivated => "REALM_DEACTIVATED",
            LoginRefusal::UserDeactivated => "USER_DEACTIVATED",
            LoginRefusal::ResetRequired => "PASSWORD_RESET_REQUIRED",
            LoginRefusal::BadToken => "BAD_TOKEN",
            LoginRefusal::NoEmail => "NO_EMAIL",
            LoginRefusal::OtherRealm => "OTHER_REALM",
            LoginRefusal::ProviderFailed => "IDP_FAILED",
        })
    }

    /// The `outcome` label of the login metrics: `rate_limited`, `invalid_email` or the
    /// reason code in lowercase.
    pub fn label(self) -> &'static str {
        match self {
            LoginRefusal::InvalidEmail => "invalid_email",
            LoginRefusal::RateLimited { .. } => "rate_limited",
            LoginRefusal::PasswordAuthDisabled => "password_auth_disabled",
            LoginRefusal::UnknownUser => "unknown_user",
            LoginRefusal::WrongPassword => "wrong_password",
            LoginRefusal::DirectoryUnavailable => "ldap_unavailable",
            LoginRefusal::PasswordChanged => "password_changed",
            LoginRefusal::WrongCode => "wrong_code",
            LoginRefusal::WrongPasskey => "wrong_passkey",
            LoginRefusal::RealmDeactivated => "realm_deactivated",
            LoginRefusal::UserDeactivated => "user_deactivated",
            LoginRefusal::ResetRequired => "password_reset_required",
            LoginRefusal::BadToken => "bad_token",
            LoginRefusal::NoEmail => "no_email",
            LoginRefusal::OtherRealm => "other_realm",
            LoginRefusal::ProviderFailed => "idp_failed",
        }
    }

    /// The refusals that tell nothing but "wrong credentials" (Zulip's one E11), and bad
    /// tokens and failed sign-ins through a provider, which count against the client's
    /// address.
    pub fn is_wrong_credentials(self) -> bool {
        matches!(
            self,
            LoginRefusal::UnknownUser
                | LoginRefusal::WrongPassword
                | LoginRefusal::DirectoryUnavailable
                | LoginRefusal::PasswordChanged
                | LoginRefusal::WrongCode
                | LoginRefusal::WrongPasskey
                | LoginRefusal::BadToken
                | LoginRefusal::ProviderFailed
        )
    }

    /// Refusals by a check that costs an attacker nothing are kept out of the audit trail,
    /// which they could otherwise flood.
    fn is_audited(self) -> bool {
        !matches!(
            self,
            LoginRefusal::InvalidEmail | LoginRefusal::RateLimited { .. }
        )
    }
}

/// A login's answer with what every answer past step 5 carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T> {
    pub outcome: Result<T, LoginRefusal>,
    /// The username bucket after this attempt (the `X-RateLimit-*` headers).
    pub quota: Option<Quota>,
    /// The account the username named, once known (for the log).
    pub user_id: Option<i64>,
}

/// A password found right, not yet a login: nothing handed out, no bucket cleared. It holds
/// a place in the address bucket until it is finished or deferred; dropped, that place
/// counts as a failure until the window passes.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub user: User,
    method: Method,
    /// The stored hash that was verified (`None` for LDAP): the finish compares it.
    verified_hash: Option<String>,
    rehash: Option<String>,
    username_key: Option<String>,
    reservation: Option<Reservation>,
}

/// What a [`Verified`] login keeps while a second factor is awaited, in a form the store
/// can hold between requests, so that any instance can take it up (web.md §3).
#[derive(Debug, Clone, PartialEq)]
pub struct Deferred {
    pub user_id: i64,
    /// As typed: its bucket counts the codes, and the finish clears it.
    pub username: String,
    pub verified_hash: Option<String>,
    pub rehash: Option<String>,
    /// The first step's method: the finish after the second factor is counted with it.
    pub method: Method,
}

impl Verified {
    /// What to keep of this login until its second factor is accepted; see [`Login::defer`].
    pub fn deferred(&self, username: &str) -> Deferred {
        Deferred {
            user_id: self.user.id,
            username: username.to_owned(),
            verified_hash: self.verified_hash.clone(),
            rehash: self.rehash.clone(),
            method: self.method,
        }
    }
}

/// A finished login.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// As stored at the finish.
    pub user: User,
    pub api_key: String,
    /// The mails this login is due (web.md §8.1, §4.1): the caller posts them to the reset
    /// desk after its answer, when mail is set up.
    pub notices: Vec<LoginNotice>,
}

/// What a login needs of the worker that runs it.
pub struct Login<'a> {
    pub store: &'a Store,
    pub hasher: &'a Hasher,
    pub limits: RateLimits,
}

impl Login<'_> {
    /// Both halves: verify, then finish.
    pub fn login(
        &self,
        realm: &Realm,
        credentials: Credentials<'_>,
        client: Client<'_>,
        method: Method,
    ) -> StoreResult<Checked<Success>> {
        let checked = self.verify(realm, credentials, client, method)?;
        self.finished(realm, checked, client)
    }

    /// A first factor's answer finished, if it was right.
    fn finished(
        &self,
        realm: &Realm,
        checked: Checked<Verified>,
        client: Client<'_>,
    ) -> StoreResult<Checked<Success>> {
        let outcome = match checked.outcome {
            Ok(verified) => self.finish(realm, verified, client)?,
            Err(refusal) => Err(refusal),
        };
        Ok(Checked {
            outcome,
            quota: checked.quota,
            user_id: checked.user_id,
        })
    }

    /// Steps 4 to 11 of wire.md §5.2. A refusal is audited here.
    pub fn verify(
        &self,
        realm: &Realm,
        credentials: Credentials<'_>,
        client: Client<'_>,
        method: Method,
    ) -> StoreResult<Checked<Verified>> {
        let Credentials { username, password } = credentials;
        if let Some(refused) = self.not_an_email(realm, method, username, client)? {
            return Ok(refused);
        }
        let Admitted {
            quota,
            reservation,
            username_key,
        } = match self.admit(realm, method, username, client, None)? {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(refused),
        };
        let mut user_id = None;
        let checked = if method == Method::Api && realm.require_2fa {
            // Phone logins go through the browser, which asks for the second factor.
            Ok(Err(LoginRefusal::PasswordAuthDisabled))
        } else {
            self.check(realm, username, password, &mut user_id)
        };
        let checked = checked.map(|decided| {
            decided.map(|verified| Verified {
                method,
                username_key,
                ..verified
            })
        });
        let outcome = self.settle(realm, method, checked, user_id, reservation, client)?;
        Ok(Checked {
            outcome,
            quota,
            user_id,
        })
    }

    /// Steps 4 and 5 at a look, for a thread that must never hash (a front thread): the
    /// refusal [`Login::verify`] would give before its hash (a username that is no email, a
    /// full bucket), given and settled as `verify` gives it; `None` when the attempt goes on
    /// to `verify`, which admits it for good. Nothing is recorded in either bucket and
    /// nothing is hashed, so a login that goes on pays a read here and no write.
    pub fn screen<T>(
        &self,
        realm: &Realm,
        username: &str,
        client: Client<'_>,
        method: Method,
    ) -> StoreResult<Option<Checked<T>>> {
        if let Some(refused) = self.not_an_email(realm, method, username, client)? {
            return Ok(Some(refused));
        }
        let counted = counted_name(realm, username);
        Ok(
            match self
                .limits
                .refusal(&**self.store, &counted, client.address, clock::now())?
            {
                Some(gate) => self
                    .gated(realm, method, &counted, gate, None, client)?
                    .err(),
                None => None,
            },
        )
    }

    /// Step 4: with LDAP off, the username must be an email (with LDAP on, it may be an LDAP
    /// username). The refusal, settled, if it is not.
    fn not_an_email<T>(
        &self,
        realm: &Realm,
        method: Method,
        username: &str,
        client: Client<'_>,
    ) -> StoreResult<Option<Checked<T>>> {
        if realm.ldap_backend().is_some() || email::is_valid(username) {
            return Ok(None);
        }
        let refusal = LoginRefusal::InvalidEmail;
        self.refused(realm, method, refusal, None, None, client)?;
        Ok(Some(Checked {
            outcome: Err(refusal),
            quota: None,
            user_id: None,
        }))
    }
}

/// A verified login's way to its end: deferred while a second factor is awaited, resumed,
/// and finished.
impl Login<'_> {
    /// The password was right and a second factor is still to come: the address
    /// reservation is given back (a right password is no failure), nothing else is done.
    pub fn defer(&self, mut verified: Verified) -> Verified {
        if let Some(held) = verified.reservation.take() {
            ratelimit::give_back(&**self.store, held);
        }
        verified
    }

    /// A deferred login taken up again once its second factor is accepted, for
    /// [`Login::finish`], which still refuses if the password or the account changed since.
    pub fn resume(&self, realm: &Realm, deferred: Deferred, user: User) -> Verified {
        Verified {
            user,
            method: deferred.method,
            verified_hash: deferred.verified_hash,
            rehash: deferred.rehash,
            username_key: self
                .limits
                .per_username
                .map(|_| username_key(&counted_name(realm, &deferred.username))),
            reservation: None,
        }
    }

    /// Step 12 and the key (wire.md §9.1), in one store transaction; see the module doc.
    pub fn finish(
        &self,
        realm: &Realm,
        verified: Verified,
        client: Client<'_>,
    ) -> StoreResult<Result<Success, LoginRefusal>> {
        let audit = AuditEntry {
            detail: verified.method.detail().map(str::to_owned),
            ..client.audit(AuditEvent::LoginSuccess, realm, Some(verified.user.id))
        };
        // Keys per device (wire.md §9.5): this login's own key, stored as its digest.
        let key_method = Some(realm)
            .filter(|realm| devices::per_device(realm))
            .and_then(|_| verified.method.key_method(verified.verified_hash.is_some()));
        let user_agent = devices::stored_user_agent(client.user_agent);
        let finished = key::with_fresh_key(|new_key| {
            let key_hash = devices::digest(new_key);
            self.store.finish_login(&FinishLogin {
                user_id: verified.user.id,
                verified_hash: verified.verified_hash.as_deref(),
                rehash: verified.rehash.as_deref(),
                new_key,
                device: key_method.map(|method| NewDeviceKey {
                    key_hash: &key_hash,
                    method,
                    user_agent: user_agent.as_deref(),
                    name: None,
                    now: audit.at,
                    max_live: devices::MAX_LIVE_KEYS,
                }),
                clear_bucket: verified.username_key.as_deref(),
                release: verified.reservation,
                audit: &audit,
            })
        });
        let end = finished.inspect_err(|_| {
            // Rolled back with the rest: a right password is no failure.
            if let Some(held) = verified.reservation {
                ratelimit::give_back(&**self.store, held);
            }
        })?;
        let refusal = match end {
            LoginEnd::Done { user, api_key, .. } => {
                // The one place a login succeeds; every refusal is settled in `refused`.
                metrics::login(verified.method.label(), "success");
                // A dev login and a password entered again are no new login, and the realm's
                // switch is read as the login saw it (web.md §8.1).
                let word = verified.method.key_method(verified.verified_hash.is_some());
                let notices = word
                    .filter(|_| verified.method != Method::Dev && realm.login_mail)
                    .map(|method| LoginNotice {
                        told: Told::Login,
                        realm_id: realm.id,
                        user_id: user.id,
                        email: user.delivery_email.clone(),
                        method,
                        user_agent: user_agent.clone(),
                        client: client.address,
                        at: audit.at,
                    })
                    .into_iter()
                    .collect();
                return Ok(Ok(Success {
                    user,
                    api_key,
                    notices,
                }));
            }
            LoginEnd::PasswordChanged => LoginRefusal::PasswordChanged,
            LoginEnd::UserDeactivated => LoginRefusal::UserDeactivated,
            LoginEnd::RealmDeactivated => LoginRefusal::RealmDeactivated,
            LoginEnd::UserGone => LoginRefusal::UnknownUser,
        };
        self.refused(
            realm,
            verified.method,
            refusal,
            Some(verified.user.id),
            verified.reservation,
            client,
        )?;
        Ok(Err(refusal))
    }

    /// The second step of a login whose password was verified and [deferred](Login::defer):
    /// the code is admitted by both limits as a password attempt is (wire.md §8), `accept`
    /// checks it (`Some` proof of what it accepted, `None` for a wrong code), and only an
    /// accepted code finishes the login. A refused code is audited and counts against the
    /// address; a store fault in the check counts as nothing.
    pub fn second_factor<P>(
        &self,
        realm: &Realm,
        username: &str,
        mut verified: Verified,
        client: Client<'_>,
        accept: impl FnOnce(&User) -> StoreResult<Option<P>>,
    ) -> StoreResult<Checked<(Success, P)>> {
        let user_id = Some(verified.user.id);
        let method = verified.method;
        let Admitted {
            quota, reservation, ..
        } = match self.admit(realm, method, username, client, user_id)? {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(refused),
        };
        let accepted = accept(&verified.user).inspect_err(|_| {
            if let Some(held) = reservation {
                ratelimit::give_back(&**self.store, held);
            }
        })?;
        let outcome = match accepted {
            Some(proof) => {
                verified.reservation = reservation;
                self.finish(realm, verified, client)?
                    .map(|success| (success, proof))
            }
            None => {
                let refusal = LoginRefusal::WrongCode;
                self.refused(realm, method, refusal, user_id, reservation, client)?;
                Err(refusal)
            }
        };
        Ok(Checked {
            outcome,
            quota,
            user_id,
        })
    }
}

/// The logins without a password: someone else vouches for the user (the developer's
/// `dev_fetch_api_key`, a signed token).
impl Login<'_> {
    /// A login without a password (`dev_fetch_api_key`): the account's state is checked
    /// (E8, then E7), then it finishes as any login does.
    pub fn without_password(
        &self,
        realm: &Realm,
        user: User,
        client: Client<'_>,
    ) -> StoreResult<Result<Success, LoginRefusal>> {
        if let Err(refusal) = check_active(realm, &user) {
            self.refused(realm, Method::Dev, refusal, Some(user.id), None, client)?;
            return Ok(Err(refusal));
        }
        let verified = Verified {
            user,
            method: Method::Dev,
            verified_hash: None,
            rehash: None,
            username_key: None,
            reservation: None,
        };
        self.finish(realm, verified, client)
    }

    /// A login vouched for by a signed token (wire.md §17): no password, and no username
    /// to count until the token is read, so only the address limit admits it. `vouch`
    /// checks the token and names the email; a bad token counts against the address. Then
    /// it is a login without a password: the account in this realm, its state (E8, then
    /// E7), and the finish every login has.
    pub fn vouched(
        &self,
        realm: &Realm,
        method: Method,
        client: Client<'_>,
        vouch: impl FnOnce() -> Result<String, LoginRefusal>,
    ) -> StoreResult<Checked<Success>> {
        self.vouched_then(realm, method, client, vouch, |_| Ok(Ok(())))
    }

    /// As [`Login::vouched`], with a last check `accept` once the account is found active
    /// in this realm and the address admitted, just before the finish: where what vouched
    /// is used up (a passkey's counter, web.md §9), a refused login leaves no use behind.
    /// A refusal of `accept` is settled as a wrong voucher's.
    pub fn vouched_then(
        &self,
        realm: &Realm,
        method: Method,
        client: Client<'_>,
        vouch: impl FnOnce() -> Result<String, LoginRefusal>,
        accept: impl FnOnce(&User) -> StoreResult<Result<(), LoginRefusal>>,
    ) -> StoreResult<Checked<Success>> {
        let checked = self.vouched_first(realm, method, client, || Ok(vouch()))?;
        let outcome = match checked.outcome {
            Ok(verified) => {
                let accepted = accept(&verified.user).inspect_err(|_| {
                    if let Some(held) = verified.reservation {
                        ratelimit::give_back(&**self.store, held);
                    }
                })?;
                match accepted {
                    Ok(()) => self.finish(realm, verified, client)?,
                    Err(refusal) => {
                        let user_id = checked.user_id;
                        let held = verified.reservation;
                        self.refused(realm, method, refusal, user_id, held, client)?;
                        Err(refusal)
                    }
                }
            }
            Err(refusal) => Err(refusal),
        };
        Ok(Checked {
            outcome,
            quota: checked.quota,
            user_id: checked.user_id,
        })
    }

    /// The first factor of a login vouched for by someone else, not finished yet: an
    /// identity provider's sign-in, after which a second factor may be due (web.md §10.2).
    /// As [`Login::vouched`], with a `vouch` that may touch the store (a sign-up).
    pub fn vouched_first(
        &self,
        realm: &Realm,
        method: Method,
        client: Client<'_>,
        vouch: impl FnOnce() -> StoreResult<Result<String, LoginRefusal>>,
    ) -> StoreResult<Checked<Verified>> {
        let by_address = Login {
            limits: RateLimits {
                per_username: None,
                ..self.limits
            },
            ..*self
        };
        let Admitted {
            quota, reservation, ..
        } = match by_address.admit(realm, method, "", client, None)? {
            Ok(admitted) => admitted,
            Err(refused) => return Ok(refused),
        };
        let mut user_id = None;
        let decided = match vouch() {
            Ok(Ok(email)) => self.vouched_user(realm, method, &email, &mut user_id),
            Ok(Err(refusal)) => Ok(Err(refusal)),
            Err(fault) => Err(fault),
        };
        let outcome = self.settle(realm, method, decided, user_id, reservation, client)?;
        Ok(Checked {
            outcome,
            quota,
            user_id,
        })
    }

    /// The account a voucher names, in this realm and active.
    fn vouched_user(
        &self,
        realm: &Realm,
        method: Method,
        email: &str,
        user_id: &mut Option<i64>,
    ) -> StoreResult<Result<Verified, LoginRefusal>> {
        let Some(user) = self.store.user_by_email(realm.id, email)? else {
            return Ok(Err(if self.store.email_exists_anywhere(email)? {
                LoginRefusal::OtherRealm
            } else {
                LoginRefusal::UnknownUser
            }));
        };
        *user_id = Some(user.id);
        Ok(check_active(realm, &user).map(|()| Verified {
            user,
            method,
            verified_hash: None,
            rehash: None,
            username_key: None,
            reservation: None,
        }))
    }
}

/// What the limits let through.
struct Admitted {
    quota: Option<Quota>,
    reservation: Option<Reservation>,
    /// The username's bucket, which a success clears.
    username_key: Option<String>,
}

/// The limits' side of every attempt: its admission, and what a refusal settles.
impl Login<'_> {
    /// Step 5 (wire.md §8): both limits admit the attempt under its [counted name](counted_name),
    /// or the rate-limited answer to give.
    fn admit<T>(
        &self,
        realm: &Realm,
        method: Method,
        username: &str,
        client: Client<'_>,
        user_id: Option<i64>,
    ) -> StoreResult<Result<Admitted, Checked<T>>> {
        let counted = counted_name(realm, username);
        let gate = self
            .limits
            .admit(&**self.store, &counted, client.address, clock::now())?;
        self.gated(realm, method, &counted, gate, user_id, client)
    }

    /// What the limits' answer means for an attempt under its counted name: admitted, or the
    /// rate-limited answer, settled.
    fn gated<T>(
        &self,
        realm: &Realm,
        method: Method,
        counted: &str,
        gate: Gate,
        user_id: Option<i64>,
        client: Client<'_>,
    ) -> StoreResult<Result<Admitted, Checked<T>>> {
        Ok(match gate {
            Gate::Refused { retry_after, quota } => {
                let refusal = LoginRefusal::RateLimited { retry_after };
                self.refused(realm, method, refusal, user_id, None, client)?;
                Err(Checked {
                    outcome: Err(refusal),
                    quota,
                    user_id,
                })
            }
            Gate::Admitted { quota, reservation } => Ok(Admitted {
                quota,
                reservation,
                username_key: self.limits.per_username.map(|_| username_key(counted)),
            }),
        })
    }

    /// Settles an attempt the limits admitted: a verified login carries the address
    /// reservation on to its finish, a refusal is [settled](Login::refused), and a store
    /// fault gives the place back, since the attempt was not decided and must not count as
    /// a failure.
    fn settle(
        &self,
        realm: &Realm,
        method: Method,
        checked: StoreResult<Result<Verified, LoginRefusal>>,
        user_id: Option<i64>,
        reservation: Option<Reservation>,
        client: Client<'_>,
    ) -> StoreResult<Result<Verified, LoginRefusal>> {
        match checked {
            Ok(Ok(verified)) => Ok(Ok(Verified {
                reservation,
                ..verified
            })),
            Ok(Err(refusal)) => {
                self.refused(realm, method, refusal, user_id, reservation, client)?;
                Ok(Err(refusal))
            }
            Err(fault) => {
                if let Some(held) = reservation {
                    ratelimit::give_back(&**self.store, held);
                }
                Err(fault)
            }
        }
    }

    /// Settles a refusal, every one of them: counts it, audits it, and settles the address
    /// reservation: a wrong-credentials refusal keeps it (it is that failure's event), any
    /// other gives it back.
    fn refused(
        &self,
        realm: &Realm,
        method: Method,
        refusal: LoginRefusal,
        user_id: Option<i64>,
        reservation: Option<Reservation>,
        client: Client<'_>,
    ) -> StoreResult<()> {
        metrics::login(method.label(), refusal.label());
        if let Some(held) = reservation.filter(|_| !refusal.is_wrong_credentials()) {
            ratelimit::give_back(&**self.store, held);
        }
        if refusal.is_audited() {
            let entry = AuditEntry {
                reason: refusal.reason().map(str::to_owned),
                ..client.audit(AuditEvent::LoginFailure, realm, user_id)
            };
            self.store.audit(&entry)?;
        }
        Ok(())
    }
}

/// The name the per-username limit counts an attempt under (wire.md §8): the username as
/// typed, or in a directory realm what the directory compares of it, so that no spelling
/// the directory matches alike gets a bucket of its own.
fn counted_name<'u>(realm: &Realm, username: &'u str) -> Cow<'u, str> {
    match realm.ldap_backend() {
        Some(settings) => Cow::Owned(ldap::compared_name(settings, username)),
        None => Cow::Borrowed(username),
    }
}

/// The backends' checks: local hashes and LDAP, as Zulip's backends in their order.
impl Login<'_> {
    /// Steps 6 to 11: the user whose password this is.
    fn check(
        &self,
        realm: &Realm,
        username: &str,
        password: &str,
        user_id: &mut Option<i64>,
    ) -> StoreResult<Result<Verified, LoginRefusal>> {
        if !super::accepts_passwords(realm) {
            return Ok(Err(LoginRefusal::PasswordAuthDisabled));
        }
        if password.is_empty() {
            // Wrong for every account; no lookup is made.
            return Ok(Err(LoginRefusal::WrongPassword));
        }
        match realm.ldap_backend() {
            Some(ldap) => self.ldap_user(realm, ldap, username, password, user_id),
            None => self.local_user(realm, username, password, user_id),
        }
    }

    /// Steps 8 to 11 against local hashes. Costs exactly one argon2 verification, whatever
    /// the outcome (wire.md §10.4).
    fn local_user(
        &self,
        realm: &Realm,
        username: &str,
        password: &str,
        user_id: &mut Option<i64>,
    ) -> StoreResult<Result<Verified, LoginRefusal>> {
        let Some(user) = self.store.user_by_email(realm.id, username)? else {
            self.hasher.spend_dummy_verification();
            return Ok(Err(LoginRefusal::UnknownUser));
        };
        *user_id = Some(user.id);
        if let Err(refusal) = check_active(realm, &user) {
            self.hasher.spend_dummy_verification();
            return Ok(Err(refusal));
        }
        Ok(self.local_password(user, password))
    }

    /// Steps 10 and 11 for a local hash: verify, then prepare the upgraded hash if it needs
    /// one, but only for a password the policy accepts (else E10).
    fn local_password(&self, user: User, password: &str) -> Result<Verified, LoginRefusal> {
        let Verdict::Match { needs_rehash } =
            self.hasher.verify(user.password.as_deref(), password)
        else {
            return Err(LoginRefusal::WrongPassword);
        };
        let rehash = if needs_rehash {
            if policy::check(password).is_err() {
                return Err(LoginRefusal::ResetRequired);
            }
            Some(self.hasher.hash(password))
        } else {
            None
        };
        Ok(Verified {
            verified_hash: user.password.clone(),
            user,
            method: Method::Api,
            rehash,
            username_key: None,
            reservation: None,
        })
    }

    /// A realm with LDAP on, as Zulip's backends in their order: a local password that
    /// matches wins (email backend), else the directory decides. The directory's own cost
    /// stands in for the dummy verification.
    fn ldap_user(
        &self,
        realm: &Realm,
        ldap: &LdapSettings,
        username: &str,
        password: &str,
        user_id: &mut Option<i64>,
    ) -> StoreResult<Result<Verified, LoginRefusal>> {
        if realm.email_backend()
            && email::is_valid(username)
            && let Some(user) = self.store.user_by_email(realm.id, username)?
            && user.password.as_deref().is_some_and(password::is_usable)
        {
            *user_id = Some(user.id);
            if let Err(refusal) = check_active(realm, &user) {
                return Ok(Err(refusal));
            }
            match self.local_password(user, password) {
                Err(LoginRefusal::WrongPassword) => {}
                decided => return Ok(decided),
            }
        }
        let (email, full_name) = match ldap::authenticate(ldap, username, password) {
            Outcome::Authenticated { email, full_name } => (email, full_name),
            Outcome::UnknownUser => return Ok(Err(LoginRefusal::UnknownUser)),
            Outcome::WrongPassword => return Ok(Err(LoginRefusal::WrongPassword)),
            Outcome::Unavailable(reason) => {
                warn!("LDAP directory {} unreachable: {reason}", ldap.url());
                return Ok(Err(LoginRefusal::DirectoryUnavailable));
            }
        };
        let user = match self.store.user_by_email(realm.id, &email)? {
            Some(user) => user,
            None if ldap.create_users() && email::is_valid(&email) => {
                self.create_ldap_user(realm, &email, full_name)?
            }
            None => return Ok(Err(LoginRefusal::UnknownUser)),
        };
        *user_id = Some(user.id);
        if let Err(refusal) = check_active(realm, &user) {
            return Ok(Err(refusal));
        }
        Ok(Ok(Verified {
            user,
            method: Method::Api,
            verified_hash: None,
            rehash: None,
            username_key: None,
            reservation: None,
        }))
    }

    /// A directory user's account here, made at their first login (`--ldap-create-users on`).
    fn create_ldap_user(
        &self,
        realm: &Realm,
        email: &str,
        full_name: Option<String>,
    ) -> StoreResult<User> {
        let new = NewUser {
            email: email.to_owned(),
            full_name: full_name.unwrap_or_default(),
            role: Role::Member,
            password: None,
            is_active: true,
            api_key: None,
        };
        match self
            .store
            .create_users(realm.id, &[new], "created at first LDAP login")
        {
            // Another login of the same user created it first.
            Ok(_) | Err(StoreError::Refused(_)) => {}
            Err(fault) => return Err(fault),
        }
        self.store.user_by_email(realm.id, email)?.ok_or_else(|| {
            StoreError::Unavailable(format!("the LDAP user {email:?} vanished once created"))
        })
    }
}

/// E8 before E7, both before any password check (wire.md §5.2 step 9).
fn check_active(realm: &Realm, user: &User) -> Result<(), LoginRefusal> {
    if realm.deactivated {
        Err(LoginRefusal::RealmDeactivated)
    } else if !user.is_active {
        Err(LoginRefusal::UserDeactivated)
    } else {
        Ok(())
    }
}

impl Client<'_> {
    /// An audit row of `event` with this client's address and User-Agent.
    pub fn audit(&self, event: AuditEvent, realm: &Realm, user_id: Option<i64>) -> AuditEntry {
        AuditEntry {
            remote_addr: self.address.map(|ip| ip.to_string()),
            user_agent: self
                .user_agent
                .map(|ua| ua.chars().take(MAX_AUDITED_USER_AGENT).collect()),
            ..AuditEntry::new(event, Some(realm.id), user_id)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::password::Argon2Config;
    use crate::store::Rule;

    pub(crate) const PASSWORD: &str = "Correct-Horse-9";

    /// A database with one user, iago@example.com, whose password is [`PASSWORD`].
    pub(crate) fn setup() -> (tempfile::TempDir, Store, Hasher, Realm) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let hasher = Hasher::new(Argon2Config {
            m_kib: 64,
            t: 1,
            p: 1,
        });
        let user = NewUser {
            email: "iago@example.com".into(),
            full_name: "Iago".into(),
            role: Role::Admin,
            password: Some(hasher.hash(PASSWORD)),
            is_active: true,
            api_key: None,
        };
        store.create_users(1, &[user], "test").unwrap();
        let realm = store.require_realm("").unwrap();
        (dir, store, hasher, realm)
    }

    fn limits() -> RateLimits {
        RateLimits {
            per_username: Some(Rule {
                limit: 5,
                window: 600.0,
            }),
            per_address: Some(Rule {
                limit: 2,
                window: 600.0,
            }),
        }
    }

    fn client() -> Client<'static> {
        Client {
            address: Some("192.0.2.1".parse().unwrap()),
            user_agent: Some("test"),
        }
    }

    fn remaining<T>(checked: &Checked<T>) -> Option<u32> {
        checked.quota.map(|q| q.remaining)
    }

    #[test]
    fn a_second_factor_sits_between_verify_and_finish() {
        let (_dir, store, hasher, realm) = setup();
        let login = Login {
            store: &store,
            hasher: &hasher,
            limits: limits(),
        };
        let credentials = Credentials {
            username: "iago@example.com",
            password: PASSWORD,
        };
        let checked = login
            .verify(&realm, credentials, client(), Method::Web)
            .unwrap();
        assert_eq!(remaining(&checked), Some(4));
        let verified = login.defer(checked.outcome.unwrap());
        // A wrong code counts in both buckets and hands nothing out.
        let wrong = login
            .second_factor(
                &realm,
                "iago@example.com",
                verified.clone(),
                client(),
                |_| Ok(None::<()>),
            )
            .unwrap();
        assert_eq!(
            (remaining(&wrong), wrong.outcome),
            (Some(3), Err(LoginRefusal::WrongCode))
        );
        // The right code finishes: a key, and the username bucket cleared.
        let right = login
            .second_factor(
                &realm,
                "iago@example.com",
                verified.clone(),
                client(),
                |u| Ok((u.delivery_email == "iago@example.com").then_some(())),
            )
            .unwrap();
        assert_eq!(remaining(&right), Some(2));
        let (success, ()) = right.outcome.unwrap();
        assert_eq!(success.api_key.len(), 32);
        let again = login
            .verify(&realm, credentials, client(), Method::Api)
            .unwrap();
        assert_eq!(
            remaining(&again),
            Some(4),
            "the success cleared the username bucket"
        );
        login.defer(again.outcome.unwrap());
        // The address counted the wrong code only: one more failure blocks it.
        let wrong_password = Credentials {
            password: "wrong",
            ..credentials
        };
        let failed = login
            .verify(&realm, wrong_password, client(), Method::Api)
            .unwrap();
        assert_eq!(failed.outcome, Err(LoginRefusal::WrongPassword));
        let blocked = login
            .verify(&realm, credentials, client(), Method::Api)
            .unwrap();
        assert!(matches!(
            blocked.outcome,
            Err(LoginRefusal::RateLimited { .. })
        ));
        assert_eq!(blocked.quota, None);
        let audit = store
            .audit_rows(&crate::store::AuditFilter::default())
            .unwrap();
        let success = audit.iter().find(|r| r.event == "login_success").unwrap();
        assert_eq!(success.detail.as_deref(), Some("web sign-in"));
        assert!(
            audit
                .iter()
                .any(|r| r.reason.as_deref() == Some("WRONG_CODE"))
        );
    }

    /// web.md §8.1: the login's outcome carries its mail as a value, for its caller to post;
    /// a dev login, a password entered again and a realm that mails no logins carry none.
    #[test]
    fn a_login_carries_its_mail_for_the_caller_to_post() {
        let (_dir, store, hasher, mut realm) = setup();
        let login = Login {
            store: &store,
            hasher: &hasher,
            limits: RateLimits::default(),
        };
        let credentials = Credentials {
            username: "iago@example.com",
            password: PASSWORD,
        };
        let notices = |method, realm: &Realm| {
            let checked = login.login(realm, credentials, client(), method).unwrap();
            checked.outcome.unwrap().notices
        };
        let mailed = notices(Method::Api, &realm);
        assert_eq!(mailed.len(), 1);
        let notice = &mailed[0];
        assert_eq!(
            (
                notice.told,
                notice.method,
                notice.realm_id,
                notice.email.as_str()
            ),
            (Told::Login, "password", realm.id, "iago@example.com")
        );
        assert_eq!(
            (notice.user_agent.as_deref(), notice.client),
            (Some("test"), client().address)
        );
        assert_eq!(notices(Method::Web, &realm)[0].method, "web");
        assert_eq!(notices(Method::Reconfirm, &realm), []);
        let user = store.user_by_email(realm.id, "iago@example.com").unwrap();
        let dev = login.without_password(&realm, user.unwrap(), client());
        assert_eq!(dev.unwrap().unwrap().notices, []);
        realm.login_mail = false;
        assert_eq!(notices(Method::Api, &realm), []);
    }

    #[test]
    fn a_deferred_login_is_refused_if_the_password_changes_before_the_code() {
        let (_dir, store, hasher, realm) = setup();
        let login = Login {
            store: &store,
            hasher: &hasher,
            limits: limits(),
        };
        let credentials = Credentials {
            username: "iago@example.com",
            password: PASSWORD,
        };
        let checked = login
            .verify(&realm, credentials, client(), Method::Web)
            .unwrap();
        let verified = login.defer(checked.outcome.unwrap());
        let user = verified.user.clone();
        let audit = AuditEntry::new(AuditEvent::PasswordChanged, Some(realm.id), Some(user.id));
        store
            .set_password(user.id, &hasher.hash("Other-Horse-8"), "user:x", &audit)
            .unwrap();
        let late = login
            .second_factor(&realm, "iago@example.com", verified, client(), |_| {
                Ok(Some(()))
            })
            .unwrap();
        assert_eq!(late.outcome, Err(LoginRefusal::PasswordChanged));
    }
}
