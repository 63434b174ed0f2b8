//! The relying party: what the server keeps of each provider (its discovery document and
//! keys), the start of a sign-in (the authorization URL) and its finish (the code exchange and
//! the ID token's checks).
//!
//! Discovery happens on first use of an issuer and is cached for the life of the process. A
//! token signed by a key id the cached keys lack makes the provider be discovered again (the
//! document and its keys), at most once a minute per issuer: providers rotate keys by
//! publishing the new one first. A discovery that failed is not tried again for
//! [`RETRY_AFTER_FAILURE`]: starts against a provider that is down fail at once instead of
//! each holding a worker for the whole bound. No lock is held while the provider is asked.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod,
    CoreErrorResponseType, CoreProviderMetadata, CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DiscoveryError, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardErrorResponse, SubjectIdentifier, TokenResponse,
    UserInfoError,
};
use subtle::ConstantTimeEq;
use ureq::Agent;

use super::config::{Provider, check_issuer, is_secure};
use super::http::{Fetcher, HttpError, agent};
use super::id_token::{self, Claimed, Expected, Identity, TokenProblem};
use super::{Error, Step, printable};

/// The least time between two discoveries of one issuer prompted by an unknown key id.
pub const KEY_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a failed discovery is answered from memory.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// The relying party of every provider of every realm: one per server, shared by the workers.
pub struct RelyingParty {
    agent: Agent,
    discovered: Mutex<HashMap<String, Discovered>>,
}

/// What is known of an issuer.
#[derive(Clone)]
enum Discovered {
    Known {
        metadata: Arc<CoreProviderMetadata>,
        at: Instant,
    },
    Failed {
        error: Error,
        at: Instant,
    },
}

/// The authorization request of a sign-in: where to send the browser, and what to keep (single
/// use, bound to the browser) until the provider sends it back.
pub struct Start {
    /// The provider's authorization endpoint with the request in its query.
    pub url: String,
    pub pending: Pending,
}

/// A started sign-in, kept until its callback.
#[derive(Clone, PartialEq)]
pub struct Pending {
    /// `state`: the callback must bring it back.
    pub state: String,
    /// `nonce`: the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge the request carried.
    pub verifier: String,
    /// When the sign-in started (epoch seconds).
    pub started: f64,
    /// Whether it re-confirms a signed-in user (`prompt=login`, `max_age=0`).
    pub reconfirm: bool,
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("started", &self.started)
            .field("reconfirm", &self.reconfirm)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Whether a callback's `state` is this sign-in's, compared in constant time.
    pub fn state_matches(&self, state: &str) -> bool {
        self.state.as_bytes().ct_eq(state.as_bytes()).into()
    }
}

impl Default for RelyingParty {
    fn default() -> Self {
        Self::new()
    }
}

impl RelyingParty {
    /// A relying party that knows no provider yet.
    pub fn new() -> Self {
        Self {
            agent: agent(),
            discovered: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a sign-in: the authorization URL (code flow, PKCE S256, `state`, `nonce`, the
    /// provider's scopes; `prompt=login` and `max_age=0` for a re-confirmation). Asks the
    /// provider only for discovery, and only when it is not cached.
    pub fn start(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        reconfirm: bool,
        now: f64,
    ) -> Result<Start, Error> {
        let fetcher = Fetcher::new(&self.agent);
        let metadata = self.metadata(provider, &fetcher)?;
        let client = client(provider, &metadata, redirect_uri)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(
                provider
                    .scopes
                    .iter()
                    .filter(|s| *s != "openid")
                    .map(|s| Scope::new(s.clone())),
            )
            .set_pkce_challenge(challenge);
        if reconfirm {
            request = request
                .add_prompt(CoreAuthPrompt::Login)
                .set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = request.url();
        Ok(Start {
            url: url.into(),
            pending: Pending {
                state: state.into_secret(),
                nonce: nonce.secret().clone(),
                verifier: verifier.into_secret(),
                started: now,
                reconfirm,
            },
        })
    }

    /// Finishes a sign-in whose callback brought `code` (its `state` already matched):
    /// exchanges the code with the PKCE verifier, and checks the ID token at `now`.
    pub fn finish(
        &self,
        provider: &Provider,
        redirect_uri: &str,
        pending: &Pending,
        code: &str,
        now: f64,
    ) -> Result<Identity, Error> {
        let fetcher = Fetcher::new(&self.agent);
        let metadata = self.metadata(provider, &fetcher)?;
        let client = client(provider, &metadata, redirect_uri)?;
        let response: CoreTokenResponse = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| Error::BadAnswer {
                step: Step::Discovery,
                why: "it names no token endpoint".into(),
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier.clone()))
            .request(&fetcher)
            .map_err(token_error)?;
        let token = response
            .id_token()
            .ok_or(Error::IdToken(TokenProblem::Missing))?;
        let check = |metadata: &CoreProviderMetadata| {
            let expected = Expected {
                issuer: metadata.issuer(),
                client_id: &provider.client_id,
                keys: metadata.jwks(),
                algorithms: metadata.id_token_signing_alg_values_supported(),
                nonce: &pending.nonce,
                authenticated_since: pending.reconfirm.then_some(pending.started),
            };
            id_token::verify(token, &expected, now)
        };
        let claimed = match check(&metadata) {
            Err(Error::IdToken(TokenProblem::UnknownKey)) => {
                match self.rediscover(provider, &fetcher) {
                    Some(fresh) => fresh.and_then(|metadata| check(&metadata)),
                    None => Err(Error::IdToken(TokenProblem::UnknownKey)),
                }
            }
            outcome => outcome,
        }?;
        if claimed.email.is_some() {
            return claimed.identity();
        }
        user_info(&client, &response, &claimed.subject, &fetcher)?.identity()
    }

    /// The provider's discovery document and keys, from the cache or asked for now.
    fn metadata(
        &self,
        provider: &Provider,
        fetcher: &Fetcher<'_>,
    ) -> Result<Arc<CoreProviderMetadata>, Error> {
        match self.cached(&provider.issuer) {
            Some(Discovered::Known { metadata, .. }) => return Ok(metadata),
            Some(Discovered::Failed { error, at }) if at.elapsed() < RETRY_AFTER_FAILURE => {
                return Err(error);
            }
            _ => {}
        }
        self.discover(provider, fetcher)
    }

    /// Discovery again after an unknown key id, unless the last one is less than
    /// [`KEY_REFRESH_INTERVAL`] old (then `None`).
    fn rediscover(
        &self,
        provider: &Provider,
        fetcher: &Fetcher<'_>,
    ) -> Option<Result<Arc<CoreProviderMetadata>, Error>> {
        {
            let mut discovered = self.lock();
            if let Some(Discovered::Known { at, .. }) = discovered.get_mut(&provider.issuer) {
                if at.elapsed() < KEY_REFRESH_INTERVAL {
                    return None;
                }
                // Claimed now, so that concurrent callbacks do not all ask.
                *at = Instant::now();
            }
        }
        Some(self.discover(provider, fetcher))
    }

    fn discover(
        &self,
        provider: &Provider,
        fetcher: &Fetcher<'_>,
    ) -> Result<Arc<CoreProviderMetadata>, Error> {
        let outcome = discover(&provider.issuer, fetcher).map(Arc::new);
        let entry = match &outcome {
            Ok(metadata) => Discovered::Known {
                metadata: Arc::clone(metadata),
                at: Instant::now(),
            },
            Err(error) => Discovered::Failed {
                error: error.clone(),
                at: Instant::now(),
            },
        };
        // A failed rediscovery keeps what was known: its keys still verify other tokens.
        let mut discovered = self.lock();
        let keep_known = outcome.is_err()
            && matches!(
                discovered.get(&provider.issuer),
                Some(Discovered::Known { .. })
            );
        if !keep_known {
            discovered.insert(provider.issuer.clone(), entry);
        }
        outcome
    }

    fn cached(&self, issuer: &str) -> Option<Discovered> {
        self.lock().get(issuer).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Discovered>> {
        // The map holds no invariant a panic could break halfway.
        self.discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The discovery document and its key set, checked: every endpoint is https (or loopback).
fn discover(issuer: &str, fetcher: &Fetcher<'_>) -> Result<CoreProviderMetadata, Error> {
    let bad = |why: String| Error::BadAnswer {
        step: Step::Discovery,
        why,
    };
    check_issuer(issuer).map_err(|e| bad(e.to_string()))?;
    let issuer_url = IssuerUrl::new(issuer.to_owned()).map_err(|e| bad(e.to_string()))?;
    let metadata = CoreProviderMetadata::discover(&issuer_url, fetcher).map_err(|e| match e {
        DiscoveryError::Request(e) => unavailable(Step::Discovery, &e),
        DiscoveryError::Response(status, _, _) => bad(format!("HTTP status {status}")),
        DiscoveryError::Parse(e) => bad(format!(
            "not a discovery document or key set (at {})",
            e.path()
        )),
        DiscoveryError::Validation(why) => bad(printable(&why)),
        _ => bad("it could not be read".into()),
    })?;
    let endpoints = [
        (
            "authorization_endpoint",
            Some(metadata.authorization_endpoint().url()),
        ),
        ("token_endpoint", metadata.token_endpoint().map(|u| u.url())),
        ("jwks_uri", Some(metadata.jwks_uri().url())),
    ];
    for (name, url) in endpoints {
        if let Some(url) = url.filter(|url| !is_secure(url)) {
            return Err(bad(format!("its {name} {url} is not https")));
        }
    }
    Ok(metadata)
}

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// openidconnect's client for a provider: the secret goes by HTTP Basic unless the provider
/// takes it only in the body.
fn client(
    provider: &Provider,
    metadata: &CoreProviderMetadata,
    redirect_uri: &str,
) -> Result<Client, Error> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|_| Error::ReturnUrl(printable(redirect_uri)))?;
    let post_only = metadata
        .token_endpoint_auth_methods_supported()
        .is_some_and(|methods| {
            methods.contains(&CoreClientAuthMethod::ClientSecretPost)
                && !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
    Ok(CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(redirect)
    .set_auth_type(if post_only {
        AuthType::RequestBody
    } else {
        AuthType::BasicAuth
    }))
}

/// The claims of the userinfo endpoint, for the same subject as the ID token, when the ID
/// token has no email.
fn user_info(
    client: &Client,
    response: &CoreTokenResponse,
    subject: &str,
    fetcher: &Fetcher<'_>,
) -> Result<Claimed, Error> {
    let bad = |why: String| Error::BadAnswer {
        step: Step::UserInfo,
        why,
    };
    let claims: CoreUserInfoClaims = client
        .user_info(
            response.access_token().clone(),
            Some(SubjectIdentifier::new(subject.to_owned())),
        )
        // No userinfo endpoint: the ID token was all there is.
        .map_err(|_| Error::NoEmail)?
        .request(fetcher)
        .map_err(|e| match e {
            UserInfoError::Request(e) => unavailable(Step::UserInfo, &e),
            UserInfoError::Response(status, _, _) => bad(format!("HTTP status {status}")),
            UserInfoError::Parse(e) => bad(format!("not a userinfo answer (at {})", e.path())),
            UserInfoError::ClaimsVerification(e) => bad(printable(&e.to_string())),
            _ => bad("it could not be read".into()),
        })?;
    Ok(Claimed::new(
        claims.subject(),
        claims.email(),
        claims.email_verified(),
        claims.name(),
    ))
}

fn unavailable(step: Step, error: &HttpError) -> Error {
    Error::Unavailable {
        step,
        why: printable(&error.to_string()),
    }
}

/// The token endpoint's failures, without its body (which may echo the code).
fn token_error(
    error: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> Error {
    let bad = |why: String| Error::BadAnswer {
        step: Step::Token,
        why,
    };
    match error {
        RequestTokenError::ServerResponse(response) => Error::CodeRefused {
            error: printable(response.error().as_ref()),
        },
        RequestTokenError::Request(e) => unavailable(Step::Token, &e),
        RequestTokenError::Parse(e, _) => bad(format!("not a token response (at {})", e.path())),
        RequestTokenError::Other(why) => bad(printable(&why)),
    }
}
