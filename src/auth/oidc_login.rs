//! The sign-in through a realm's OpenID provider (web.md §10), as a first step of the
//! browser sign-in (`auth::signin`): [`start`] keeps a pending sign-in in the store and names
//! the provider's authorization URL; [`callback`] takes it back once, checks the browser that
//! started it, has the relying party ([`oidc::RelyingParty`]) exchange the code and check the
//! ID token, and goes on exactly as after a password ([`SignIn::first_factor_passed`]): a
//! second factor, or the finish.
//!
//! A pending sign-in lives in the store, so any instance can take the callback; it is found
//! by the digest of its `state`, bound to the browser by the digest of a cookie, and lives
//! [`PENDING_LIFETIME_SECONDS`]. Neither `state`, the code, the nonce nor the verifier is ever
//! logged: errors name only what failed ([`oidc::Error`]).

use std::net::IpAddr;

use subtle::ConstantTimeEq;

use crate::auth::login::{LoginRefusal, Method};
use crate::auth::oidc::{self, Pending, RelyingParty};
use crate::auth::signin::{SignIn, Step};
use crate::auth::token;
use crate::clock;
use crate::email;
use crate::store::{
    Bucket, IdentityProvider, NewUser, OidcPending, Realm, Role, Rule, StoreError, StoreResult,
};

/// How long a sign-in may stay at its provider.
pub const PENDING_LIFETIME_SECONDS: f64 = 600.0;

/// Each start keeps a row: an address starts at most 30 sign-ins in a pending sign-in's
/// lifetime, so that no client fills the store (web.md §10.4).
pub const STARTS_PER_ADDRESS: Rule = Rule {
    limit: 30,
    window: PENDING_LIFETIME_SECONDS,
};

/// What a start asks for.
pub struct Asked<'a> {
    /// The provider's name; `None` for the realm's only one.
    pub name: Option<&'a str>,
    pub return_url: &'a str,
    /// The app's pad, as hex.
    pub pad: Option<&'a str>,
    /// The signed-in user it re-confirms (web.md §10.5).
    pub reconfirm: Option<i64>,
    /// The client's address; `None` shares one bucket (the limit fails closed).
    pub address: Option<IpAddr>,
}

/// A sign-in sent to the provider.
pub struct Started {
    /// Where to send the browser: the provider's authorization endpoint.
    pub url: String,
    /// What the browser keeps in a cookie until the callback.
    pub browser_token: String,
}

/// Why a sign-in could not be sent to a provider.
pub enum StartRefusal {
    /// The realm has no provider of that name (or, unnamed, not exactly one).
    NoProvider,
    /// The client's address started [`STARTS_PER_ADDRESS`]'s sign-ins already; seconds until
    /// it may start another.
    TooMany(f64),
    /// The provider's settings or discovery failed.
    Provider(oidc::Error),
}

/// What came of a callback.
pub enum Callback {
    /// The sign-in went on as after a password, for the app's pad if it had one; the
    /// provider's error when its sign-in failed (a [`LoginRefusal::ProviderFailed`]).
    Returned {
        step: Box<Step>,
        pad: Option<String>,
        provider: Box<IdentityProvider>,
        error: Option<oidc::Error>,
    },
    /// The provider sent the person back without a code (they cancelled, or it refused).
    Cancelled {
        pad: Option<String>,
        provider: Box<IdentityProvider>,
    },
    /// No live sign-in of this browser has this `state`: forged, replayed, too old, or of
    /// another realm.
    Expired,
}

/// The realm's provider `name`, or its only one when unnamed.
pub fn provider(
    store: &crate::store::Store,
    realm: &Realm,
    name: Option<&str>,
) -> StoreResult<Option<IdentityProvider>> {
    let mut all = store.identity_providers(realm.id)?;
    Ok(match name {
        Some(name) => all.into_iter().find(|p| p.name == name),
        None if all.len() == 1 => all.pop(),
        None => None,
    })
}

/// Starts a sign-in as `asked`: through the realm's provider, coming back to the return URL,
/// for the app's pad if any. A re-confirmation's provider must ask for a login anew
/// (`prompt=login`, `max_age=0`), and the ID token's `auth_time` must be fresh.
pub fn start(
    store: &crate::store::Store,
    rp: &RelyingParty,
    realm: &Realm,
    asked: &Asked<'_>,
) -> StoreResult<Result<Started, StartRefusal>> {
    let Some(stored) = provider(store, realm, asked.name)? else {
        return Ok(Err(StartRefusal::NoProvider));
    };
    let now = clock::now();
    let address = asked
        .address
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let bucket = Bucket {
        key: format!("oidc-start:{address}"),
        rule: STARTS_PER_ADDRESS,
    };
    if let Some(retry_after) = store.count_if_room(&[bucket], now)? {
        return Ok(Err(StartRefusal::TooMany(retry_after)));
    }
    let reconfirm = asked.reconfirm;
    let start = match rp.start(&stored, asked.return_url, reconfirm.is_some(), now) {
        Ok(start) => start,
        Err(e) => return Ok(Err(StartRefusal::Provider(e))),
    };
    let (browser_token, browser_hash) = token::fresh();
    let pending = OidcPending {
        idp_id: stored.id,
        browser_hash,
        nonce: start.pending.nonce,
        verifier: start.pending.verifier,
        pad: asked.pad.map(str::to_owned),
        user_id: reconfirm,
        started_at: now,
        expires_at: now + PENDING_LIFETIME_SECONDS,
    };
    store.create_oidc_pending(&token::digest(&start.pending.state), &pending)?;
    Ok(Ok(Started {
        url: start.url,
        browser_token,
    }))
}

/// What the provider sent back to the return URL.
pub struct Returned<'a> {
    pub state: &'a str,
    /// `None` when the provider sent an `error` instead.
    pub code: Option<&'a str>,
    /// The cookie that binds the sign-in to the browser that started it.
    pub browser_token: Option<&'a str>,
    pub return_url: &'a str,
}

/// Takes a callback: the pending sign-in (once), the browser's cookie, the code's exchange
/// and the ID token's checks, then the sign-in as after a password. A failure at the
/// provider counts against the client's address (as a wrong password does); an unknown
/// email becomes a member when the provider allows sign-ups.
pub fn callback(
    signin: &SignIn<'_>,
    rp: &RelyingParty,
    realm: &Realm,
    returned: &Returned<'_>,
) -> StoreResult<Callback> {
    let store = signin.login.store;
    let now = clock::now();
    let Some(pending) = store.take_oidc_pending(&token::digest(returned.state), now)? else {
        return Ok(Callback::Expired);
    };
    let same_browser = returned.browser_token.is_some_and(|cookie| {
        bool::from(
            token::digest(cookie)
                .as_bytes()
                .ct_eq(pending.browser_hash.as_bytes()),
        )
    });
    let stored = store
        .identity_provider_by_id(pending.idp_id)?
        .filter(|p| p.realm_id == realm.id);
    let (Some(stored), true) = (stored, same_browser) else {
        return Ok(Callback::Expired);
    };
    let pad = pending.pad.clone();
    let Some(code) = returned.code else {
        return Ok(Callback::Cancelled {
            pad,
            provider: Box::new(stored),
        });
    };
    let mut error = None;
    let mut username = String::new();
    let checked = signin
        .login
        .vouched_first(realm, Method::Oidc, signin.client, || {
            let kept = Pending {
                state: returned.state.to_owned(),
                nonce: pending.nonce.clone(),
                verifier: pending.verifier.clone(),
                started: pending.started_at,
                reconfirm: pending.user_id.is_some(),
            };
            let identity = rp.finish(&stored, returned.return_url, &kept, code, now);
            match identity {
                Ok(identity) => {
                    username.clone_from(&identity.email);
                    sign_up(store, realm, &stored, &identity)?;
                    Ok(Ok(identity.email))
                }
                Err(e) => {
                    error = Some(e);
                    Ok(Err(LoginRefusal::ProviderFailed))
                }
            }
        })?;
    let step = match checked.outcome {
        Ok(verified) => signin.first_factor_passed(realm, &username, verified)?,
        Err(refusal) => Step::refused(checked.user_id, refusal),
    };
    Ok(Callback::Returned {
        step: Box::new(step),
        pad,
        provider: Box::new(stored),
        error,
    })
}

/// An unknown verified email becomes a member of an active realm, with no password and
/// the `name` claim as full name, when the provider allows sign-ups (web.md §10.3).
fn sign_up(
    store: &crate::store::Store,
    realm: &Realm,
    provider: &IdentityProvider,
    identity: &oidc::Identity,
) -> StoreResult<()> {
    if !provider.auto_signup
        || realm.deactivated
        || !email::is_valid(&identity.email)
        || store.user_by_email(realm.id, &identity.email)?.is_some()
    {
        return Ok(());
    }
    let user = NewUser {
        email: identity.email.clone(),
        full_name: identity.name.clone().unwrap_or_default(),
        role: Role::Member,
        password: None,
        is_active: true,
        api_key: None,
    };
    let detail = format!("signed up through identity provider {}", provider.name);
    match store.create_users(realm.id, &[user], &detail) {
        // Another request signed the same person up meanwhile: the account is there.
        Ok(_) | Err(StoreError::Refused(_)) => Ok(()),
        Err(fault) => Err(fault),
    }
}
