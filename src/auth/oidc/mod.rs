//! Sign-in through an organization's OpenID provider (issue 22): the relying party of
//! OpenID Connect's authorization code flow, with PKCE (S256), `state` and `nonce`.
//!
//! - [`config`]: a realm's provider as the operator configures it, and the rules of its
//!   settings (the issuer is https except on loopback).
//! - [`http`]: the bounded synchronous HTTP client every request to a provider goes through.
//! - [`RelyingParty`]: discovery and keys cached in-process, [`RelyingParty::start`] (the
//!   authorization URL and what to keep until the callback) and [`RelyingParty::finish`] (the
//!   code exchange and the ID token's checks, ending in an [`Identity`]).
//! - [`id_token`]: those checks: the signature by the provider's published keys, `iss`,
//!   `aud`, `exp`, `nonce`, no `alg: none`, a fresh `auth_time` after a re-confirmation, and
//!   the email (refused when `email_verified` is false), from the userinfo endpoint when the
//!   ID token lacks it.
//!
//! The relying-party work is openidconnect's; this module chooses its settings and turns its
//! errors into [`Error`], whose text is for the operator and never carries a code, a token,
//! `state`, a nonce, a verifier or a secret.

mod client;
pub mod config;
pub mod http;
pub mod id_token;

use std::fmt;

pub use client::{Pending, RelyingParty, Start};
pub use config::{ConfigError, Provider};
pub use id_token::{Claimed, Identity, TokenProblem};

/// Which request to the provider failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `/.well-known/openid-configuration`.
    Discovery,
    /// The key set at `jwks_uri`.
    Keys,
    /// The token endpoint, exchanging the code.
    Token,
    /// The userinfo endpoint, when the ID token has no email.
    UserInfo,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Discovery => "discovery document",
            Self::Keys => "key set",
            Self::Token => "token endpoint",
            Self::UserInfo => "userinfo endpoint",
        })
    }
}

/// Why a sign-in through the provider did not end in an [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The provider could not be asked: down, frozen, refused, TLS failed.
    Unavailable { step: Step, why: String },
    /// The provider answered, but not with what OpenID Connect says it should.
    BadAnswer { step: Step, why: String },
    /// The token endpoint refused the code; `error` is its OAuth error code (such as
    /// `invalid_grant`: used, expired, or issued for another client or verifier).
    CodeRefused { error: String },
    /// The ID token failed a check.
    IdToken(TokenProblem),
    /// The ID token has no `email` claim: the provider was not asked for the `email` scope,
    /// or does not release it to this client.
    NoEmail,
    /// The provider says the address is not verified.
    EmailUnverified,
    /// The provider's settings cannot be used (checked again before each discovery).
    Config(ConfigError),
    /// Too many sign-ins are waiting for identity providers already.
    Busy,
    /// The return URL given is not an absolute URL (a fault of the caller, not the provider).
    ReturnUrl(String),
}

impl Error {
    /// Whether the provider could not be asked (a page says "try again later"), rather than
    /// refusing this sign-in.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Busy)
    }

    /// The stable code of logs and audit rows.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "oidc_unavailable",
            Self::BadAnswer { .. } => "oidc_bad_answer",
            Self::CodeRefused { .. } => "oidc_code_refused",
            Self::IdToken(problem) => problem.reason(),
            Self::NoEmail => "oidc_no_email",
            Self::EmailUnverified => "oidc_email_unverified",
            Self::Config(_) => "oidc_config",
            Self::Busy => "oidc_busy",
            Self::ReturnUrl(_) => "oidc_return_url",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { step, why } => {
                write!(
                    f,
                    "the identity provider's {step} could not be fetched: {why}"
                )
            }
            Self::BadAnswer { step, why } => {
                write!(
                    f,
                    "the identity provider's {step} gave an unusable answer: {why}"
                )
            }
            Self::CodeRefused { error } => {
                write!(
                    f,
                    "the identity provider refused the authorization code ({error})"
                )
            }
            Self::IdToken(problem) => write!(f, "the ID token was refused: {problem}"),
            Self::NoEmail => f.write_str(
                "the ID token has no email claim (is the email scope configured and released \
                 to this client?)",
            ),
            Self::EmailUnverified => {
                f.write_str("the identity provider says the email address is not verified")
            }
            Self::Config(e) => write!(f, "the identity provider's settings cannot be used: {e}"),
            Self::Busy => f.write_str("too many sign-ins are waiting for identity providers"),
            Self::ReturnUrl(url) => write!(f, "the return URL {url:?} is not an absolute URL"),
        }
    }
}

impl std::error::Error for Error {}

/// Text from a provider, fit for a log line: printable, at most 100 characters.
fn printable(text: &str) -> String {
    crate::text::strip_invisibles(text)
        .chars()
        .take(100)
        .collect()
}
