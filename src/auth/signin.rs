//! The browser sign-in as a state machine (web.md §3, §4), after kanidm's authsession: each
//! call takes one step and answers an [`Outcome`]: another step is due
//! ([`Outcome::Continue`]), the sign-in is done ([`Outcome::Success`]), or it is refused
//! ([`Outcome::Denied`]). The pages render an outcome; they never decide, and never touch the
//! store for a sign-in.
//!
//! 1. **The first factor**, [`SignIn::password`], through the one login of `auth::login`
//!    (limits, equal timing, LDAP, audit). Another first step (an identity provider's,
//!    `auth::oidc_login`) ends the same way, in [`SignIn::first_factor_passed`]; one that
//!    counts as both factors (a passkey with user verification) goes straight to the finish.
//! 2. **The second factor**, when the user has one or the realm requires one. Between two
//!    requests a sign-in is a row in the store, found by the digest of the token the browser
//!    carries, so any instance takes up any step; it lives [`STEP_LIFETIME_SECONDS`].
//!    [`SignIn::code`] takes a code for it: of the user's key ([`StepKind::Code`]), or the
//!    first code of a key offered now ([`StepKind::Enrol`]), which becomes theirs only when
//!    the sign-in finishes. Codes count against the username's limit like passwords. The
//!    same step takes a recovery code, or one of the user's passkeys ([`SignIn::passkey`]):
//!    another [`Answer`], another arm of [`Second::check`].
//!
//! A passkey without a username ([`SignIn::password_free`]) is both factors at once (web.md
//! §9): a login vouched for by the passkey, limited by the address, as a signed token's.
//! 3. **The finish**, the login's one transaction: the user and their key. Where it leads
//!    (the app's `zulip://login` redirect, or a browser session) is the page's choice, from
//!    the pad the sign-in carries (web.md §1).

use crate::auth::Origin;
use crate::auth::devices;
use crate::auth::login::{
    Client, Credentials, Deferred, Login, LoginRefusal, Method, Success, Verified,
};
use crate::auth::notice::{LoginNotice, Told};
use crate::auth::passkey::{self, RelyingParty};
use crate::auth::passkeys;
use crate::auth::recovery;
use crate::auth::second_factor::{self, Factors};
use crate::auth::token;
use crate::auth::totp::Secret;
use crate::clock;
use crate::site::Site;
use crate::store::{AuditEntry, AuditEvent, LoginStep, Realm, StoreResult, User};

/// How long a browser may take between its password and its code.
pub const STEP_LIFETIME_SECONDS: f64 = 600.0;

/// What a step of the sign-in led to.
pub enum Outcome {
    Continue(NextStep),
    Success(Success),
    Denied(Denial),
}

/// The step that is due, and the token the browser carries to it.
pub struct NextStep {
    pub token: String,
    pub kind: StepKind,
}

/// What the next step asks for.
pub enum StepKind {
    /// A code of the user's key, or a recovery code; or one of their passkeys, if they have
    /// any.
    Code { passkey: bool },
    /// The first code of a new key for the account `email` (the authenticator's label).
    Enrol { secret: Secret, email: String },
}

/// Why a step did not lead on.
pub enum Denial {
    /// A wrong code, or one too many: the same step may be tried again.
    Again {
        step: NextStep,
        refusal: LoginRefusal,
    },
    /// The sign-in starts again from its first step.
    Refused(LoginRefusal),
    /// The step token is unknown, spent, too old, of another realm, or its offer of a key is
    /// void since a factor was turned on.
    Expired,
}

/// A step's outcome, with the account it concerned once known (for the log).
pub struct Step {
    pub outcome: Outcome,
    pub user_id: Option<i64>,
}

impl Step {
    /// The stable code of a refusal, for the log.
    pub fn failure(&self) -> Option<&'static str> {
        match &self.outcome {
            Outcome::Denied(Denial::Again { refusal, .. } | Denial::Refused(refusal)) => {
                refusal.reason()
            }
            _ => None,
        }
    }

    /// A first step refused: the sign-in starts again.
    pub fn refused(user_id: Option<i64>, refusal: LoginRefusal) -> Step {
        Step::denied(user_id, Denial::Refused(refusal))
    }

    fn denied(user_id: Option<i64>, denial: Denial) -> Step {
        Step {
            outcome: Outcome::Denied(denial),
            user_id,
        }
    }
}

/// The second factor a stored step waits for.
enum Second {
    Code,
    Enrol(Secret),
}

/// What a browser answers the step of a second factor with.
#[derive(Clone, Copy)]
enum Answer<'a> {
    /// Six digits, a recovery code, or an offered key's first code.
    Code(&'a str),
    /// One of the user's passkeys (web.md §9).
    Passkey(&'a RelyingParty, passkeys::Answer<'a>),
}

/// What a second factor's check accepted.
enum Accepted {
    /// A code of the user's key, a recovery code or a passkey, used up.
    Code,
    /// The first code of the offered key, at this TOTP step.
    FirstCode(u64),
}

/// A sign-in for one request: the login with its limits, the client, and the site (whether
/// a realm offers passkeys).
pub struct SignIn<'a> {
    pub login: &'a Login<'a>,
    pub client: Client<'a>,
    pub site: &'a Site,
}

impl SignIn<'_> {
    /// The second factors of `user` this sign-in can ask for: their passkeys only where the
    /// realm offers passkeys now (web.md §9).
    fn factors(&self, realm: &Realm, user: &User) -> StoreResult<Factors> {
        let offered = passkeys::relying_party(self.site, realm).is_ok();
        second_factor::for_sign_in(self.login.store, user, offered)
    }

    /// The first step: a username and a password.
    pub fn password(&self, realm: &Realm, credentials: Credentials<'_>) -> StoreResult<Step> {
        let checked = self
            .login
            .verify(realm, credentials, self.client, Method::Web)?;
        match checked.outcome {
            Ok(verified) => self.first_factor_passed(realm, credentials.username, verified),
            Err(refusal) => Ok(Step::denied(checked.user_id, Denial::Refused(refusal))),
        }
    }

    /// The first factor was right (the password, or an identity provider's sign-in:
    /// `auth::oidc_login`): finish, or store the step of a second factor (the user's, or a
    /// new key's under a realm that requires one). `username` is as typed: its bucket counts
    /// the codes.
    pub fn first_factor_passed(
        &self,
        realm: &Realm,
        username: &str,
        verified: Verified,
    ) -> StoreResult<Step> {
        let store = self.login.store;
        let user_id = Some(verified.user.id);
        let factors = self.factors(realm, &verified.user)?;
        let enrolled = factors.any();
        if !enrolled && !realm.require_2fa {
            let outcome = match self.login.finish(realm, verified, self.client)? {
                Ok(success) => Outcome::Success(success),
                Err(refusal) => Outcome::Denied(Denial::Refused(refusal)),
            };
            return Ok(Step { outcome, user_id });
        }
        // A second factor comes first: nothing is handed out and the bucket stays as it is.
        let verified = self.login.defer(verified);
        let second = if enrolled {
            Second::Code
        } else {
            Second::Enrol(Secret::generate())
        };
        let (token, digest) = token::fresh();
        let step = LoginStep {
            enrol_secret: match &second {
                Second::Enrol(secret) => Some(secret.to_base32()),
                Second::Code => None,
            },
            ..stored_step(verified.deferred(username), true)
        };
        store.create_login_step(&digest, &step)?;
        let kind = second.kind(&verified.user, &factors);
        Ok(Step {
            outcome: Outcome::Continue(NextStep { token, kind }),
            user_id,
        })
    }

    /// The second step: `code` for the step `token` stands for. Only an accepted code
    /// finishes the sign-in, and spends the step.
    pub fn code(&self, realm: &Realm, token: &str, code: &str) -> StoreResult<Step> {
        self.second(realm, token, Answer::Code(code))
    }

    /// The second step, however answered.
    fn second(&self, realm: &Realm, token: &str, answer: Answer<'_>) -> StoreResult<Step> {
        let store = self.login.store;
        let digest = token::digest(token);
        let Some((step, user, second)) = self.pending(realm, token)? else {
            return Ok(Step::denied(None, Denial::Expired));
        };
        let user_id = Some(user.id);
        // An offer of a new key stands only while the user has none: a factor turned on since
        // (by another offer, or the operator) is never replaced by an older offer's key.
        let factors = self.factors(realm, &user)?;
        if matches!(second, Second::Enrol(_)) && factors.any() {
            store.take_login_step(&digest)?;
            return Ok(Step::denied(user_id, Denial::Expired));
        }
        let username = step.username.clone();
        let method = Method::of_first_step(&step.method);
        let deferred = Deferred {
            user_id: step.user_id,
            username: step.username,
            verified_hash: step.verified_hash,
            rehash: step.rehash,
            method,
        };
        let verified = self.login.resume(realm, deferred, user.clone());
        let context = self.client.audit(AuditEvent::TotpUsed, realm, user_id);
        let checked =
            self.login
                .second_factor(realm, &username, verified, self.client, |user| {
                    second.check(store, realm, user, answer, &context)
                })?;
        let denial = match checked.outcome {
            Ok((mut success, accepted)) => {
                // Spent: the same token cannot finish a second time. A request that raced
                // this one with another valid code and took the step first has had the key.
                if !store.take_login_step(&digest)? {
                    return Ok(Step::denied(user_id, Denial::Expired));
                }
                // A recovery code stood in for the factor: its owner hears of it (web.md §4.1).
                if let (Second::Code, Answer::Code(code)) = (&second, answer)
                    && recovery::normalized(code).is_some()
                {
                    success.notices.push(LoginNotice {
                        told: Told::RecoveryCode,
                        realm_id: realm.id,
                        user_id: success.user.id,
                        email: success.user.delivery_email.clone(),
                        method: "web",
                        user_agent: devices::stored_user_agent(self.client.user_agent),
                        client: self.client.address,
                        at: clock::now(),
                    });
                }
                // A key offered during a sign-in becomes the user's only once it finished: a
                // finish refused because the password changed must leave no factor behind.
                if let (Second::Enrol(secret), Accepted::FirstCode(first)) = (&second, accepted) {
                    let user = &success.user;
                    second_factor::enrol(
                        store,
                        realm,
                        user,
                        secret,
                        Some(first),
                        Origin::Web,
                        &context,
                    )?;
                }
                return Ok(Step {
                    outcome: Outcome::Success(success),
                    user_id,
                });
            }
            Err(refusal @ (LoginRefusal::WrongCode | LoginRefusal::RateLimited { .. })) => {
                let kind = second.kind(&user, &factors);
                let step = NextStep {
                    token: token.to_owned(),
                    kind,
                };
                Denial::Again { step, refusal }
            }
            Err(refusal) => {
                store.take_login_step(&digest)?;
                Denial::Refused(refusal)
            }
        };
        Ok(Step::denied(user_id, denial))
    }

    /// The live sign-in step a token stands for in this realm, its user and what it waits for.
    fn pending(
        &self,
        realm: &Realm,
        token: &str,
    ) -> StoreResult<Option<(LoginStep, User, Second)>> {
        if !token::is_well_formed(token) {
            return Ok(None);
        }
        let found = self
            .login
            .store
            .login_step(&token::digest(token), clock::now())?;
        // A step of another realm is no step here, nor is an account page's offer.
        let Some((step, user)) =
            found.filter(|(step, user)| user.realm_id == realm.id && step.finishes_login)
        else {
            return Ok(None);
        };
        let second = match step.enrol_secret.as_deref().map(Secret::from_base32) {
            None => Second::Code,
            Some(Some(secret)) => Second::Enrol(secret),
            Some(None) => return Ok(None),
        };
        Ok(Some((step, user, second)))
    }
}

/// The steps a passkey answers (web.md §9).
impl SignIn<'_> {
    /// The second step answered with one of the user's passkeys, as [`SignIn::code`]; a
    /// refused answer counts as a wrong code.
    pub fn passkey(
        &self,
        realm: &Realm,
        token: &str,
        rp: &RelyingParty,
        answer: passkeys::Answer<'_>,
    ) -> StoreResult<Step> {
        self.second(realm, token, Answer::Passkey(rp, answer))
    }

    /// The options of a passkey ceremony for the step `token` stands for (one of the user's
    /// passkeys), or without a token for a sign-in without a username. A step that is gone
    /// or waits for no code is [`passkey::Error::NoCeremony`].
    pub fn passkey_options(
        &self,
        realm: &Realm,
        token: Option<&str>,
        rp: &RelyingParty,
    ) -> StoreResult<Result<String, passkey::Error>> {
        let (store, client) = (self.login.store, self.client.address);
        match token {
            None => passkeys::start_password_free(store, rp, client),
            Some(token) => match self.pending(realm, token)? {
                Some((_, user, Second::Code)) => {
                    passkeys::start_second_factor(store, rp, &user, client)
                }
                _ => Ok(Err(passkey::Error::NoCeremony)),
            },
        }
    }

    /// A sign-in with a passkey and no username (web.md §9): its owner, if the
    /// authenticator verified them (both factors), finishes as a vouched login; a refused
    /// answer counts against the address. The passkey's use is recorded only for a login
    /// accepted (the owner active, the address admitted), atomically with its counter.
    pub fn password_free(
        &self,
        realm: &Realm,
        rp: &RelyingParty,
        answer: passkeys::Answer<'_>,
    ) -> StoreResult<Step> {
        let store = self.login.store;
        let context = self.client.audit(AuditEvent::PasskeyUsed, realm, None);
        let (email, used) = match passkeys::check_password_free(store, rp, realm, answer, &context)?
        {
            Ok((owner, used)) => (Ok(owner.delivery_email), Some(used)),
            Err(_) => (Err(LoginRefusal::WrongPasskey), None),
        };
        let accept = |user: &User| match &used {
            Some(used) => Ok(passkeys::accept_use(store, realm, user, used, &context)?
                .map_err(|_| LoginRefusal::WrongPasskey)),
            None => Ok(Err(LoginRefusal::WrongPasskey)),
        };
        let checked =
            self.login
                .vouched_then(realm, Method::Passkey, self.client, || email, accept)?;
        let outcome = match checked.outcome {
            Ok(success) => Outcome::Success(success),
            Err(refusal) => Outcome::Denied(Denial::Refused(refusal)),
        };
        Ok(Step {
            outcome,
            user_id: checked.user_id,
        })
    }
}

impl Second {
    /// What the page shows for this factor, of the user's `factors`.
    fn kind(&self, user: &User, factors: &Factors) -> StepKind {
        match self {
            Second::Code => StepKind::Code {
                passkey: factors.passkey,
            },
            Second::Enrol(secret) => StepKind::Enrol {
                secret: secret.clone(),
                email: user.delivery_email.clone(),
            },
        }
    }

    /// Whether `answer` is right: a code of the user's key, a recovery code or one of their
    /// passkeys (used up and audited once accepted), or the first code of the offered key.
    fn check(
        &self,
        store: &crate::store::Store,
        realm: &Realm,
        user: &User,
        answer: Answer<'_>,
        context: &AuditEntry,
    ) -> StoreResult<Option<Accepted>> {
        Ok(match (self, answer) {
            (Second::Code, Answer::Code(code)) => {
                second_factor::check_code(store, realm, user, code, Origin::Web, context)?
                    .then_some(Accepted::Code)
            }
            (Second::Code, Answer::Passkey(rp, answer)) => {
                passkeys::check_second_factor(store, rp, realm, user, answer, context)?
                    .ok()
                    .map(|()| Accepted::Code)
            }
            (Second::Enrol(secret), Answer::Code(code)) => {
                second_factor::check_first_code(secret, code).map(Accepted::FirstCode)
            }
            (Second::Enrol(_), Answer::Passkey(..)) => None,
        })
    }
}

/// The row of a step that waits for a second factor, as the store keeps it.
pub(crate) fn stored_step(deferred: Deferred, finishes_login: bool) -> LoginStep {
    LoginStep {
        user_id: deferred.user_id,
        username: deferred.username,
        verified_hash: deferred.verified_hash,
        rehash: deferred.rehash,
        enrol_secret: None,
        finishes_login,
        expires_at: clock::now() + STEP_LIFETIME_SECONDS,
        method: deferred.method.label().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::tests::{PASSWORD, setup};
    use crate::auth::password::Hasher;
    use crate::auth::ratelimit::RateLimits;
    use crate::store::Store;

    fn credentials(password: &str) -> Credentials<'_> {
        Credentials {
            username: "iago@example.com",
            password,
        }
    }

    fn now() -> u64 {
        clock::now() as u64
    }

    fn unlimited<'a>(store: &'a Store, hasher: &'a Hasher) -> Login<'a> {
        Login {
            store,
            hasher,
            limits: RateLimits::default(),
        }
    }

    #[test]
    fn a_password_alone_finishes_and_a_wrong_one_is_refused() {
        let (_dir, store, hasher, realm) = setup();
        let user = store.require_user(&realm, "iago@example.com").unwrap();
        let login = unlimited(&store, &hasher);
        let signin = SignIn {
            login: &login,
            client: Client::default(),
            site: &Site::default(),
        };
        let wrong = signin.password(&realm, credentials("nope")).unwrap();
        assert_eq!(wrong.failure(), Some("WRONG_PASSWORD"));
        assert!(matches!(
            wrong.outcome,
            Outcome::Denied(Denial::Refused(LoginRefusal::WrongPassword))
        ));
        let right = signin.password(&realm, credentials(PASSWORD)).unwrap();
        assert_eq!(right.user_id, Some(user.id));
        let Outcome::Success(success) = right.outcome else {
            panic!("not finished");
        };
        assert_eq!(success.user.id, user.id);
        assert_eq!(success.api_key.len(), 32);
    }

    #[test]
    fn a_factor_adds_a_code_step_whose_token_finishes_once() {
        let (_dir, store, hasher, realm) = setup();
        let user = store.require_user(&realm, "iago@example.com").unwrap();
        let secret = Secret::generate();
        let audit = AuditEntry::new(AuditEvent::TotpEnrolled, Some(realm.id), Some(user.id));
        second_factor::enrol(
            &store,
            &realm,
            &user,
            &secret,
            None,
            Origin::Operator,
            &audit,
        )
        .unwrap();
        let login = unlimited(&store, &hasher);
        let signin = SignIn {
            login: &login,
            client: Client::default(),
            site: &Site::default(),
        };
        let first = signin.password(&realm, credentials(PASSWORD)).unwrap();
        let Outcome::Continue(NextStep {
            token,
            kind: StepKind::Code { passkey: false },
        }) = first.outcome
        else {
            panic!("no code step");
        };
        let right = secret.code_at(now());
        let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
        let again = signin.code(&realm, &token, &wrong).unwrap();
        assert_eq!(again.failure(), Some("WRONG_CODE"));
        let Outcome::Denied(Denial::Again { step, .. }) = again.outcome else {
            panic!("not the same step again");
        };
        assert_eq!(step.token, token);
        let done = signin.code(&realm, &token, &right).unwrap();
        let Outcome::Success(success) = done.outcome else {
            panic!("not finished");
        };
        // The login's own mail only: no recovery code was used.
        let told: Vec<_> = success.notices.iter().map(|n| (n.told, n.method)).collect();
        assert_eq!(told, [(Told::Login, "web")]);
        let spent = signin.code(&realm, &token, &right).unwrap();
        assert!(matches!(spent.outcome, Outcome::Denied(Denial::Expired)));
        // No step of another realm, and none from a malformed token.
        let other = signin.code(&realm, "x", &right).unwrap();
        assert!(matches!(other.outcome, Outcome::Denied(Denial::Expired)));
        // A recovery code in its place: the login's mail, and the code's own (web.md §4.1).
        let codes = recovery::new_set(&store, &realm, &user, Origin::Operator, &audit).unwrap();
        let first = signin.password(&realm, credentials(PASSWORD)).unwrap();
        let Outcome::Continue(NextStep { token, .. }) = first.outcome else {
            panic!("no code step");
        };
        let done = signin.code(&realm, &token, &codes[0]).unwrap();
        let Outcome::Success(success) = done.outcome else {
            panic!("the recovery code was refused");
        };
        let told: Vec<_> = success.notices.iter().map(|n| n.told).collect();
        assert_eq!(told, [Told::Login, Told::RecoveryCode]);
    }
}
