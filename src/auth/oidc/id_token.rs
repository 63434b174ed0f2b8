//! The ID token's checks (OpenID Connect Core §3.1.3.7), through openidconnect's verifier with
//! our settings, and the identity taken from it.
//!
//! - The signature verifies with a key the provider publishes at `jwks_uri`, by an asymmetric
//!   algorithm the provider lists: never `none`, and never HS* (whose key would be the client
//!   secret, which proves nothing about the provider).
//! - `iss` is the issuer, `aud` holds the client id (and no audience we do not know), `exp` is
//!   after now, and `nonce` is the one sent with this sign-in.
//! - After a re-confirmation (`prompt=login`, `max_age=0`), `auth_time` is not older than the
//!   start of this sign-in.
//! - Then, from the ID token or the userinfo endpoint: `email` is present, `email_verified` is
//!   not false; `name`, when present, is cleaned as every stored name (`text::stored_name`).

use std::fmt;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, EndUserEmail, EndUserName, IssuerUrl, JwsSigningAlgorithm,
    LocalizedClaim, Nonce, SignatureVerificationError, SubjectIdentifier,
};

use super::Error;
use crate::text;

/// How far the provider's clock may be behind ours when it states `auth_time`.
const CLOCK_SKEW_SECONDS: f64 = 60.0;

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`: the provider's stable id of the user.
    pub subject: String,
    /// `email`, as the provider wrote it.
    pub email: String,
    /// `name` cleaned as every stored name is, when present and not blank.
    pub name: Option<String>,
}

/// What the provider says of the user, from the ID token or, when that has no email, from
/// the userinfo endpoint (strict providers put the `email` and `profile` claims only there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    /// Without control characters, and `None` when blank.
    pub name: Option<String>,
}

impl Claimed {
    /// The claims of an ID token or a userinfo answer.
    pub fn new(
        subject: &SubjectIdentifier,
        email: Option<&EndUserEmail>,
        email_verified: Option<bool>,
        name: Option<&LocalizedClaim<EndUserName>>,
    ) -> Self {
        Self {
            subject: subject.to_string(),
            email: email.map(|e| e.to_string()),
            email_verified,
            name: name
                .and_then(|name| name.get(None))
                .and_then(|name| text::stored_name(name, text::MAX_NAME)),
        }
    }

    /// The identity, if the email is there and not said to be unverified.
    pub fn identity(self) -> Result<Identity, Error> {
        let email = self.email.ok_or(Error::NoEmail)?;
        if self.email_verified == Some(false) {
            return Err(Error::EmailUnverified);
        }
        Ok(Identity {
            subject: self.subject,
            email,
            name: self.name,
        })
    }
}

/// Which check an ID token failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// The token endpoint's answer has no `id_token` (was `openid` among the scopes?).
    Missing,
    /// `alg: none`.
    Unsigned,
    /// An algorithm the provider does not list, or a symmetric one.
    Algorithm,
    /// No published key matches the token's `kid` and algorithm, even after fetching the keys
    /// again.
    UnknownKey,
    /// The signature does not verify with the published key.
    Signature,
    /// `iss` is not the issuer.
    Issuer,
    /// `aud` does not hold the client id, or holds an unknown audience too.
    Audience,
    /// `exp` is now or past.
    Expired,
    /// `nonce` is missing or not this sign-in's.
    Nonce,
    /// After a re-confirmation, the provider did not sign the user in again.
    NotFresh,
    /// Not a well-formed ID token.
    Malformed,
}

impl TokenProblem {
    /// The stable code of logs and audit rows.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "oidc_no_id_token",
            Self::Unsigned => "oidc_unsigned",
            Self::Algorithm => "oidc_algorithm",
            Self::UnknownKey => "oidc_unknown_key",
            Self::Signature => "oidc_signature",
            Self::Issuer => "oidc_issuer",
            Self::Audience => "oidc_audience",
            Self::Expired => "oidc_expired",
            Self::Nonce => "oidc_nonce",
            Self::NotFresh => "oidc_not_fresh",
            Self::Malformed => "oidc_malformed",
        }
    }
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "the token endpoint returned no ID token",
            Self::Unsigned => "it is not signed (alg: none)",
            Self::Algorithm => "its algorithm is not an asymmetric one the provider lists",
            Self::UnknownKey => "no key the provider publishes matches it",
            Self::Signature => "its signature does not verify with the provider's key",
            Self::Issuer => "its issuer (iss) is not the configured issuer",
            Self::Audience => "its audience (aud) is not this client",
            Self::Expired => "it has expired (exp)",
            Self::Nonce => "its nonce is not this sign-in's",
            Self::NotFresh => "the provider did not sign the user in again (auth_time)",
            Self::Malformed => "it is not a well-formed ID token",
        })
    }
}

/// What an ID token must match.
pub struct Expected<'a> {
    pub issuer: &'a IssuerUrl,
    pub client_id: &'a str,
    /// The provider's published keys.
    pub keys: &'a CoreJsonWebKeySet,
    /// `id_token_signing_alg_values_supported` of the discovery document.
    pub algorithms: &'a [CoreJwsSigningAlgorithm],
    /// The nonce sent with the authorization request.
    pub nonce: &'a str,
    /// For a re-confirmation: when it started (epoch seconds).
    pub authenticated_since: Option<f64>,
}

/// The claims of `token`, checked against `expected` at `now` (epoch seconds).
pub fn verify(token: &CoreIdToken, expected: &Expected<'_>, now: f64) -> Result<Claimed, Error> {
    let mut algorithms: Vec<_> = expected
        .algorithms
        .iter()
        .filter(|alg| **alg != CoreJwsSigningAlgorithm::None && !alg.uses_shared_secret())
        .cloned()
        .collect();
    if algorithms.is_empty() {
        // Discovery's default (OpenID Connect Discovery §3: RS256 must be supported).
        algorithms.push(CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    }
    let at = timestamp(now);
    let since = expected.authenticated_since;
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(expected.client_id.to_owned()),
        expected.issuer.clone(),
        expected.keys.clone(),
    )
    .set_allowed_algs(algorithms)
    .set_time_fn(move || at)
    .set_auth_time_verifier_fn(move |auth_time| match (since, auth_time) {
        (None, _) => Ok(()),
        (Some(since), Some(t)) if t.timestamp() as f64 >= since - CLOCK_SKEW_SECONDS => Ok(()),
        (Some(_), _) => Err("not signed in again".to_owned()),
    });
    let nonce = Nonce::new(expected.nonce.to_owned());
    let claims = token
        .claims(&verifier, &nonce)
        .map_err(|e| Error::IdToken(problem(&e)))?;
    Ok(Claimed::new(
        claims.subject(),
        claims.email(),
        claims.email_verified(),
        claims.name(),
    ))
}

fn timestamp(epoch_seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((epoch_seconds * 1000.0) as i64).unwrap_or_default()
}

fn problem(error: &ClaimsVerificationError) -> TokenProblem {
    use SignatureVerificationError as S;
    match error {
        ClaimsVerificationError::Expired(_) => TokenProblem::Expired,
        ClaimsVerificationError::InvalidAudience(_) => TokenProblem::Audience,
        ClaimsVerificationError::InvalidIssuer(_) => TokenProblem::Issuer,
        ClaimsVerificationError::InvalidNonce(_) => TokenProblem::Nonce,
        ClaimsVerificationError::InvalidAuthTime(_) => TokenProblem::NotFresh,
        ClaimsVerificationError::SignatureVerification(e) => match e {
            S::NoSignature => TokenProblem::Unsigned,
            S::DisallowedAlg(_) | S::UnsupportedAlg(_) => TokenProblem::Algorithm,
            S::NoMatchingKey | S::AmbiguousKeyId(_) => TokenProblem::UnknownKey,
            _ => TokenProblem::Signature,
        },
        _ => TokenProblem::Malformed,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64ct::{Base64, Base64UrlUnpadded, Encoding};
    use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreIdTokenClaims};
    use openidconnect::{
        Audience, EmptyAdditionalClaims, JsonWebKeyId, PrivateSigningKey, StandardClaims,
    };
    use serde_json::json;
    use std::str::FromStr;

    pub const ISSUER: &str = "https://id.example.com/realms/zulip";
    pub const CLIENT: &str = "zulip";
    pub const NONCE: &str = "the-nonce-of-this-sign-in";
    const NOW: f64 = 1_796_000_000.0;

    /// An Ed25519 key made now, with its id.
    pub fn key(kid: &str) -> CoreEdDsaPrivateSigningKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random");
        // PKCS#8 for Ed25519 (RFC 8410): a fixed prefix, then the 32-byte seed.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            Base64::encode_string(&der)
        );
        CoreEdDsaPrivateSigningKey::from_ed25519_pem(&pem, Some(JsonWebKeyId::new(kid.into())))
            .expect("an Ed25519 key")
    }

    pub fn claims(issuer: &str, audience: &str, exp: f64, nonce: &str) -> CoreIdTokenClaims {
        CoreIdTokenClaims::new(
            IssuerUrl::new(issuer.into()).expect("issuer"),
            vec![Audience::new(audience.into())],
            timestamp(exp),
            timestamp(exp - 300.0),
            StandardClaims::new(SubjectIdentifier::new("user-1".into()))
                .set_email(Some(EndUserEmail::new("iago@zulip.com".into())))
                .set_email_verified(Some(true))
                .set_name(Some(LocalizedClaim::from(EndUserName::new(
                    "Iago\u{1b}[2J\n ".into(),
                )))),
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(nonce.into())))
    }

    pub fn good_claims() -> CoreIdTokenClaims {
        claims(ISSUER, CLIENT, NOW + 300.0, NONCE)
    }

    pub fn sign(claims: CoreIdTokenClaims, key: &CoreEdDsaPrivateSigningKey) -> CoreIdToken {
        CoreIdToken::new(claims, key, CoreJwsSigningAlgorithm::EdDsa, None, None).expect("signed")
    }

    fn check(token: &CoreIdToken, keys: &CoreJsonWebKeySet) -> Result<Identity, Error> {
        check_with(token, keys, None)
    }

    fn check_with(
        token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
        since: Option<f64>,
    ) -> Result<Identity, Error> {
        let issuer = IssuerUrl::new(ISSUER.into()).expect("issuer");
        let expected = Expected {
            issuer: &issuer,
            client_id: CLIENT,
            keys,
            algorithms: &[
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::EdDsa,
                CoreJwsSigningAlgorithm::HmacSha256,
                CoreJwsSigningAlgorithm::None,
            ],
            nonce: NONCE,
            authenticated_since: since,
        };
        verify(token, &expected, NOW).and_then(Claimed::identity)
    }

    fn refused(problem: TokenProblem) -> Result<Identity, Error> {
        Err(Error::IdToken(problem))
    }

    #[test]
    fn a_good_token_gives_the_identity_with_a_clean_name() {
        let k = key("k1");
        let keys = CoreJsonWebKeySet::new(vec![k.as_verification_key()]);
        assert_eq!(
            check(&sign(good_claims(), &k), &keys),
            Ok(Identity {
                subject: "user-1".into(),
                email: "iago@zulip.com".into(),
                name: Some("Iago[2J".into()),
            })
        );
    }

    #[test]
    fn expired_wrong_audience_issuer_and_nonce_are_refused() {
        let k = key("k1");
        let keys = CoreJsonWebKeySet::new(vec![k.as_verification_key()]);
        let with = |c| check(&sign(c, &k), &keys);
        assert_eq!(
            with(claims(ISSUER, CLIENT, NOW, NONCE)),
            refused(TokenProblem::Expired)
        );
        assert_eq!(
            with(claims(ISSUER, CLIENT, NOW - 1.0, NONCE)),
            refused(TokenProblem::Expired)
        );
        assert_eq!(
            with(claims(ISSUER, "another-client", NOW + 300.0, NONCE)),
            refused(TokenProblem::Audience)
        );
        assert_eq!(
            with(claims(
                "https://evil.example.com/realms/zulip",
                CLIENT,
                NOW + 300.0,
                NONCE
            )),
            refused(TokenProblem::Issuer)
        );
        assert_eq!(
            with(claims(ISSUER, CLIENT, NOW + 300.0, "another-nonce")),
            refused(TokenProblem::Nonce)
        );
        assert_eq!(
            with(good_claims().set_nonce(None)),
            refused(TokenProblem::Nonce)
        );
        // An unknown audience beside ours.
        let two = good_claims().set_audiences(vec![
            Audience::new(CLIENT.into()),
            Audience::new("someone-else".into()),
        ]);
        assert_eq!(with(two), refused(TokenProblem::Audience));
    }

    #[test]
    fn a_wrong_key_an_unknown_key_and_alg_none_are_refused() {
        let published = key("k1");
        let keys = CoreJsonWebKeySet::new(vec![published.as_verification_key()]);
        // Another key under the published key's id.
        let impostor = key("k1");
        assert_eq!(
            check(&sign(good_claims(), &impostor), &keys),
            refused(TokenProblem::Signature)
        );
        // A key id the provider does not publish (yet).
        assert_eq!(
            check(&sign(good_claims(), &key("k2")), &keys),
            refused(TokenProblem::UnknownKey)
        );
        // alg: none, with a valid payload and an empty signature.
        let good = sign(good_claims(), &published).to_string();
        let payload = good.split('.').nth(1).expect("payload");
        let header = Base64UrlUnpadded::encode_string(br#"{"alg":"none"}"#);
        let unsigned = CoreIdToken::from_str(&format!("{header}.{payload}.")).expect("parses");
        assert_eq!(check(&unsigned, &keys), refused(TokenProblem::Unsigned));
        // HS256 keyed with something public (the client id) is not a provider's signature,
        // even when discovery lists HS256.
        let header = Base64UrlUnpadded::encode_string(br#"{"alg":"HS256","kid":"k1"}"#);
        let hs = CoreIdToken::from_str(&format!("{header}.{payload}.AAAA")).expect("parses");
        assert_eq!(check(&hs, &keys), refused(TokenProblem::Algorithm));
        // RS256 is listed but the key is Ed25519: no key matches.
        let header = Base64UrlUnpadded::encode_string(br#"{"alg":"RS256","kid":"k1"}"#);
        let rs = CoreIdToken::from_str(&format!("{header}.{payload}.AAAA")).expect("parses");
        assert_eq!(check(&rs, &keys), refused(TokenProblem::UnknownKey));
        // A payload changed after signing.
        let (head, rest) = good.split_once('.').expect("parts");
        let (_, signature) = rest.split_once('.').expect("parts");
        let mut changed: serde_json::Value =
            serde_json::from_slice(&Base64UrlUnpadded::decode_vec(payload).expect("base64"))
                .expect("json");
        changed["email"] = json!("desdemona@zulip.com");
        let changed = Base64UrlUnpadded::encode_string(changed.to_string().as_bytes());
        let forged =
            CoreIdToken::from_str(&format!("{head}.{changed}.{signature}")).expect("parses");
        assert_eq!(check(&forged, &keys), refused(TokenProblem::Signature));
    }

    #[test]
    fn email_must_be_present_and_not_unverified() {
        let k = key("k1");
        let keys = CoreJsonWebKeySet::new(vec![k.as_verification_key()]);
        let with_standard = |f: fn(CoreIdTokenClaims) -> CoreIdTokenClaims| {
            check(&sign(f(good_claims()), &k), &keys)
        };
        assert_eq!(with_standard(|s| s.set_email(None)), Err(Error::NoEmail));
        assert_eq!(
            with_standard(|s| s.set_email_verified(Some(false))),
            Err(Error::EmailUnverified)
        );
        // Absent email_verified (as some providers send) is accepted; a blank name is none.
        let identity = with_standard(|s| {
            s.set_email_verified(None)
                .set_name(Some(LocalizedClaim::from(EndUserName::new(" \n".into()))))
        })
        .expect("accepted");
        assert_eq!(identity.name, None);
        // A name is cleaned as every stored name is: no invisible characters, at most
        // text::MAX_NAME characters.
        let long = format!("\u{202e}Ada\u{200b} {}", "L".repeat(200));
        let claims = good_claims().set_name(Some(LocalizedClaim::from(EndUserName::new(long))));
        let identity = check(&sign(claims, &k), &keys).expect("accepted");
        let name = identity.name.expect("a name");
        assert!(name.starts_with("Ada L"), "{name}");
        assert_eq!(name.chars().count(), crate::text::MAX_NAME);
    }

    #[test]
    fn a_reconfirmation_needs_a_fresh_auth_time() {
        let k = key("k1");
        let keys = CoreJsonWebKeySet::new(vec![k.as_verification_key()]);
        let started = NOW - 30.0;
        let with_auth_time = |t: Option<f64>| {
            check_with(
                &sign(good_claims().set_auth_time(t.map(timestamp)), &k),
                &keys,
                Some(started),
            )
        };
        assert!(with_auth_time(Some(NOW - 10.0)).is_ok());
        // Within the clock skew.
        assert!(with_auth_time(Some(started - 50.0)).is_ok());
        assert_eq!(
            with_auth_time(Some(started - 3600.0)),
            refused(TokenProblem::NotFresh)
        );
        assert_eq!(with_auth_time(None), refused(TokenProblem::NotFresh));
        // Without a re-confirmation, auth_time does not matter.
        assert!(check(&sign(good_claims(), &k), &keys).is_ok());
    }
}
