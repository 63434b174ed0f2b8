//! Passkeys (WebAuthn, web.md §9) over webauthn-rs: the relying party of a realm, the halves of
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
pub use crate::store::passkey::{Ceremony, CredentialRecord, StoredPasskey, Used};

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
    /// The realm turned passkeys off (`realm set --passkeys off`).
    TurnedOff,
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
            Unavailable::TurnedOff => "Passkeys are turned off in this organization.",
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
    /// The client began more ceremonies than its address may (each is a row for 5 minutes).
    TooManyCeremonies,
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
            Error::TooManyCeremonies => "PASSKEY_TOO_MANY_CEREMONIES",
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

/// A begun ceremony: `options` go to the browser (JSON, with the id under `ceremony`),
/// `ceremony` to the store.
#[derive(Debug, Clone)]
pub struct Started {
    pub options: String,
    pub ceremony: Ceremony,
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
fn user_handle(existing: &[CredentialRecord]) -> String {
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

/// A ceremony as kept: bound to its realm and (but for a sign-in without a username) its
/// user.
#[derive(Serialize, Deserialize)]
struct State {
    realm_id: i64,
    user_id: Option<i64>,
    step: Step,
}

/// What a ceremony was begun for, with webauthn-rs' state.
#[derive(Serialize, Deserialize)]
enum Step {
    Registration {
        user_handle: String,
        state: PasskeyRegistration,
    },
    SecondFactor(PasskeyAuthentication),
    PasswordFree(DiscoverableAuthentication),
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
    /// The relying party of the realm `realm_id` at `subdomain`, shown as `name`: its ID
    /// is the realm's host under `--external-url`, its one origin the realm's URL.
    pub fn for_realm(
        site: &Site,
        realm_id: i64,
        subdomain: &str,
        name: &str,
    ) -> Result<RelyingParty, Unavailable> {
        let external = site
            .external_url
            .as_ref()
            .ok_or(Unavailable::NoExternalUrl)?;
        let origin = external.realm_url(subdomain);
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
            .and_then(|builder| builder.rp_name(name).timeout(CEREMONY_LIFETIME).build())
            .map_err(|_| Unavailable::AddressHost)?;
        Ok(RelyingParty {
            webauthn,
            realm_id,
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

    /// Begins registering a passkey for the user `user_id`, who has `existing` ones (which
    /// the browser is told not to register again). `email` and `full_name` are what the
    /// authenticator shows. The credential is made discoverable, so the same passkey also
    /// signs in without a username.
    pub fn start_registration(
        &self,
        user_id: i64,
        email: &str,
        full_name: &str,
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
        let display_name = match full_name.trim() {
            "" => email,
            name => name,
        };
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(handle, email, display_name, Some(exclude))
            .map_err(|_| Error::Internal)?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let step = Step::Registration { user_handle, state };
        self.started(&options, Some(user_id), step, now)
    }

    /// Finishes a registration: `taken` is what the store's take returned for the id the
    /// form sent back. The record is new: the caller stores it under the user, refusing a
    /// credential id that exists already ([`Error::AlreadyRegistered`]).
    pub fn finish_registration(
        &self,
        taken: Option<Ceremony>,
        user_id: i64,
        response: &str,
        name: &str,
        now: f64,
    ) -> Result<CredentialRecord, Error> {
        let Step::Registration { user_handle, state } = self.take(taken, Some(user_id), now)?
        else {
            return Err(Error::WrongCeremony);
        };
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

    /// Begins asking the user `user_id`, past their password, for one of their
    /// `credentials`.
    pub fn start_second_factor(
        &self,
        user_id: i64,
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
        self.started(&options, Some(user_id), Step::SecondFactor(state), now)
    }

    /// Finishes a second factor: `credentials` are the user's passkeys as stored now (one
    /// removed since the start no longer counts).
    pub fn finish_second_factor(
        &self,
        taken: Option<Ceremony>,
        user_id: i64,
        assertion: &Assertion,
        credentials: &[CredentialRecord],
        now: f64,
    ) -> Result<Used, Error> {
        let Step::SecondFactor(state) = self.take(taken, Some(user_id), now)? else {
            return Err(Error::WrongCeremony);
        };
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
        self.started(&options, None, Step::PasswordFree(state), now)
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
        let Step::PasswordFree(state) = self.take(taken, None, now)? else {
            return Err(Error::WrongCeremony);
        };
        let record = credential
            .filter(|record| record.credential_id == assertion.credential_id())
            .ok_or(Error::UnknownCredential)?;
        // WebAuthn §7.2 step 6: the handle the authenticator returned must be the owner's.
        if assertion.user_handle().as_deref() != Some(record.user_handle.as_str()) {
            return Err(Error::UnknownCredential);
        }
        let passkey = passkey_of(record)?;
        let result =
            self.webauthn
                .finish_discoverable_authentication_v2(&assertion.0, state, &passkey)?;
        used(record, &result, now)
    }

    /// A fresh ceremony id for the browser, the options with it, and what the store keeps.
    fn started(
        &self,
        options: &impl Serialize,
        user_id: Option<i64>,
        step: Step,
        now: f64,
    ) -> Result<Started, Error> {
        let (id, id_digest) = token::fresh();
        let mut options = serde_json::to_value(options).map_err(|_| Error::Internal)?;
        let serde_json::Value::Object(fields) = &mut options else {
            return Err(Error::Internal);
        };
        fields.insert("ceremony".to_owned(), serde_json::Value::String(id));
        let state = State {
            realm_id: self.realm_id,
            user_id,
            step,
        };
        Ok(Started {
            options: options.to_string(),
            ceremony: Ceremony {
                id_digest,
                state: serde_json::to_string(&state).map_err(|_| Error::Internal)?,
                expires_at: now + CEREMONY_LIFETIME.as_secs_f64(),
            },
        })
    }

    /// The single-use and lifetime rule: a ceremony the store no longer had is a replay (or
    /// never was); one past its time is refused even if the pruner has not seen it yet. It
    /// must have been begun in this realm, for `user_id`.
    fn take(&self, taken: Option<Ceremony>, user_id: Option<i64>, now: f64) -> Result<Step, Error> {
        let ceremony = taken.ok_or(Error::NoCeremony)?;
        if now >= ceremony.expires_at {
            return Err(Error::Expired);
        }
        let state: State = serde_json::from_str(&ceremony.state).map_err(|_| Error::NoCeremony)?;
        if state.realm_id != self.realm_id || state.user_id != user_id {
            return Err(Error::WrongCeremony);
        }
        Ok(state.step)
    }
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{Value, json};
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;
    use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse};

    use super::*;
    use crate::site::ExternalUrl;

    const NOW: f64 = 1_800_000_000.0;
    const ROOT: &str = "https://chat.example.com";
    const USER: i64 = 7;

    fn site(url: Option<&str>) -> Site {
        Site {
            external_url: url.map(|url| ExternalUrl::parse(url).unwrap()),
        }
    }

    fn party(url: &str) -> RelyingParty {
        RelyingParty::for_realm(&site(Some(url)), 1, "", "Example").unwrap()
    }

    /// The store's ceremonies: taking one deletes it.
    #[derive(Default)]
    struct Ceremonies(HashMap<String, Ceremony>);

    impl Ceremonies {
        /// Keeps a begun ceremony; the id the browser got.
        fn keep(&mut self, started: Started) -> (String, Value) {
            let options: Value = serde_json::from_str(&started.options).unwrap();
            let id = options["ceremony"].as_str().unwrap().to_owned();
            assert_eq!(token::digest(&id), started.ceremony.id_digest);
            self.0
                .insert(started.ceremony.id_digest.clone(), started.ceremony);
            (id, options)
        }

        fn take(&mut self, id: &str) -> Option<Ceremony> {
            self.0.remove(&token::digest(id))
        }
    }

    /// A browser at `origin` with webauthn-rs' software passkey, which verifies the user.
    struct Browser {
        key: SoftPasskey,
        origin: Url,
    }

    impl Browser {
        fn at(origin: &str) -> Browser {
            Browser {
                key: SoftPasskey::new(true),
                origin: Url::parse(origin).unwrap(),
            }
        }

        fn create(&mut self, mut options: Value) -> String {
            // The software key keeps no resident credentials; the server asks for one but
            // cannot check what it got, so the test's authenticator may decline.
            let selection = &mut options["publicKey"]["authenticatorSelection"];
            selection["requireResidentKey"] = json!(false);
            selection["residentKey"] = json!("discouraged");
            let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
            let answer = self
                .key
                .do_registration(self.origin.clone(), options)
                .unwrap();
            serde_json::to_string(&answer).unwrap()
        }

        /// An assertion; for a discoverable credential, as a resident key would answer:
        /// the credential found by the authenticator itself, with the user handle.
        fn get(&mut self, mut options: Value, resident: Option<&CredentialRecord>) -> Assertion {
            if let Some(record) = resident {
                options["publicKey"]["allowCredentials"] =
                    json!([{"type": "public-key", "id": record.credential_id}]);
            }
            let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
            let mut answer = self
                .key
                .do_authentication(self.origin.clone(), options)
                .unwrap();
            if let Some(record) = resident {
                let handle = Uuid::parse_str(&record.user_handle).unwrap();
                answer.response.user_handle = Some(handle.as_bytes().to_vec());
            }
            Assertion::parse(&serde_json::to_string(&answer).unwrap()).unwrap()
        }
    }

    /// USER with one passkey at the root realm: the browser that holds it, its record, and
    /// the store of ceremonies.
    struct Enrolled {
        browser: Browser,
        record: CredentialRecord,
        store: Ceremonies,
    }

    impl Enrolled {
        fn new(rp: &RelyingParty) -> Enrolled {
            let mut browser = Browser::at(ROOT);
            let mut store = Ceremonies::default();
            let started = rp
                .start_registration(USER, "iago@example.com", "Iago", &[], NOW)
                .unwrap();
            let (id, options) = store.keep(started);
            let answer = browser.create(options);
            let record = rp
                .finish_registration(store.take(&id), USER, &answer, "laptop", NOW + 1.0)
                .unwrap();
            Enrolled {
                browser,
                record,
                store,
            }
        }

        fn records(&self) -> Vec<CredentialRecord> {
            vec![self.record.clone()]
        }

        /// Begins a second factor: the ceremony's id and its options.
        fn ask(&mut self, rp: &RelyingParty) -> (String, Value) {
            let records = self.records();
            self.store
                .keep(rp.start_second_factor(USER, &records, NOW).unwrap())
        }

        /// Begins a second factor, and the browser answers it.
        fn answered(&mut self, rp: &RelyingParty) -> (String, Assertion) {
            let (id, options) = self.ask(rp);
            (id, self.browser.get(options, None))
        }

        /// Finishes a second factor against the stored records.
        fn finish(
            &mut self,
            rp: &RelyingParty,
            id: &str,
            assertion: &Assertion,
        ) -> Result<Used, Error> {
            let records = self.records();
            rp.finish_second_factor(self.store.take(id), USER, assertion, &records, NOW)
        }
    }

    /// `record` after `used` was written back.
    fn updated(record: &CredentialRecord, used: &Used) -> CredentialRecord {
        CredentialRecord {
            passkey: used.passkey.clone(),
            counter: used.counter,
            last_used: Some(used.at),
            ..record.clone()
        }
    }

    #[test]
    fn the_relying_party_comes_from_the_external_url_only() {
        let unavailable = |url: Option<&str>| {
            RelyingParty::for_realm(&site(url), 1, "", "Example").map(|rp| rp.id().to_owned())
        };
        assert_eq!(unavailable(None), Err(Unavailable::NoExternalUrl));
        assert_eq!(
            unavailable(Some("https://192.0.2.7")),
            Err(Unavailable::AddressHost)
        );
        assert_eq!(
            unavailable(Some("http://chat.example.com")),
            Err(Unavailable::InsecureOrigin)
        );
        for reason in [
            Unavailable::NoExternalUrl,
            Unavailable::AddressHost,
            Unavailable::InsecureOrigin,
        ] {
            assert!(reason.message().starts_with("Passkeys are not available: "));
        }
        let local = party("http://localhost:9991");
        assert_eq!(
            (local.id(), local.origin()),
            ("localhost", "http://localhost:9991")
        );
        let lear = RelyingParty::for_realm(&site(Some(ROOT)), 2, "lear", "Lear").unwrap();
        assert_eq!(
            (lear.id(), lear.origin()),
            ("lear.chat.example.com", "https://lear.chat.example.com")
        );
    }

    #[test]
    fn enrol_then_second_factor_then_password_free() {
        let rp = party(ROOT);
        let mut browser = Browser::at(ROOT);
        let mut store = Ceremonies::default();
        let started = rp
            .start_registration(USER, "iago@example.com", "", &[], NOW)
            .unwrap();
        assert_eq!(started.ceremony.expires_at, NOW + 300.0);
        let (id, options) = store.keep(started);
        let key = &options["publicKey"];
        assert_eq!(
            key["rp"],
            json!({"id": "chat.example.com", "name": "Example"})
        );
        assert_eq!(key["user"]["name"], "iago@example.com");
        assert_eq!(key["user"]["displayName"], "iago@example.com");
        assert_eq!(key["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(
            key["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert_eq!(key["excludeCredentials"], json!([]));
        let answer = browser.create(options);
        let record = rp
            .finish_registration(store.take(&id), USER, &answer, "laptop", NOW + 1.0)
            .unwrap();
        assert_eq!(
            (record.name.as_str(), record.created),
            ("laptop", NOW + 1.0)
        );
        assert_eq!((record.last_used, record.counter), (None, 0));
        assert!(Uuid::parse_str(&record.user_handle).is_ok());
        let passkey = passkey_of(&record).unwrap();
        assert_eq!(
            Base64UrlUnpadded::encode_string(passkey.cred_id()),
            record.credential_id
        );

        // A second passkey: the first is excluded, the handle is the same.
        let records = vec![record.clone()];
        let (_, options) = store.keep(
            rp.start_registration(USER, "iago@example.com", "Iago", &records, NOW)
                .unwrap(),
        );
        assert_eq!(
            options["publicKey"]["excludeCredentials"][0]["id"],
            json!(record.credential_id)
        );
        assert_eq!(options["publicKey"]["user"]["displayName"], "Iago");
        assert_eq!(user_handle(&records), record.user_handle);

        // As the second factor.
        let (id, options) = store.keep(rp.start_second_factor(USER, &records, NOW).unwrap());
        assert_eq!(
            options["publicKey"]["allowCredentials"][0]["id"],
            json!(record.credential_id)
        );
        let assertion = browser.get(options, None);
        assert_eq!(assertion.credential_id(), record.credential_id);
        let used = rp
            .finish_second_factor(store.take(&id), USER, &assertion, &records, NOW + 2.0)
            .unwrap();
        assert_eq!((used.counter, used.at), (1, NOW + 2.0));
        assert_eq!(used.credential_id, record.credential_id);
        let record = updated(&record, &used);

        // Without a username: discoverable, modal, and both factors.
        let (id, options) = store.keep(rp.start_password_free(NOW).unwrap());
        assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
        assert_eq!(options.get("mediation"), None);
        let assertion = browser.get(options, Some(&record));
        let used = rp
            .finish_password_free(store.take(&id), &assertion, Some(&record), NOW + 3.0)
            .unwrap();
        assert_eq!(used.counter, 2);
        assert!(used.user_verified && used.counts_as_two_factors());
    }

    #[test]
    fn a_wrong_origin_is_refused() {
        let rp = party(ROOT);
        let mut store = Ceremonies::default();
        // Another realm's page (a subdomain), another port: not the realm's URL.
        for origin in [
            "https://lear.chat.example.com",
            "https://chat.example.com:8443",
        ] {
            let mut browser = Browser::at(origin);
            let started = rp
                .start_registration(USER, "iago@example.com", "", &[], NOW)
                .unwrap();
            let (id, options) = store.keep(started);
            let answer = browser.create(options);
            let finished = rp.finish_registration(store.take(&id), USER, &answer, "x", NOW);
            assert_eq!(finished, Err(Error::WrongOrigin), "{origin}");
        }
        let mut user = Enrolled::new(&rp);
        user.browser.origin = Url::parse("https://lear.chat.example.com").unwrap();
        let (id, assertion) = user.answered(&rp);
        assert_eq!(user.finish(&rp, &id, &assertion), Err(Error::WrongOrigin));
    }

    #[test]
    fn a_wrong_rp_id_is_refused() {
        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        let (id, mut options) = user.ask(&rp);
        // The parent domain is an ID the page may claim, but not this realm's.
        options["publicKey"]["rpId"] = json!("example.com");
        let assertion = user.browser.get(options, None);
        assert_eq!(user.finish(&rp, &id, &assertion), Err(Error::WrongRpId));
    }

    #[test]
    fn a_challenge_is_single_use() {
        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        let (id, assertion) = user.answered(&rp);
        assert!(user.finish(&rp, &id, &assertion).is_ok());
        // The same answer again: the ceremony is gone.
        assert_eq!(user.finish(&rp, &id, &assertion), Err(Error::NoCeremony));
        // The same answer to a new ceremony: it signs the old challenge.
        let (id, _) = user.ask(&rp);
        assert_eq!(
            user.finish(&rp, &id, &assertion),
            Err(Error::WrongChallenge)
        );
    }

    #[test]
    fn an_expired_challenge_is_refused() {
        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        let records = user.records();
        let (id, assertion) = user.answered(&rp);
        let taken = user.store.take(&id);
        let finish = |at| rp.finish_second_factor(taken.clone(), USER, &assertion, &records, at);
        assert_eq!(finish(NOW + 300.0), Err(Error::Expired));
        assert!(finish(NOW + 299.0).is_ok());
        // A registration too.
        let started = rp
            .start_registration(USER, "iago@example.com", "", &records, NOW)
            .unwrap();
        let (id, options) = user.store.keep(started);
        let answer = Browser::at(ROOT).create(options);
        let finished =
            rp.finish_registration(user.store.take(&id), USER, &answer, "x", NOW + 301.0);
        assert_eq!(finished, Err(Error::Expired));
    }

    #[test]
    fn a_counter_going_backwards_is_a_cloned_authenticator() {
        assert!(counter_moves_forward(0, 0));
        assert!(counter_moves_forward(0, 1));
        assert!(counter_moves_forward(4, 5));
        assert!(!counter_moves_forward(5, 5));
        assert!(!counter_moves_forward(5, 4));
        assert!(!counter_moves_forward(5, 0));

        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        // Two ceremonies; the authenticator answers the first with 1, the second with 2.
        let (first, older) = user.answered(&rp);
        let (second, newer) = user.answered(&rp);
        let used = user.finish(&rp, &second, &newer).unwrap();
        assert_eq!(used.counter, 2);
        user.record = updated(&user.record, &used);
        assert_eq!(
            user.finish(&rp, &first, &older),
            Err(Error::ClonedAuthenticator)
        );
        assert_eq!(
            Error::ClonedAuthenticator.reason(),
            "PASSKEY_CLONED_AUTHENTICATOR"
        );

        // Without a username too, against the stored counter.
        let (id, options) = user.store.keep(rp.start_password_free(NOW).unwrap());
        let assertion = user.browser.get(options, Some(&user.record));
        let ahead = CredentialRecord {
            counter: 10,
            ..user.record.clone()
        };
        let finished = rp.finish_password_free(user.store.take(&id), &assertion, Some(&ahead), NOW);
        assert_eq!(finished, Err(Error::ClonedAuthenticator));
    }

    #[test]
    fn an_unknown_credential_is_refused() {
        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        let other = Enrolled::new(&rp).record;

        // A second factor with a passkey that is not (or no longer) the user's.
        let (id, assertion) = user.answered(&rp);
        let taken = user.store.take(&id);
        let finish =
            rp.finish_second_factor(taken, USER, &assertion, std::slice::from_ref(&other), NOW);
        assert_eq!(finish, Err(Error::UnknownCredential));
        assert_eq!(
            rp.start_second_factor(USER, &[], NOW).map(|_| ()),
            Err(Error::NoPasskeys)
        );

        // Without a username: nothing stored under the id, another record, another handle.
        for found in [
            None,
            Some(other.clone()),
            Some(CredentialRecord {
                user_handle: other.user_handle.clone(),
                ..user.record.clone()
            }),
        ] {
            let (id, options) = user.store.keep(rp.start_password_free(NOW).unwrap());
            let assertion = user.browser.get(options, Some(&user.record));
            let taken = user.store.take(&id);
            let finish = rp.finish_password_free(taken, &assertion, found.as_ref(), NOW);
            assert_eq!(finish, Err(Error::UnknownCredential), "{found:?}");
        }
    }

    #[test]
    fn a_ceremony_finishes_only_what_it_began() {
        let rp = party(ROOT);
        let mut user = Enrolled::new(&rp);
        let records = user.records();
        // Begun for this user, finished for another.
        let (id, assertion) = user.answered(&rp);
        let taken = user.store.take(&id);
        let finish = rp.finish_second_factor(taken, USER + 1, &assertion, &records, NOW);
        assert_eq!(finish, Err(Error::WrongCeremony));
        // A second factor's ceremony for a sign-in without a username.
        let (id, assertion) = user.answered(&rp);
        let taken = user.store.take(&id);
        let finish = rp.finish_password_free(taken, &assertion, Some(&user.record), NOW);
        assert_eq!(finish, Err(Error::WrongCeremony));
        // Another realm's.
        let lear = RelyingParty::for_realm(&site(Some(ROOT)), 2, "lear", "Lear").unwrap();
        user.browser.origin = Url::parse(lear.origin()).unwrap();
        let (id, options) = user.store.keep(lear.start_password_free(NOW).unwrap());
        let assertion = user.browser.get(options, Some(&user.record));
        let taken = user.store.take(&id);
        let finish = rp.finish_password_free(taken, &assertion, Some(&user.record), NOW);
        assert_eq!(finish, Err(Error::WrongCeremony));
    }

    #[test]
    fn malformed_answers_are_refused() {
        assert_eq!(Assertion::parse("{}").map(|_| ()), Err(Error::Malformed));
        assert_eq!(
            Assertion::parse("not json").map(|_| ()),
            Err(Error::Malformed)
        );
        let rp = party(ROOT);
        let mut store = Ceremonies::default();
        let started = rp
            .start_registration(USER, "iago@example.com", "", &[], NOW)
            .unwrap();
        let (id, _) = store.keep(started);
        let finished = rp.finish_registration(store.take(&id), USER, "{\"id\":1}", "x", NOW);
        assert_eq!(finished, Err(Error::Malformed));
    }
}
