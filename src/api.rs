//! The API: a route table and one handler per endpoint, each a function from a [`Request`]
//! to a [`Response`] over the worker's store. Wire behaviour follows docs/wire.md section by
//! section; the check order inside each handler is the spec's and matters. The login itself
//! is `auth::login`'s: this module maps its outcome to the wire, in [`login_error`].

mod keys;
mod settings;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use log::warn;
use serde::Serialize;

use crate::auth::basic::{self, BasicAuthError};
use crate::auth::devices;
use crate::auth::login::{self, Client, Credentials, Login, LoginRefusal, Method};
use crate::auth::oidc::RelyingParty;
use crate::auth::password::Hasher;
use crate::auth::ratelimit::RateLimits;
use crate::auth::{jwt, key};
use crate::clock;
use crate::email;
use crate::error::{ApiError, UNAVAILABLE_RETRY_AFTER};
use crate::http::{HTML, Handler, LogContext, Request, Response};
use crate::metrics;
use crate::params::Params;
use crate::reset_desk::{self, ResetDesk};
use crate::site::Site;
use crate::store::{
    AuditEvent, IdentityProvider, KeyHolder, Realm, Role, SessionLimits, Store, User,
};
use crate::web;

/// Settings every worker shares.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    pub site: Site,
    /// Mounts the dev-only endpoints (wire.md §7).
    pub dev: bool,
    pub limits: RateLimits,
    /// Peers whose forwarding headers name the client (wire.md §8.1).
    pub trusted_proxies: Vec<IpAddr>,
    pub sessions: SessionLimits,
}

/// What `server_settings` claims (wire.md §6.3): the lowest values every client accepts
/// without a warning, honest for the endpoints served here.
pub const ZULIP_VERSION: &str = "10.0";
pub const ZULIP_FEATURE_LEVEL: u32 = 371;

/// One worker's handler state: its store connection, and beside the shared configuration
/// the running services every worker hands work to.
pub struct Api {
    pub store: Store,
    pub hasher: Arc<Hasher>,
    pub config: Arc<ApiConfig>,
    /// Where reset requests go; `None` without `--smtp-url`.
    pub reset_desk: Option<ResetDesk>,
    /// The relying party of every realm's OpenID providers, shared by the workers (web.md §10).
    pub oidc: Arc<RelyingParty>,
}

type Endpoint = fn(&mut Api, &Request, &mut LogContext) -> Result<Response, ApiError>;
/// What a front thread may answer of a costly request without hashing; `Ok(None)` passes
/// it on to the hashing threads, whose endpoint takes it from the start.
type Early = fn(&mut Api, &Request, &mut LogContext) -> Result<Option<Response>, ApiError>;

/// One path of the API.
struct Route {
    path: &'static str,
    /// Whether the route also serves every path below `path`, and whether what is below is a
    /// secret that must not be logged.
    below: Below,
    /// Mounted only with `--dev` (wire.md §7).
    dev_only: bool,
    /// The methods whose answer may cost an argon2 computation: they go to the hashing
    /// threads, so that cheap requests never queue behind them, unless `early` answers them.
    costly: &'static [&'static str],
    /// For a costly method, the steps before any hashing, taken on a front thread: what
    /// they refuse is answered there.
    early: Option<Early>,
    /// Django's `never_cache`, which upstream puts on its REST routes (wire.md §3.3).
    never_cache: bool,
    /// Too frequent to log one line each (health checks).
    quiet: bool,
    /// A page a browser shows: what is refused before its handler runs is a plain page too.
    page: bool,
    endpoint: Endpoint,
}

/// What a route serves below its path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Below {
    /// Its path alone.
    Nothing,
    /// Paths below it whose rest is logged: a key's id, a provider's name.
    Named,
    /// Paths below it whose rest opens an account (a reset link's token): never logged.
    Secret,
}

const fn route(path: &'static str, endpoint: Endpoint) -> Route {
    Route {
        path,
        below: Below::Nothing,
        dev_only: false,
        costly: &[],
        early: None,
        never_cache: false,
        quiet: false,
        page: false,
        endpoint,
    }
}

/// A route of the web pages.
const fn page(path: &'static str, endpoint: Endpoint) -> Route {
    Route {
        page: true,
        ..route(path, endpoint)
    }
}

/// An account-page form that checks the password (or a code) on POST: on a hashing thread.
const fn checking_form(path: &'static str) -> Route {
    Route {
        costly: &["POST"],
        ..page(path, Api::web_account)
    }
}

/// Every route; a path not here is wire.md §3.5's 404.
const ROUTES: &[Route] = &[
    route("/", Api::root),
    Route {
        costly: &["POST"],
        early: Some(Api::fetch_api_key_early),
        ..route("/api/v1/fetch_api_key", Api::fetch_api_key)
    },
    route("/api/v1/jwt/fetch_api_key", Api::jwt_fetch_api_key),
    route("/api/v1/server_settings", Api::server_settings),
    Route {
        dev_only: true,
        ..route("/api/v1/dev_fetch_api_key", Api::dev_fetch_api_key)
    },
    Route {
        dev_only: true,
        ..route("/api/v1/dev_list_users", Api::dev_list_users)
    },
    Route {
        never_cache: true,
        ..route("/api/v1/users/me", Api::users_me)
    },
    Route {
        never_cache: true,
        ..route("/api/v1/users/me/api_key/regenerate", Api::regenerate)
    },
    Route {
        never_cache: true,
        ..route(keys::LIST, Api::api_keys)
    },
    Route {
        below: Below::Named,
        never_cache: true,
        ..route(keys::ONE, Api::revoke_api_key)
    },
    Route {
        quiet: true,
        ..route("/health", Api::health)
    },
    Route {
        costly: &["POST"],
        ..page(web::paths::LOGIN, Api::web_login)
    },
    Route {
        costly: &["PATCH"],
        never_cache: true,
        ..route("/api/v1/settings", Api::settings)
    },
    // Sign-in through an OpenID provider (web.md §10): the start, with the provider's name
    // below it or none, and the provider's way back.
    Route {
        below: Below::Named,
        ..page(web::paths::OIDC_LOGIN, Api::web_oidc_start)
    },
    Route {
        below: Below::Named,
        ..page(web::paths::OIDC_SIGNUP, Api::web_oidc_start)
    },
    page(web::paths::OIDC_CALLBACK, Api::web_oidc_callback),
    page(web::paths::RESET_REQUEST, Api::web_reset),
    page(web::paths::RESET_SENT, Api::web_reset),
    page(web::paths::RESET_DONE, Api::web_reset),
    // The links, after the exact paths above: setting a password hashes it.
    Route {
        below: Below::Secret,
        costly: &["POST"],
        ..page(web::paths::RESET_REQUEST, Api::web_reset)
    },
    page(web::paths::SETTINGS, Api::web_account),
    page(web::paths::LOGOUT, Api::web_account),
    // The account page's forms check the password.
    checking_form(web::paths::API_KEY),
    checking_form(web::paths::REGENERATE),
    checking_form(web::paths::ZULIPRC),
    checking_form(web::paths::PASSWORD),
    page(web::paths::DEVICE_SIGN_OUT, Api::web_account),
    page(web::paths::SIGN_OUT_EVERYWHERE, Api::web_account),
    page(web::paths::LOGIN_MAIL, Api::web_account),
    // Turning it on checks the password too.
    checking_form(web::paths::TWO_FACTOR_ON),
    checking_form(web::paths::TWO_FACTOR_OFF),
    checking_form(web::paths::RECOVERY_CODES),
    // Passkeys (web.md §9): adding one checks the password, as does removing one.
    checking_form(web::paths::PASSKEY_ADD),
    checking_form(web::paths::PASSKEY_REMOVE),
    page(web::paths::PASSKEY_SCRIPT, Api::passkey_script),
];

impl ApiConfig {
    fn route(&self, path: &str) -> Option<&'static Route> {
        ROUTES.iter().find(|r| {
            let matches = r.path == path || (r.below != Below::Nothing && path.starts_with(r.path));
            matches && (self.dev || !r.dev_only)
        })
    }
}

impl Handler for Api {
    fn handle(&mut self, request: &Request) -> Response {
        self.in_request(|api| {
            let route = api.config.route(&request.path);
            api.answer(request, route)
        })
    }

    fn front(&mut self, request: &Request) -> Option<Response> {
        self.in_request(|api| {
            let route = api.config.route(&request.path);
            let Some(costly) = route.filter(|r| r.costly.contains(&request.method.as_str())) else {
                return Some(api.answer(request, route));
            };
            let mut log = api.log_context(request, costly);
            let answered = (costly.early?)(api, request, &mut log).transpose()?;
            Some(finished(costly, answered, log))
        })
    }

    /// A browser gets a plain page, with the error's headers (its `Retry-After`).
    fn refusal(&self, request: &Request, err: &ApiError) -> Response {
        let mut response = match self.config.route(&request.path) {
            Some(route) if route.page => {
                let mut page = web::page::plain(err.status, &err.msg);
                page.headers.extend(Response::error(err).headers);
                page
            }
            _ => Response::error(err),
        };
        response.log.client = request.client_addr(&self.config.trusted_proxies);
        response
    }

    /// Below a reset link's path is its token, which opens the account: never logged.
    fn logged_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        match self.config.route(path) {
            Some(route) if route.below == Below::Secret && path != route.path => {
                format!("{}<token>/", route.path).into()
            }
            _ => path.into(),
        }
    }
}

/// Every answer of a route: what is left for the log, and the route's headers.
impl Api {
    /// A step of one request (the front's or the whole answer), with the store's caches
    /// checked once in it and at every use after it (wire.md §2).
    fn in_request<T>(&mut self, step: impl FnOnce(&mut Api) -> T) -> T {
        self.store.begin_request();
        let result = step(self);
        self.store.end_request();
        result
    }

    /// The whole answer of `route` (`None`: the 404 of a path not routed).
    fn answer(&mut self, request: &Request, route: Option<&'static Route>) -> Response {
        match route {
            None => {
                let mut response = error_response(&ApiError::not_found());
                response.log.client = request.client_addr(&self.config.trusted_proxies);
                response
            }
            Some(route) => {
                let mut log = self.log_context(request, route);
                let answered = (route.endpoint)(self, request, &mut log);
                finished(route, answered, log)
            }
        }
    }

    fn log_context(&self, request: &Request, route: &'static Route) -> LogContext {
        LogContext {
            client: request.client_addr(&self.config.trusted_proxies),
            quiet: route.quiet,
            route: Some(route.path),
            ..LogContext::default()
        }
    }
}

/// A route's answer (its error's, if it failed) with its headers and what its log holds.
fn finished(route: &Route, answered: Result<Response, ApiError>, log: LogContext) -> Response {
    let response = answered.unwrap_or_else(|err| error_response(&err));
    let mut response = if route.never_cache {
        never_cache(response)
    } else {
        response
    };
    response.log = log;
    response
}

/// A key and whom it belongs to: the body of `fetch_api_key` and `dev_fetch_api_key`.
#[derive(Serialize)]
struct ApiKeyBody<'a> {
    result: &'static str,
    msg: &'static str,
    api_key: &'a str,
    email: &'a str,
    user_id: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored_parameters_unsupported: Vec<String>,
}

#[derive(Serialize)]
struct Success {
    result: &'static str,
    msg: &'static str,
}

const SUCCESS: Success = Success {
    result: "success",
    msg: "",
};

/// The wire error of a refused login (wire.md §5.3), and the one place that decides it.
fn login_error(refusal: LoginRefusal) -> ApiError {
    match refusal {
        LoginRefusal::InvalidEmail => ApiError::invalid_email(),
        LoginRefusal::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
        LoginRefusal::PasswordAuthDisabled => ApiError::password_auth_disabled(),
        LoginRefusal::RealmDeactivated => ApiError::realm_deactivated(),
        LoginRefusal::UserDeactivated => ApiError::user_deactivated(),
        LoginRefusal::ResetRequired => ApiError::password_reset_required(),
        LoginRefusal::BadToken => ApiError::bad_jwt(),
        LoginRefusal::NoEmail => ApiError::jwt_without_email(),
        LoginRefusal::OtherRealm => ApiError::nonexistent_subdomain(),
        LoginRefusal::UnknownUser
        | LoginRefusal::WrongPassword
        | LoginRefusal::DirectoryUnavailable
        | LoginRefusal::PasswordChanged
        | LoginRefusal::WrongCode
        | LoginRefusal::ProviderFailed
        | LoginRefusal::WrongPasskey => ApiError::authentication_failed(),
    }
}

/// The logins, with and without a password.
impl Api {
    fn login(&self) -> Login<'_> {
        Login {
            store: &self.store,
            hasher: &self.hasher,
            limits: self.config.limits,
        }
    }

    /// `POST /api/v1/fetch_api_key`, in the check order of wire.md §5.2.
    fn fetch_api_key(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if request.method != "POST" {
            return Ok(method_not_allowed(&["POST"]));
        }
        let (params, credentials) = login_parameters(request)?;
        let realm = self.login_realm(request, log)?;
        let checked = self
            .login()
            .login(&realm, credentials, client(request, log), Method::Api)?;
        Ok(self.key_response(checked, params, log))
    }

    /// `POST /api/v1/fetch_api_key` on a front thread: wire.md §5.2 up to step 5 at a look
    /// ([`Login::screen`]), so that a login refused before its hash (the per-username 429)
    /// is answered without waiting for a hashing thread; `None` for every other, which
    /// [`Api::fetch_api_key`] takes from the start. On a database across the network, only
    /// the parameters: an outage would hold the front thread on its reads for seconds
    /// (`/health` must answer within 5 s meanwhile).
    fn fetch_api_key_early(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Option<Response>, ApiError> {
        let (params, credentials) = login_parameters(request)?;
        if !self.store.is_local() {
            return Ok(None);
        }
        let realm = self.login_realm(request, log)?;
        let refused = self.login().screen(
            &realm,
            credentials.username,
            client(request, log),
            Method::Api,
        )?;
        Ok(refused.map(|checked| self.key_response(checked, params, log)))
    }

    /// Step 3 of wire.md §5.2 for a password login: its realm.
    fn login_realm(&self, request: &Request, log: &mut LogContext) -> Result<Realm, ApiError> {
        let realm = self.request_realm(request, log)?;
        log.login = Some(Method::Api);
        Ok(realm)
    }

    /// The answer of a password login: its key, or its refusal; the username bucket's
    /// headers either way.
    fn key_response(
        &self,
        checked: login::Checked<login::Success>,
        params: &Params,
        log: &mut LogContext,
    ) -> Response {
        log.user_id = checked.user_id;
        let mut response = match checked.outcome {
            Ok(success) => {
                let response = api_key_response(
                    &success.api_key,
                    &success.user,
                    params.ignored(&["username", "password"]),
                );
                reset_desk::post(self.reset_desk.as_ref(), success.notices);
                response
            }
            Err(refusal) => {
                log.failure = refusal.reason();
                error_response(&login_error(refusal))
            }
        };
        response
            .headers
            .extend(checked.quota.iter().flat_map(|q| q.headers()));
        response
    }

    /// `POST /api/v1/jwt/fetch_api_key`, Zulip's JWT login, in the check order of wire.md
    /// §17: parameters, realm, key, token; then `auth::jwt` checks the token and the login
    /// goes on as one without a password. `--require-2fa` does not apply: whoever holds the
    /// key vouches for the user.
    fn jwt_fetch_api_key(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if request.method != "POST" {
            return Ok(method_not_allowed(&["POST"]));
        }
        let params = parse_params(request)?;
        let include_profile = match params.get("include_profile") {
            None => false,
            Some(value) => match serde_json::from_str(value) {
                Ok(serde_json::Value::Bool(flag)) => flag,
                _ => return Err(ApiError::not_a_boolean("include_profile")),
            },
        };
        let realm = self.request_realm(request, log)?;
        let settings = match jwt::Settings::of_realm(&realm) {
            Some(Ok(settings)) => settings,
            Some(Err(problem)) => {
                // `realm set` checks the key: only a database edited by hand gets here.
                warn!("realm {:?}: JWT login off: {problem}", realm.subdomain);
                return Err(ApiError::jwt_disabled());
            }
            None => return Err(ApiError::jwt_disabled()),
        };
        let token = params.get("token").unwrap_or_default();
        if token.is_empty() {
            return Err(ApiError::no_jwt());
        }
        log.login = Some(Method::Jwt);
        let checked = self
            .login()
            .vouched(&realm, Method::Jwt, client(request, log), || {
                jwt::check(token, &settings, clock::now()).map_err(|refusal| match refusal {
                    jwt::Refusal::BadToken(_) => LoginRefusal::BadToken,
                    jwt::Refusal::NoEmail => LoginRefusal::NoEmail,
                })
            })?;
        log.user_id = checked.user_id;
        match checked.outcome {
            Ok(success) => {
                let response = jwt_key_response(
                    &success,
                    include_profile,
                    params.ignored(&["token", "include_profile"]),
                );
                reset_desk::post(self.reset_desk.as_ref(), success.notices);
                Ok(response)
            }
            Err(refusal) => {
                log.failure = refusal.reason();
                Ok(error_response(&login_error(refusal)))
            }
        }
    }

    /// `POST /api/v1/dev_fetch_api_key` (wire.md §7.1): no password, no rate limit.
    fn dev_fetch_api_key(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if request.method != "POST" {
            return Ok(method_not_allowed(&["POST"]));
        }
        let params = parse_params(request)?;
        let username = params.required("username")?;
        if !email::is_valid(username) {
            return Err(ApiError::invalid_email());
        }
        let realm = self.request_realm(request, log)?;
        let Some(user) = self.store.user_by_email(realm.id, username)? else {
            return Err(if self.store.email_exists_anywhere(username)? {
                ApiError::nonexistent_subdomain()
            } else {
                ApiError::authentication_failed()
            });
        };
        log.user_id = Some(user.id);
        log.login = Some(Method::Dev);
        let success = self
            .login()
            .without_password(&realm, user, client(request, log))?
            .map_err(login_error)?;
        Ok(api_key_response(
            &success.api_key,
            &success.user,
            params.ignored(&["username"]),
        ))
    }

    /// The realm of the request's Host, or E4.
    fn request_realm(&self, request: &Request, log: &mut LogContext) -> Result<Realm, ApiError> {
        let subdomain = self.config.site.subdomain_of(&request.host);
        let realm = self
            .store
            .realm_by_subdomain(&subdomain)?
            .ok_or_else(ApiError::nonexistent_subdomain)?;
        log.realm = Some(realm.subdomain.clone());
        Ok(realm)
    }
}

/// The pages: each hands its request to its module under `web`.
impl Api {
    /// `/accounts/login/`: the browser sign-in, a page of its own (web.md §3).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    fn web_login(&mut self, request: &Request, log: &mut LogContext) -> Result<Response, ApiError> {
        Ok(web::login::serve(
            &self.web_context(request, log),
            request,
            log,
        ))
    }

    /// `/`: a browser is sent to the sign-in; anything else gets the 404 of every path we
    /// do not route (wire.md §3.5).
    #[allow(clippy::unused_self, reason = "the route table's handler type")]
    fn root(&mut self, request: &Request, _: &mut LogContext) -> Result<Response, ApiError> {
        let browser = matches!(request.method.as_str(), "GET" | "HEAD")
            && (request.accept.as_deref()).is_some_and(|accept| accept.contains("text/html"));
        if !browser {
            return Err(ApiError::not_found());
        }
        Ok(web::page::see_other(web::paths::LOGIN.to_owned()))
    }

    /// The start of a sign-in through an OpenID provider: `…/oidc/NAME`, or `…/oidc` for
    /// the realm's only one (web.md §10.1).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    fn web_oidc_start(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        let rest = [web::paths::OIDC_LOGIN, web::paths::OIDC_SIGNUP]
            .iter()
            .find_map(|prefix| request.path.strip_prefix(prefix))
            .unwrap_or_default();
        let name = match rest
            .strip_prefix('/')
            .map(|n| n.strip_suffix('/').unwrap_or(n))
        {
            None if rest.is_empty() => None,
            Some(name) if !name.is_empty() && !name.contains('/') => Some(name),
            _ => return Err(ApiError::not_found()),
        };
        let rp = Arc::clone(&self.oidc);
        Ok(web::oidc::start(
            &self.web_context(request, log),
            &rp,
            request,
            log,
            name,
        ))
    }

    /// The OpenID provider's return URL (web.md §10.2).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    fn web_oidc_callback(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        let rp = Arc::clone(&self.oidc);
        Ok(web::oidc::callback(
            &self.web_context(request, log),
            &rp,
            request,
            log,
        ))
    }

    /// The passkeys' script (web.md §9).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    #[allow(clippy::unused_self, reason = "the route table's handler type")]
    fn passkey_script(
        &mut self,
        request: &Request,
        _: &mut LogContext,
    ) -> Result<Response, ApiError> {
        Ok(web::passkey::serve_script(request))
    }

    /// The forgotten-password pages (web.md §6).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    fn web_reset(&mut self, request: &Request, log: &mut LogContext) -> Result<Response, ApiError> {
        Ok(web::reset::serve(
            &self.web_context(request, log),
            request,
            log,
        ))
    }

    /// The account page and its forms (web.md §7).
    #[allow(clippy::unnecessary_wraps, reason = "the route table's handler type")]
    fn web_account(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        Ok(web::account::serve(
            &self.web_context(request, log),
            request,
            log,
        ))
    }

    fn web_context<'a>(&'a self, request: &'a Request, log: &LogContext) -> web::Context<'a> {
        web::Context {
            store: &self.store,
            login: self.login(),
            site: &self.config.site,
            client: client(request, log),
            reset_desk: self.reset_desk.as_ref(),
            sessions: self.config.sessions,
        }
    }
}

/// What needs no credentials: server settings, the dev list and health.
impl Api {
    /// `GET`/`HEAD /api/v1/server_settings` (wire.md §6).
    fn server_settings(
        &mut self,
        request: &Request,
        _: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if request.method != "GET" && request.method != "HEAD" {
            return Ok(Response {
                body: Vec::new(),
                ..method_not_allowed(&["GET", "HEAD"])
            });
        }
        let subdomain = self.config.site.subdomain_of(&request.host);
        // The realm with its OpenID providers by name (wire.md §6.2, web.md §10.1), at one read
        // of the realm version: from the store only, so a stalled provider delays nothing here.
        let found = self.store.realm_with_providers(&subdomain)?;
        if found.is_none() && !subdomain.is_empty() {
            return Err(ApiError::invalid_subdomain());
        }
        let (realm, providers) = match found {
            Some((realm, providers)) => (Some(realm), providers),
            None => (None, Vec::new()),
        };
        let realm_url = self.config.site.realm_url(&subdomain, &request.host);
        // With the second factor required, the apps see only the browser sign-in (web.md §2).
        let password_offered = realm.as_ref().is_none_or(|r| !r.require_2fa);
        let email_backend = password_offered && realm.as_ref().is_none_or(Realm::email_backend);
        let ldap = password_offered && realm.as_ref().is_some_and(|r| r.ldap_backend().is_some());
        let is_incompatible = request
            .user_agent
            .as_deref()
            .is_some_and(|ua| ua.split('/').next() == Some("ZulipInvalid"));
        let settings = ServerSettings {
            result: "success",
            msg: "",
            authentication_methods: AuthenticationMethods {
                password: email_backend || ldap,
                dev: self.config.dev,
                email: email_backend,
                ldap,
                openid_connect: !providers.is_empty(),
                ..AuthenticationMethods::default()
            },
            zulip_version: ZULIP_VERSION,
            zulip_merge_base: ZULIP_VERSION,
            zulip_feature_level: ZULIP_FEATURE_LEVEL,
            push_notifications_enabled: false,
            is_incompatible,
            email_auth_enabled: email_backend,
            require_email_format_usernames: realm
                .as_ref()
                .is_none_or(Realm::require_email_format_usernames),
            realm_name: realm.as_ref().map(|r| r.name.clone()),
            realm_icon: realm.as_ref().map(|r| match &r.icon_url {
                Some(icon) => icon.clone(),
                None => format!("{realm_url}/static/images/logo/zulip-icon-128x128.png"),
            }),
            realm_description: realm.as_ref().map(|r| r.description.clone()),
            realm_web_public_access_enabled: false,
            external_authentication_methods: realm
                .as_ref()
                .filter(|r| r.advertises_web_login())
                .map(|r| ExternalMethod {
                    name: "zulip-auth".to_owned(),
                    display_name: r.web_login_name().to_owned(),
                    display_icon: None,
                    login_url: web::paths::LOGIN.to_owned(),
                    signup_url: web::paths::LOGIN.to_owned(),
                })
                .into_iter()
                .chain(providers.iter().map(ExternalMethod::provider))
                .collect(),
            realm_uri: realm_url.clone(),
            realm_url,
        };
        Ok(Response::json(200, &settings))
    }

    /// `/api/v1/dev_list_users`, any method (wire.md §7.2).
    fn dev_list_users(
        &mut self,
        request: &Request,
        _: &mut LogContext,
    ) -> Result<Response, ApiError> {
        #[derive(Serialize)]
        struct Entry {
            email: String,
            realm_url: String,
        }
        #[derive(Serialize)]
        struct Body {
            result: &'static str,
            msg: &'static str,
            direct_admins: Vec<Entry>,
            direct_users: Vec<Entry>,
        }
        let (mut direct_admins, mut direct_users) = (Vec::new(), Vec::new());
        for (user, subdomain) in self.store.active_users()? {
            let entry = Entry {
                realm_url: self.config.site.realm_url(&subdomain, &request.host),
                email: user.delivery_email,
            };
            if user.role.is_admin() {
                direct_admins.push(entry);
            } else {
                direct_users.push(entry);
            }
        }
        Ok(Response::json(
            200,
            &Body {
                result: "success",
                msg: "",
                direct_admins,
                direct_users,
            },
        ))
    }

    /// `GET`/`HEAD /health`: 200 while the database answers (wire.md §1).
    fn health(&mut self, request: &Request, _: &mut LogContext) -> Result<Response, ApiError> {
        if request.method != "GET" && request.method != "HEAD" {
            return Ok(method_not_allowed(&["GET", "HEAD"]));
        }
        self.store.health()?;
        Ok(Response::json(200, &SUCCESS))
    }
}

/// The routes authenticated by an API key (wire.md §9).
impl Api {
    /// `GET`/`HEAD /api/v1/users/me` with Basic auth (wire.md §9.3): proves a key works.
    fn users_me(&mut self, request: &Request, log: &mut LogContext) -> Result<Response, ApiError> {
        if let Some(refusal) = rest_method_check(request, &["GET", "HEAD"]) {
            return Ok(refusal);
        }
        let (user, _) = self.basic_auth_user(request, log)?;
        #[derive(Serialize)]
        struct Me<'a> {
            result: &'static str,
            msg: &'static str,
            email: &'a str,
            user_id: i64,
            is_admin: bool,
            is_owner: bool,
            is_guest: bool,
            role: i64,
            is_bot: bool,
            full_name: &'a str,
            is_active: bool,
            date_joined: &'a str,
            delivery_email: &'a str,
            max_message_id: i64,
        }
        Ok(Response::json(
            200,
            &Me {
                result: "success",
                msg: "",
                email: &user.delivery_email,
                user_id: user.id,
                is_admin: user.role.is_admin(),
                is_owner: user.role == Role::Owner,
                is_guest: user.role == Role::Guest,
                role: user.role.code(),
                is_bot: false,
                full_name: &user.full_name,
                is_active: user.is_active,
                date_joined: &user.date_joined,
                delivery_email: &user.delivery_email,
                max_message_id: -1,
            },
        ))
    }

    /// `POST /api/v1/users/me/api_key/regenerate` (wire.md §9.4): the old key fails at once.
    fn regenerate(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if let Some(refusal) = rest_method_check(request, &["POST"]) {
            return Ok(refusal);
        }
        let (user, realm) = self.basic_auth_user(request, log)?;
        let params = parse_params(request)?;
        let entry = client(request, log).audit(AuditEvent::KeyRotated, &realm, Some(user.id));
        let api_key = key::replace(&self.store, user.id, &entry)?;
        #[derive(Serialize)]
        struct Regenerated<'a> {
            result: &'static str,
            msg: &'static str,
            api_key: &'a str,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            ignored_parameters_unsupported: Vec<String>,
        }
        Ok(Response::json(
            200,
            &Regenerated {
                result: "success",
                msg: "",
                api_key: &api_key,
                ignored_parameters_unsupported: params.ignored(&[]),
            },
        ))
    }

    /// The checks of wire.md §9.2, steps 1 to 9, in order.
    fn basic_auth_user(
        &self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<(User, Realm), ApiError> {
        self.basic_auth(request, log)
            .map(|(user, realm, _)| (user, realm))
    }

    /// [`Api::basic_auth_user`], with the id of the device key presented (`None`: the
    /// user's own key; wire.md §9.5).
    fn basic_auth(
        &self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<(User, Realm, Option<i64>), ApiError> {
        let credentials = basic::parse(request.authorization.as_deref()).map_err(|e| match e {
            BasicAuthError::Missing => ApiError::not_logged_in(),
            BasicAuthError::Invalid => ApiError::invalid_basic_header(),
            BasicAuthError::NotBasic => ApiError::basic_auth_required(),
            BasicAuthError::MalformedKey => ApiError::malformed_api_key(),
        })?;
        let KeyHolder {
            user,
            device,
            realm,
        } = devices::holder(&self.store, &credentials.api_key)?
            .filter(|h| h.user.delivery_email.to_lowercase() == credentials.email.to_lowercase())
            .ok_or(ApiError::invalid_api_key())?;
        log.user_id = Some(user.id);
        log.realm = Some(realm.subdomain.clone());
        if realm.deactivated {
            Err(ApiError::key_realm_deactivated())
        } else if !user.is_active {
            Err(ApiError::key_user_deactivated())
        } else if realm.subdomain != self.config.site.subdomain_of(&request.host) {
            Err(ApiError::key_of_another_realm())
        } else {
            Ok((user, realm, device.map(|d| d.id)))
        }
    }
}

fn parse_params(request: &Request) -> Result<&Params, ApiError> {
    request.params()
}

/// Step 2 of wire.md §5.2: a password login's parameters, and its credentials among them.
fn login_parameters(request: &Request) -> Result<(&Params, Credentials<'_>), ApiError> {
    let params = parse_params(request)?;
    let credentials = Credentials {
        username: params.required("username")?,
        password: params.required("password")?,
    };
    Ok((params, credentials))
}

/// An error's response, with the `Retry-After` of a 503 (wire.md §3.6). A store fault is
/// counted here, where it reaches the wire.
fn error_response(err: &ApiError) -> Response {
    if let Some(kind) = err.db_error {
        metrics::db_error(kind);
    }
    let response = Response::error(err);
    if err.status == ApiError::unavailable().status {
        response.header("Retry-After", UNAVAILABLE_RETRY_AFTER)
    } else {
        response
    }
}

/// The client as the login sees it.
fn client<'a>(request: &'a Request, log: &LogContext) -> Client<'a> {
    Client {
        address: log.client,
        user_agent: request.user_agent.as_deref(),
    }
}

/// The JWT login's success (wire.md §17): no `user_id`, as Zulip's; with `include_profile`
/// the user as Zulip's user objects describe a person.
fn jwt_key_response(
    success: &login::Success,
    include_profile: bool,
    ignored: Vec<String>,
) -> Response {
    #[derive(Serialize)]
    struct Profile<'a> {
        user_id: i64,
        delivery_email: &'a str,
        email: &'a str,
        full_name: &'a str,
        date_joined: &'a str,
        is_active: bool,
        is_owner: bool,
        is_admin: bool,
        is_guest: bool,
        is_bot: bool,
        role: i64,
        timezone: &'static str,
        avatar_url: String,
        avatar_version: i64,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        result: &'static str,
        msg: &'static str,
        api_key: &'a str,
        email: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: Option<Profile<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ignored_parameters_unsupported: Vec<String>,
    }
    let user = &success.user;
    let profile = include_profile.then(|| Profile {
        user_id: user.id,
        delivery_email: &user.delivery_email,
        email: &user.delivery_email,
        full_name: &user.full_name,
        date_joined: &user.date_joined,
        is_active: user.is_active,
        is_owner: user.role == Role::Owner,
        is_admin: user.role.is_admin(),
        is_guest: user.role == Role::Guest,
        is_bot: false,
        role: user.role.code(),
        timezone: "",
        avatar_url: email::gravatar_url(&user.delivery_email),
        avatar_version: 1,
    });
    Response::json(
        200,
        &Body {
            result: "success",
            msg: "",
            api_key: &success.api_key,
            email: &user.delivery_email,
            user: profile,
            ignored_parameters_unsupported: ignored,
        },
    )
    .header("Cache-Control", "no-store")
}

fn api_key_response(api_key: &str, user: &User, ignored: Vec<String>) -> Response {
    Response::json(
        200,
        &ApiKeyBody {
            result: "success",
            msg: "",
            api_key,
            email: &user.delivery_email,
            user_id: user.id,
            ignored_parameters_unsupported: ignored,
        },
    )
    // A key must not linger in a shared cache (a permitted deviation, wire.md §3.3).
    .header("Cache-Control", "no-store")
}

/// Method handling of the authenticated REST routes (wire.md §3.2), checked before
/// authentication: OPTIONS lists the methods, others not allowed get the JSON 405.
fn rest_method_check(request: &Request, allowed: &[&'static str]) -> Option<Response> {
    if allowed.contains(&request.method.as_str()) {
        return None;
    }
    if request.method == "OPTIONS" {
        let mut sorted = allowed.to_vec();
        sorted.sort_unstable();
        return Some(Response {
            status: 204,
            content_type: None,
            headers: vec![("Allow", sorted.join(", "))],
            body: Vec::new(),
            log: LogContext::default(),
        });
    }
    Some(method_not_allowed(allowed))
}

/// Django's `never_cache`, which upstream puts on its REST routes (wire.md §3.3).
fn never_cache(response: Response) -> Response {
    response
        .header(
            "Cache-Control",
            "max-age=0, no-cache, no-store, must-revalidate, private",
        )
        .header("Expires", httpdate::fmt_http_date(SystemTime::now()))
}

/// Django's 405: JSON in a `text/html` response without a trailing newline (wire.md §3.2).
fn method_not_allowed(allowed: &[&'static str]) -> Response {
    Response {
        status: 405,
        content_type: Some(HTML),
        headers: vec![("Allow", allowed.join(", "))],
        body: ApiError::method_not_allowed_body(allowed),
        log: LogContext::default(),
    }
}

/// `server_settings` in upstream key order (wire.md §6.2).
#[derive(Serialize)]
struct ServerSettings {
    result: &'static str,
    msg: &'static str,
    authentication_methods: AuthenticationMethods,
    zulip_version: &'static str,
    zulip_merge_base: &'static str,
    zulip_feature_level: u32,
    push_notifications_enabled: bool,
    is_incompatible: bool,
    email_auth_enabled: bool,
    require_email_format_usernames: bool,
    realm_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm_icon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    realm_description: Option<String>,
    realm_web_public_access_enabled: bool,
    external_authentication_methods: Vec<ExternalMethod>,
    realm_uri: String,
}

/// An entry of `external_authentication_methods`, in upstream key order (web.md §2).
#[derive(Serialize)]
struct ExternalMethod {
    name: String,
    display_name: String,
    display_icon: Option<String>,
    login_url: String,
    signup_url: String,
}

impl ExternalMethod {
    /// A realm's OpenID provider, as Zulip lists its `GenericOpenIDConnectBackend`'s: the
    /// sign-up URL is the sign-in URL (web.md §10.1).
    fn provider(idp: &IdentityProvider) -> ExternalMethod {
        ExternalMethod {
            name: format!("oidc:{}", idp.name),
            display_name: idp.display_name.clone(),
            display_icon: idp.display_icon.clone(),
            login_url: web::paths::oidc_login(&idp.name),
            signup_url: web::paths::oidc_signup(&idp.name),
        }
    }
}

#[derive(Serialize, Default)]
struct AuthenticationMethods {
    password: bool,
    dev: bool,
    email: bool,
    ldap: bool,
    remoteuser: bool,
    github: bool,
    azuread: bool,
    gitlab: bool,
    apple: bool,
    google: bool,
    saml: bool,
    #[serde(rename = "openid connect")]
    openid_connect: bool,
}

#[cfg(test)]
mod tests;
