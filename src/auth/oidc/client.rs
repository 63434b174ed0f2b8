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
//!
//! At most `max_waiting` starts and callbacks talk to providers at once; more are refused at
//! once as [`Error::Busy`], so that a frozen provider holds a bounded number of workers and
//! password logins and `server_settings` keep the rest.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
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

use super::config::{ConfigError, Provider, check_issuer, is_secure};
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
    /// Steps talking to providers now, and how many may.
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// One step's place among those talking to providers, given back when dropped.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What is known of an issuer.
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

impl RelyingParty {
    /// A relying party that knows no provider yet, and lets at most `max_waiting` steps
    /// (at least one) talk to providers at once.
    pub fn new(max_waiting: usize) -> Self {
        Self {
            agent: agent(),
            discovered: Mutex::new(HashMap::new()),
            waiting: AtomicUsize::new(0),
            max_waiting: max_waiting.max(1),
        }
    }

    /// A place for a step that talks to a provider, or [`Error::Busy`].
    fn place(&self) -> Result<Place<'_>, Error> {
        let taken = self.waiting.fetch_add(1, Ordering::AcqRel);
        let place = Place(&self.waiting);
        if taken >= self.max_waiting {
            return Err(Error::Busy);
        }
        Ok(place)
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
        let metadata = match self.cached(provider)? {
            Some(metadata) => metadata,
            None => {
                let _place = self.place()?;
                self.discover(provider, &Fetcher::new(&self.agent))?
            }
        };
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
                    .scope_list()
                    .filter(|s| *s != "openid")
                    .map(|s| Scope::new(s.to_owned())),
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
        let _place = self.place()?;
        let fetcher = Fetcher::new(&self.agent);
        let metadata = match self.cached(provider)? {
            Some(metadata) => metadata,
            None => self.discover(provider, &fetcher)?,
        };
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

    /// The provider's discovery document and keys if known; `None` if it must be asked; the
    /// error of a discovery that failed less than [`RETRY_AFTER_FAILURE`] ago.
    fn cached(&self, provider: &Provider) -> Result<Option<Arc<CoreProviderMetadata>>, Error> {
        match self.lock().get(&provider.issuer) {
            Some(Discovered::Known { metadata, .. }) => Ok(Some(Arc::clone(metadata))),
            Some(Discovered::Failed { error, at }) if at.elapsed() < RETRY_AFTER_FAILURE => {
                Err(error.clone())
            }
            _ => Ok(None),
        }
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
    check_issuer(issuer).map_err(Error::Config)?;
    let issuer_url = IssuerUrl::new(issuer.to_owned())
        .map_err(|_| Error::Config(ConfigError::NotAUrl(issuer.to_owned())))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::oidc::config::parse_scopes;
    use crate::auth::oidc::id_token::tests::{CLIENT, claims, key, sign};
    use openidconnect::PrivateSigningKey;
    use openidconnect::core::{CoreEdDsaPrivateSigningKey, CoreJsonWebKeySet};
    use std::thread;

    const NOW: f64 = 1_796_000_000.0;
    const RETURN_URL: &str = "http://127.0.0.1:9991/complete/oidc/";

    /// What the fake provider serves, and how often each path was asked for.
    #[derive(Default)]
    struct Served {
        discovery_status: u16,
        jwks: String,
        id_token: String,
        hits: HashMap<String, usize>,
    }

    /// A provider on loopback (tiny_http in a thread): discovery, keys and a token endpoint
    /// that answers any code with the ID token the test put there.
    struct FakeProvider {
        issuer: String,
        served: Arc<Mutex<Served>>,
        server: Arc<tiny_http::Server>,
        thread: Option<thread::JoinHandle<()>>,
    }

    impl FakeProvider {
        fn new() -> Self {
            let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("listen"));
            let issuer = format!("http://{}", server.server_addr());
            let served = Arc::new(Mutex::new(Served {
                discovery_status: 200,
                ..Served::default()
            }));
            let document = json_document(&issuer);
            let thread = {
                let (server, served) = (Arc::clone(&server), Arc::clone(&served));
                thread::spawn(move || {
                    for request in server.incoming_requests() {
                        let mut s = served.lock().expect("served");
                        let path = request.url().to_owned();
                        *s.hits.entry(path.clone()).or_default() += 1;
                        let (status, body) = match path.as_str() {
                            "/.well-known/openid-configuration" => {
                                (s.discovery_status, document.clone())
                            }
                            "/jwks" => (200, s.jwks.clone()),
                            "/token" => (
                                200,
                                serde_json::json!({
                                    "access_token": "an-access-token",
                                    "token_type": "Bearer",
                                    "id_token": s.id_token,
                                })
                                .to_string(),
                            ),
                            _ => (404, String::new()),
                        };
                        drop(s);
                        let header =
                            tiny_http::Header::from_bytes("Content-Type", "application/json")
                                .expect("header");
                        let _ = request.respond(
                            tiny_http::Response::from_string(body)
                                .with_status_code(status)
                                .with_header(header),
                        );
                    }
                })
            };
            Self {
                issuer,
                served,
                server,
                thread: Some(thread),
            }
        }

        fn publish(&self, keys: &[&CoreEdDsaPrivateSigningKey]) {
            let set =
                CoreJsonWebKeySet::new(keys.iter().map(|k| k.as_verification_key()).collect());
            self.served.lock().expect("served").jwks = serde_json::to_string(&set).expect("jwks");
        }

        /// The token endpoint's next ID token: for `pending`, signed by `key`.
        fn will_sign(&self, pending: &Pending, key: &CoreEdDsaPrivateSigningKey) {
            let token = sign(
                claims(&self.issuer, CLIENT, NOW + 300.0, &pending.nonce),
                key,
            );
            self.served.lock().expect("served").id_token = token.to_string();
        }

        fn hits(&self, path: &str) -> usize {
            let served = self.served.lock().expect("served");
            served.hits.get(path).copied().unwrap_or(0)
        }

        fn provider(&self) -> Provider {
            Provider {
                id: 0,
                realm_id: 0,
                name: "fake".into(),
                issuer: self.issuer.clone(),
                client_id: CLIENT.into(),
                client_secret: "secret".into(),
                scopes: parse_scopes("email").expect("scopes"),
                display_name: "Fake".into(),
                display_icon: None,
                auto_signup: false,
            }
        }
    }

    impl Drop for FakeProvider {
        fn drop(&mut self) {
            self.server.unblock();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn json_document(issuer: &str) -> String {
        serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
        })
        .to_string()
    }

    impl RelyingParty {
        /// Makes everything known seem `by` older.
        fn age(&self, by: Duration) {
            for entry in self.lock().values_mut() {
                let (Discovered::Known { at, .. } | Discovered::Failed { at, .. }) = entry;
                *at = at.checked_sub(by).expect("an instant that far back");
            }
        }
    }

    #[test]
    fn discovery_is_cached_and_an_unknown_key_rediscovers_at_most_once_a_minute() {
        let fake = FakeProvider::new();
        let (k1, k2, k3) = (key("k1"), key("k2"), key("k3"));
        fake.publish(&[&k1]);
        let party = RelyingParty::new(4);
        let provider = fake.provider();
        let start = || {
            party
                .start(&provider, RETURN_URL, false, NOW)
                .expect("start")
        };
        let finish = |pending: &Pending| party.finish(&provider, RETURN_URL, pending, "code", NOW);

        let first = start();
        assert!(first.url.starts_with(&format!("{}/auth?", fake.issuer)));
        assert!(first.url.contains("scope=openid+email&"), "{}", first.url);
        let second = start();
        assert_ne!(first.pending.state, second.pending.state);
        assert_eq!(fake.hits("/.well-known/openid-configuration"), 1);
        assert_eq!(fake.hits("/jwks"), 1);

        fake.will_sign(&first.pending, &k1);
        assert_eq!(
            finish(&first.pending).map(|i| i.email),
            Ok("iago@zulip.com".into())
        );
        assert_eq!(fake.hits("/token"), 1);
        assert_eq!(fake.hits("/jwks"), 1);

        // The provider rotates to k2 less than a minute after discovery: not asked again.
        fake.publish(&[&k1, &k2]);
        fake.will_sign(&second.pending, &k2);
        assert_eq!(
            finish(&second.pending),
            Err(Error::IdToken(TokenProblem::UnknownKey))
        );
        assert_eq!(fake.hits("/jwks"), 1);

        // A minute on, the unknown key makes it discovered again, once.
        party.age(KEY_REFRESH_INTERVAL);
        let third = start();
        fake.will_sign(&third.pending, &k2);
        assert!(finish(&third.pending).is_ok());
        assert_eq!(fake.hits("/.well-known/openid-configuration"), 2);
        assert_eq!(fake.hits("/jwks"), 2);
        let fourth = start();
        fake.publish(&[&k3]);
        fake.will_sign(&fourth.pending, &k3);
        assert_eq!(
            finish(&fourth.pending),
            Err(Error::IdToken(TokenProblem::UnknownKey))
        );
        assert_eq!(fake.hits("/jwks"), 2);
    }

    #[test]
    fn a_failed_discovery_is_remembered_for_a_while() {
        let fake = FakeProvider::new();
        fake.publish(&[&key("k1")]);
        fake.served.lock().expect("served").discovery_status = 503;
        let party = RelyingParty::new(4);
        let provider = fake.provider();
        let start = || party.start(&provider, RETURN_URL, false, NOW).err();
        let refused = Some(Error::BadAnswer {
            step: Step::Discovery,
            why: "HTTP status 503 Service Unavailable".into(),
        });
        assert_eq!(start(), refused);
        assert_eq!(start(), refused);
        assert_eq!(fake.hits("/.well-known/openid-configuration"), 1);
        fake.served.lock().expect("served").discovery_status = 200;
        party.age(RETRY_AFTER_FAILURE);
        assert_eq!(start(), None);
        assert_eq!(fake.hits("/.well-known/openid-configuration"), 2);
    }

    #[test]
    fn an_issuer_off_loopback_without_https_is_refused_before_any_request() {
        let fake = FakeProvider::new();
        let mut provider = fake.provider();
        provider.issuer = "http://id.example.com".into();
        assert_eq!(
            RelyingParty::new(1)
                .start(&provider, RETURN_URL, false, NOW)
                .err(),
            Some(Error::Config(ConfigError::NotHttps(
                provider.issuer.clone()
            )))
        );
    }

    #[test]
    fn at_most_max_waiting_steps_talk_to_providers() {
        let fake = FakeProvider::new();
        let k1 = key("k1");
        fake.publish(&[&k1]);
        let party = RelyingParty::new(1);
        let provider = fake.provider();
        let held = party.place().expect("the one place");
        assert_eq!(
            party.start(&provider, RETURN_URL, false, NOW).err(),
            Some(Error::Busy)
        );
        assert_eq!(fake.hits("/.well-known/openid-configuration"), 0);
        drop(held);
        let start = party
            .start(&provider, RETURN_URL, false, NOW)
            .expect("start");
        // A start from the cache needs no place; a callback does.
        let held = party.place().expect("the one place");
        assert!(party.start(&provider, RETURN_URL, false, NOW).is_ok());
        assert_eq!(
            party.finish(&provider, RETURN_URL, &start.pending, "code", NOW),
            Err(Error::Busy)
        );
        drop(held);
        fake.will_sign(&start.pending, &k1);
        assert!(
            party
                .finish(&provider, RETURN_URL, &start.pending, "code", NOW)
                .is_ok()
        );
        assert_eq!(party.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_reconfirmation_asks_for_a_new_login_and_pending_hides_its_secrets() {
        let fake = FakeProvider::new();
        fake.publish(&[&key("k1")]);
        let party = RelyingParty::new(4);
        let start = party
            .start(&fake.provider(), RETURN_URL, true, NOW)
            .expect("start");
        let url = openidconnect::url::Url::parse(&start.url).expect("a URL");
        let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
        let param = |name: &str| query.get(name).map(String::as_str);
        assert_eq!(param("prompt"), Some("login"));
        assert_eq!(param("max_age"), Some("0"));
        assert_eq!(param("code_challenge_method"), Some("S256"));
        assert_eq!(param("state"), Some(start.pending.state.as_str()));
        assert!(!start.url.contains(&start.pending.verifier));
        let debug = format!("{:?}", start.pending);
        for secret in [
            &start.pending.state,
            &start.pending.nonce,
            &start.pending.verifier,
        ] {
            assert!(!debug.contains(secret.as_str()), "{debug}");
        }
        assert!(start.pending.state_matches(&start.pending.state.clone()));
        assert!(
            !start
                .pending
                .state_matches(&format!("{}x", start.pending.state))
        );
        assert!(!start.pending.state_matches(""));
    }
}
