//! Passkeys (WebAuthn) over webauthn-rs: the relying party of a realm, the two halves of
//! each ceremony (registering a passkey, using one as a second factor, signing in with one
//! and no username), what the store keeps between those halves, and the rules the crate
//! leaves to us: a ceremony is finished once and within 5 minutes, a signature counter never
//! goes backwards, and a password-free sign-in verified by the authenticator (UV) counts as
//! both factors.
//!
//! The relying party comes from `--external-url` only, never from the request's Host: its
//! ID is the realm's host and the origin must match the realm's URL exactly. Without an
//! external URL there is none, and [`Unavailable`] says why in words a page can show.
//!
//! Everything the store keeps is plain data ([`Ceremony`], [`CredentialRecord`]); the
//! webauthn-rs values inside are serialised JSON strings that only this module reads.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, WebauthnError,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};
use webauthn_rs_proto::ResidentKeyRequirement;

use base64ct::{Base64UrlUnpadded, Encoding};

use crate::auth::token;
use crate::site::Site;
use crate::store::{Realm, User};

/// How long a ceremony may take from its options to its answer; also the timeout the
/// browser is given.
pub const CEREMONY_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Why a realm offers no passkeys, for the page that would have shown them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No `--external-url`: the relying party is never taken from the request's Host.
    NoExternalUrl,
    /// The external URL's host is an IP address, which WebAuthn refuses as an RP ID.
    AddressHost,
    /// `http://` on a host other than localhost: browsers offer WebAuthn only to secure
    /// origins.
    InsecureOrigin,
}

impl Unavailable {
    pub fn message(self) -> &'static str {
        match self {
            Unavailable::NoExternalUrl => {
                "Passkeys are not available: the server has no external URL (--external-url)."
            }
            Unavailable::AddressHost => {
                "Passkeys are not available: the server's external URL is an IP address, not a name."
            }
            Unavailable::InsecureOrigin => {
                "Passkeys are not available: the server's external URL is not https://."
            }
        }
    }
}

/// Why a ceremony failed. None of them carries a secret or the browser's answer; callers
/// choose the words, [`Error::reason`] is the stable code for logs and the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No ceremony under that id: never begun, finished already (a replay), pruned, or
    /// written by a version that cannot be read.
    NoCeremony,
    /// The ceremony is older than [`CEREMONY_LIFETIME`].
    Expired,
    /// The ceremony was begun for another purpose, realm or user.
    WrongCeremony,
    /// The browser's answer is not a WebAuthn credential.
    Malformed,
    /// The answer was made for another origin than the realm's URL.
    WrongOrigin,
    /// The authenticator signed for another relying party ID than the realm's host.
    WrongRpId,
    /// The answer signs another challenge than this ceremony's (a replayed answer).
    WrongChallenge,
    /// The credential is not one of the user's (or, without a username, of anybody's).
    UnknownCredential,
    /// A signature counter that did not move forward: a cloned authenticator. Audit it.
    ClonedAuthenticator,
    /// The authenticator did not verify the user (no PIN, no biometrics).
    NotVerified,
    /// The credential is registered already.
    AlreadyRegistered,
    /// A second factor was asked of a user without passkeys.
    NoPasskeys,
    /// Any other failed check: a bad signature, attestation or flags.
    Refused,
    /// A stored passkey this module cannot read, or options it cannot write: not the
    /// person's fault.
    Internal,
}

impl Error {
    pub fn reason(self) -> &'static str {
        match self {
            Error::NoCeremony => "PASSKEY_NO_CEREMONY",
            Error::Expired => "PASSKEY_EXPIRED",
            Error::WrongCeremony => "PASSKEY_WRONG_CEREMONY",
            Error::Malformed => "PASSKEY_MALFORMED",
            Error::WrongOrigin => "PASSKEY_WRONG_ORIGIN",
            Error::WrongRpId => "PASSKEY_WRONG_RP_ID",
            Error::WrongChallenge => "PASSKEY_WRONG_CHALLENGE",
            Error::UnknownCredential => "PASSKEY_UNKNOWN_CREDENTIAL",
            Error::ClonedAuthenticator => "PASSKEY_CLONED_AUTHENTICATOR",
            Error::NotVerified => "PASSKEY_NOT_VERIFIED",
            Error::AlreadyRegistered => "PASSKEY_ALREADY_REGISTERED",
            Error::NoPasskeys => "PASSKEY_NONE_ENROLLED",
            Error::Refused => "PASSKEY_REFUSED",
            Error::Internal => "PASSKEY_INTERNAL",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl From<WebauthnError> for Error {
    fn from(err: WebauthnError) -> Error {
        match err {
            WebauthnError::InvalidRPOrigin | WebauthnError::CredentialCrossOrigin => {
                Error::WrongOrigin
            }
            WebauthnError::InvalidRPIDHash => Error::WrongRpId,
            WebauthnError::MismatchedChallenge => Error::WrongChallenge,
            WebauthnError::CredentialNotFound => Error::UnknownCredential,
            WebauthnError::CredentialPossibleCompromise => Error::ClonedAuthenticator,
            WebauthnError::UserNotVerified | WebauthnError::UserNotPresent => Error::NotVerified,
            WebauthnError::CredentialExcludedFromRequest
            | WebauthnError::CredentialAlreadyExists => Error::AlreadyRegistered,
            WebauthnError::ParseJSONFailure(_) | WebauthnError::ParseCBORFailure(_) => {
                Error::Malformed
            }
            _ => Error::Refused,
        }
    }
}

/// What the store keeps between a ceremony's two requests, under the digest of the id the
/// browser holds: taken (read and deleted at once) when the answer comes, so a ceremony is
/// finished at most once; pruned after `expires_at`. Any instance can finish a ceremony
/// another began.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceremony {
    /// SHA-256 of the id handed to the browser ([`token::digest`]).
    pub id_digest: String,
    /// Serialised by this module; opaque to the store.
    pub state: String,
    pub expires_at: f64,
}

/// A begun ceremony: `options` go to the browser (JSON, with the id under `ceremony`),
/// `ceremony` to the store.
#[derive(Debug, Clone)]
pub struct Started {
    pub options: String,
    pub ceremony: Ceremony,
}

/// A registered passkey as the store keeps it. `passkey` is webauthn-rs' own serialised
/// form (public key, flags, its copy of the counter); `counter` is the highest signature
/// counter accepted so far, which the store compares and sets atomically with
/// [`Used`]'s (see there).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRecord {
    /// The credential id, base64url without padding: unique across the server.
    pub credential_id: String,
    /// The user handle the authenticator keeps (a UUID): the same for all of a user's
    /// passkeys ([`user_handle`]).
    pub user_handle: String,
    pub passkey: String,
    /// Chosen by the user.
    pub name: String,
    pub created: f64,
    pub last_used: Option<f64>,
    pub counter: u32,
}

/// A passkey that signed in: what the store writes back (`last_used`, `counter`, the
/// updated `passkey`). The store writes it only while the stored counter is still
/// [`counter_moves_forward`] to `counter`, so two instances finishing at once cannot set
/// it backwards; a write that matches nothing is the same clone, seen late.
#[derive(Debug, Clone, PartialEq)]
pub struct Used {
    pub credential_id: String,
    pub counter: u32,
    pub passkey: String,
    pub at: f64,
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
}

impl Used {
    /// A password-free sign-in with user verification is two factors by itself:
    /// something held and something known or been; it satisfies `--require-2fa`.
    pub fn counts_as_two_factors(&self) -> bool {
        self.user_verified
    }
}

/// The counter rule (WebAuthn §6.1.1): a counter that stays at 0 on both sides belongs to
/// an authenticator without one (synced passkeys); otherwise the new one must be greater.
pub fn counter_moves_forward(stored: u32, seen: u32) -> bool {
    (stored == 0 && seen == 0) || seen > stored
}

/// The handle for a new passkey of a user who has `existing` ones: theirs, or a fresh
/// random one for a first passkey (it reveals nothing about the user).
pub fn user_handle(existing: &[CredentialRecord]) -> String {
    match existing.first() {
        Some(record) => record.user_handle.clone(),
        None => Uuid::new_v4().hyphenated().to_string(),
    }
}

/// The browser's answer to a `get` ceremony, read once: its credential id says which
/// record to load before [`RelyingParty::finish_password_free`].
#[derive(Debug, Clone)]
pub struct Assertion(PublicKeyCredential);

impl Assertion {
    pub fn parse(json: &str) -> Result<Assertion, Error> {
        serde_json::from_str(json)
            .map(Assertion)
            .map_err(|_| Error::Malformed)
    }

    /// Base64url without padding, as in [`CredentialRecord::credential_id`].
    pub fn credential_id(&self) -> String {
        Base64UrlUnpadded::encode_string(self.0.get_credential_id())
    }

    /// The user handle the authenticator returned, if any.
    fn user_handle(&self) -> Option<String> {
        let bytes = self.0.get_user_unique_id()?;
        Uuid::from_slice(bytes)
            .ok()
            .map(|uuid| uuid.hyphenated().to_string())
    }
}

/// What a ceremony was begun for, bound to its realm (and user), with webauthn-rs' state.
#[derive(Serialize, Deserialize)]
enum State {
    Registration {
        realm_id: i64,
        user_id: i64,
        user_handle: String,
        state: PasskeyRegistration,
    },
    SecondFactor {
        realm_id: i64,
        user_id: i64,
        state: PasskeyAuthentication,
    },
    PasswordFree {
        realm_id: i64,
        state: DiscoverableAuthentication,
    },
}

/// A realm as a WebAuthn relying party.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    webauthn: Webauthn,
    realm_id: i64,
    id: String,
    origin: String,
}

impl RelyingParty {
    /// The realm's relying party: ID its host under `--external-url`, origin its URL.
    pub fn for_realm(site: &Site, realm: &Realm) -> Result<RelyingParty, Unavailable> {
        let external = site.external_url.as_ref().ok_or(Unavailable::NoExternalUrl)?;
        let origin = external.realm_url(&realm.subdomain);
        let url = Url::parse(&origin).map_err(|_| Unavailable::NoExternalUrl)?;
        let Some(host) = url.domain() else {
            return Err(Unavailable::AddressHost);
        };
        let local = host == "localhost" || host.ends_with(".localhost");
        if url.scheme() != "https" && !local {
            return Err(Unavailable::InsecureOrigin);
        }
        let id = host.to_owned();
        let webauthn = WebauthnBuilder::new(&id, &url)
            .and_then(|builder| {
                builder
                    .rp_name(&realm.name)
                    .timeout(CEREMONY_LIFETIME)
                    .build()
            })
            .map_err(|_| Unavailable::AddressHost)?;
        Ok(RelyingParty {
            webauthn,
            realm_id: realm.id,
            id,
            origin,
        })
    }

    /// The RP ID: the realm's host.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The one origin accepted: the realm's URL.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Begins registering a passkey for `user`, who has `existing` ones (which the browser
    /// is told not to register again). The credential is made discoverable, so the same
    /// passkey also signs in without a username.
    pub fn start_registration(
        &self,
        user: &User,
        existing: &[CredentialRecord],
        now: f64,
    ) -> Result<Started, Error> {
        let user_handle = user_handle(existing);
        let handle = Uuid::parse_str(&user_handle).map_err(|_| Error::Internal)?;
        let exclude = existing
            .iter()
            .map(|record| Base64UrlUnpadded::decode_vec(&record.credential_id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| Error::Internal)?;
        let display_name = match user.full_name.trim() {
            "" => &user.delivery_email,
            name => name,
        };
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(
                handle,
                &user.delivery_email,
                display_name,
                Some(exclude),
            )
            .map_err(|_| Error::Internal)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let state = State::Registration {
            realm_id: self.realm_id,
            user_id: user.id,
            user_handle,
            state,
        };
        started(&options, &state, now)
    }

    /// Finishes a registration: `taken` is what the store's take returned for the id the
    /// form sent back. The record is new: the caller stores it under `user`, refusing a
    /// credential id that exists already ([`Error::AlreadyRegistered`]).
    pub fn finish_registration(
        &self,
        taken: Option<Ceremony>,
        user: &User,
        response: &str,
        name: &str,
        now: f64,
    ) -> Result<CredentialRecord, Error> {
        let State::Registration {
            realm_id,
            user_id,
            user_handle,
            state,
        } = take(taken, now)?
        else {
            return Err(Error::WrongCeremony);
        };
        if realm_id != self.realm_id || user_id != user.id {
            return Err(Error::WrongCeremony);
        }
        let response: RegisterPublicKeyCredential =
            serde_json::from_str(response).map_err(|_| Error::Malformed)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&response, &state)?;
        Ok(CredentialRecord {
            credential_id: Base64UrlUnpadded::encode_string(passkey.cred_id()),
            user_handle,
            passkey: serde_json::to_string(&passkey).map_err(|_| Error::Internal)?,
            name: name.to_owned(),
            created: now,
            last_used: None,
            counter: 0,
        })
    }

    /// Begins asking `user`, past their password, for one of their `credentials`.
    pub fn start_second_factor(
        &self,
        user: &User,
        credentials: &[CredentialRecord],
        now: f64,
    ) -> Result<Started, Error> {
        if credentials.is_empty() {
            return Err(Error::NoPasskeys);
        }
        let passkeys = credentials
            .iter()
            .map(passkey_of)
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|_| Error::Internal)?;
        let state = State::SecondFactor {
            realm_id: self.realm_id,
            user_id: user.id,
            state,
        };
        started(&options, &state, now)
    }

    /// Finishes a second factor: `credentials` are the user's passkeys as stored now (one
    /// removed since the start no longer counts).
    pub fn finish_second_factor(
        &self,
        taken: Option<Ceremony>,
        user: &User,
        assertion: &Assertion,
        credentials: &[CredentialRecord],
        now: f64,
    ) -> Result<Used, Error> {
        let State::SecondFactor {
            realm_id,
            user_id,
            state,
        } = take(taken, now)?
        else {
            return Err(Error::WrongCeremony);
        };
        if realm_id != self.realm_id || user_id != user.id {
            return Err(Error::WrongCeremony);
        }
        let id = assertion.credential_id();
        let record = credentials
            .iter()
            .find(|record| record.credential_id == id)
            .ok_or(Error::UnknownCredential)?;
        let result = self
            .webauthn
            .finish_passkey_authentication(&assertion.0, &state)?;
        used(record, &result, now)
    }

    /// Begins a sign-in without a username: the browser offers the realm's discoverable
    /// passkeys, modally (from a button, not the username field's autofill).
    pub fn start_password_free(&self, now: f64) -> Result<Started, Error> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|_| Error::Internal)?;
        options.mediation = None;
        let state = State::PasswordFree {
            realm_id: self.realm_id,
            state,
        };
        started(&options, &state, now)
    }

    /// Finishes a sign-in without a username. `credential` is the record stored under
    /// [`Assertion::credential_id`] in this realm, if any; its owner is the one signing in,
    /// and [`Used::counts_as_two_factors`] says whether that is both factors.
    pub fn finish_password_free(
        &self,
        taken: Option<Ceremony>,
        assertion: &Assertion,
        credential: Option<&CredentialRecord>,
        now: f64,
    ) -> Result<Used, Error> {
        let State::PasswordFree { realm_id, state } = take(taken, now)? else {
            return Err(Error::WrongCeremony);
        };
        if realm_id != self.realm_id {
            return Err(Error::WrongCeremony);
        }
        let record = credential
            .filter(|record| record.credential_id == assertion.credential_id())
            .ok_or(Error::UnknownCredential)?;
        // WebAuthn §7.2 step 6: the handle the authenticator returned must be the owner's.
        if assertion.user_handle().as_deref() != Some(record.user_handle.as_str()) {
            return Err(Error::UnknownCredential);
        }
        let passkey = passkey_of(record)?;
        let result = self.webauthn.finish_discoverable_authentication_v2(
            &assertion.0,
            state,
            &passkey,
        )?;
        used(record, &result, now)
    }
}

/// A fresh ceremony id for the browser, the options with it, and what the store keeps.
fn started(options: &impl Serialize, state: &State, now: f64) -> Result<Started, Error> {
    let (id, id_digest) = token::fresh();
    let mut options = serde_json::to_value(options).map_err(|_| Error::Internal)?;
    let serde_json::Value::Object(fields) = &mut options else {
        return Err(Error::Internal);
    };
    fields.insert("ceremony".to_owned(), serde_json::Value::String(id));
    Ok(Started {
        options: options.to_string(),
        ceremony: Ceremony {
            id_digest,
            state: serde_json::to_string(state).map_err(|_| Error::Internal)?,
            expires_at: now + CEREMONY_LIFETIME.as_secs_f64(),
        },
    })
}

/// The single-use and lifetime rule: a ceremony the store no longer had is a replay (or
/// never was); one past its time is refused even if the pruner has not seen it yet.
fn take(taken: Option<Ceremony>, now: f64) -> Result<State, Error> {
    let ceremony = taken.ok_or(Error::NoCeremony)?;
    if now >= ceremony.expires_at {
        return Err(Error::Expired);
    }
    serde_json::from_str(&ceremony.state).map_err(|_| Error::NoCeremony)
}

fn passkey_of(record: &CredentialRecord) -> Result<Passkey, Error> {
    serde_json::from_str(&record.passkey).map_err(|_| Error::Internal)
}

/// A verified assertion against the counter rule, and what to write back.
fn used(
    record: &CredentialRecord,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: f64,
) -> Result<Used, Error> {
    if !counter_moves_forward(record.counter, result.counter()) {
        return Err(Error::ClonedAuthenticator);
    }
    let mut passkey = passkey_of(record)?;
    passkey.update_credential(result);
    Ok(Used {
        credential_id: record.credential_id.clone(),
        counter: result.counter(),
        passkey: serde_json::to_string(&passkey).map_err(|_| Error::Internal)?,
        at: now,
        user_verified: result.user_verified(),
    })
}
