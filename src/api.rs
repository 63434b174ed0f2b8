//! The API: a router and one handler per endpoint, each a function from a [`Request`] to a
//! [`Response`] over the worker's store. Wire behaviour follows SPEC.md section by section;
//! the check order inside each handler is the spec's and matters.

mod web_login;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use log::{error, warn};
use serde::Serialize;

use crate::auth::basic::{self, BasicAuthError};
use crate::auth::ldap::{self, Outcome};
use crate::auth::password::{self, Hasher, Verdict};
use crate::auth::policy;
use crate::auth::ratelimit::{Quota, RateLimits};
use crate::clock;
use crate::email;
use crate::error::ApiError;
use crate::http::{HTML, Handler, LogContext, Request, Response};
use crate::params::Params;
use crate::site::Site;
use crate::store::{AuditEntry, AuditEvent, LdapSettings, NewUser, Realm, Store, User};
use crate::web;

/// Settings every worker shares.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    pub site: Site,
    /// Mounts the dev-only endpoints (SPEC §7).
    pub dev: bool,
    pub limits: RateLimits,
    /// Peers whose forwarding headers name the client (SPEC §8.1).
    pub trusted_proxies: Vec<IpAddr>,
}

/// What `server_settings` claims (SPEC §6.3): the lowest values every client accepts
/// without a warning, honest for the endpoints served here.
pub const ZULIP_VERSION: &str = "10.0";
pub const ZULIP_FEATURE_LEVEL: u32 = 371;

/// Longer User-Agent strings are cut before they are audited.
const MAX_AUDITED_USER_AGENT: usize = 256;

/// One worker's handler state.
pub struct Api {
    pub store: Store,
    pub hasher: Arc<Hasher>,
    pub config: Arc<ApiConfig>,
}

impl Handler for Api {
    fn handle(&mut self, request: &Request) -> Response {
        let mut log = LogContext {
            client: request.client_addr(&self.config.trusted_proxies),
            ..LogContext::default()
        };
        let mut response = self
            .route(request, &mut log)
            .unwrap_or_else(|err| Response::error(&err));
        response.log = log;
        response
    }

    /// Only a password login may verify a hash (dummy or real).
    fn is_costly(&self, request: &Request) -> bool {
        request.method == "POST"
            && matches!(
                request.path.as_str(),
                "/api/v1/fetch_api_key" | web::login::PATH
            )
    }
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

impl Api {
    fn route(&mut self, request: &Request, log: &mut LogContext) -> Result<Response, ApiError> {
        let dev = self.config.dev;
        match request.path.as_str() {
            "/api/v1/fetch_api_key" => self.fetch_api_key(request, log),
            "/api/v1/server_settings" => self.server_settings(request),
            "/api/v1/dev_fetch_api_key" if dev => self.dev_fetch_api_key(request, log),
            "/api/v1/dev_list_users" if dev => self.dev_list_users(request),
            "/api/v1/users/me" => Ok(never_cache(self.users_me(request, log))),
            "/api/v1/users/me/api_key/regenerate" => Ok(never_cache(self.regenerate(request, log))),
            web::login::PATH => Ok(web::login::serve(self, request, log)),
            "/health" => {
                log.quiet = true;
                self.health(request)
            }
            _ => Err(ApiError::not_found()),
        }
    }

    /// `POST /api/v1/fetch_api_key`, in the check order of SPEC §5.2.
    fn fetch_api_key(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if request.method != "POST" {
            return Ok(method_not_allowed(&["POST"]));
        }
        let params = parse_params(request)?;
        let username = params.required("username")?;
        let password = params.required("password")?;
        let realm = self.request_realm(request, log)?;
        // With LDAP on, the username may be an LDAP username rather than an email.
        if realm.ldap_backend().is_none() && !email::is_valid(username) {
            return Err(ApiError::invalid_email());
        }
        // Step 5: from here on every answer describes the username's bucket.
        let now = clock::now();
        let limits = self.config.limits;
        let quota = limits.attempt(&self.store, username, now)?;
        let outcome = match quota.and_then(|q| q.retry_after) {
            Some(retry_after) => Err(ApiError::rate_limited(retry_after)),
            // Phone logins go through the browser, where the second factor is asked for.
            None if realm.require_2fa => Err(ApiError::password_auth_disabled()),
            None => self.check_password(&realm, username, password, log, now),
        };
        let mut response = match outcome {
            Ok(user) => {
                let api_key =
                    self.key_for_login(&realm, &user, request, log, Some(username), None)?;
                api_key_response(&api_key, &user, params.ignored(&["username", "password"]))
            }
            Err(err) => {
                log.failure = log.failure.or(err.code);
                // Refusals by a limiter cost an attacker nothing, so they are logged but kept
                // out of the audit table, which they could otherwise flood.
                if err.status == 401 {
                    let mut entry =
                        self.audit_entry(AuditEvent::LoginFailure, &realm, request, log);
                    entry.reason = log.failure.map(str::to_owned);
                    self.store.audit(&entry)?;
                }
                Response::error(&err)
            }
        };
        response
            .headers
            .extend(quota.iter().flat_map(Quota::headers));
        Ok(response)
    }

    /// Steps 5 (per address) to 11 of SPEC §5.2: the user whose password this is.
    fn check_password(
        &mut self,
        realm: &Realm,
        username: &str,
        password: &str,
        log: &mut LogContext,
        now: f64,
    ) -> Result<User, ApiError> {
        let limits = self.config.limits;
        if let Some(retry_after) = limits.address_blocked(&self.store, log.client, now)? {
            return Err(ApiError::rate_limited(retry_after));
        }
        if !realm.email_backend() && realm.ldap_backend().is_none() {
            return Err(ApiError::password_auth_disabled());
        }
        let user = if password.is_empty() {
            // Wrong for every account; no lookup is made.
            log.failure = Some("WRONG_PASSWORD");
            None
        } else if let Some(ldap) = realm.ldap_backend() {
            self.ldap_user(realm, ldap, username, password, log)?
        } else {
            self.verified_user(realm, username, password, log)?
        };
        match user {
            Some(user) => Ok(user),
            None => {
                limits.address_failure(&self.store, log.client, now)?;
                Err(ApiError::authentication_failed())
            }
        }
    }

    /// Steps 8 to 10: the user, if the password is theirs. Costs exactly one argon2
    /// verification, whatever the outcome (SPEC §10.4).
    fn verified_user(
        &mut self,
        realm: &Realm,
        username: &str,
        password: &str,
        log: &mut LogContext,
    ) -> Result<Option<User>, ApiError> {
        let Some(user) = self.store.user_by_email(realm.id, username)? else {
            self.hasher.spend_dummy_verification();
            log.failure = Some("UNKNOWN_USER");
            return Ok(None);
        };
        log.user_id = Some(user.id);
        if let Err(err) = check_active(realm, &user) {
            self.hasher.spend_dummy_verification();
            return Err(err);
        }
        if self.local_password_matches(&user, password)? {
            Ok(Some(user))
        } else {
            log.failure = Some("WRONG_PASSWORD");
            Ok(None)
        }
    }

    /// Steps 10 and 11 for a local hash: verify, then upgrade the hash if it needs it, but
    /// only to a password the policy accepts (else E10).
    fn local_password_matches(&self, user: &User, password: &str) -> Result<bool, ApiError> {
        let Verdict::Match { needs_rehash } =
            self.hasher.verify(user.password.as_deref(), password)
        else {
            return Ok(false);
        };
        if needs_rehash {
            if policy::check(password).is_err() {
                return Err(ApiError::password_reset_required());
            }
            self.store
                .set_password_hash(user.id, &self.hasher.hash(password))?;
        }
        Ok(true)
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
        log: &mut LogContext,
    ) -> Result<Option<User>, ApiError> {
        if realm.email_backend()
            && email::is_valid(username)
            && let Some(user) = self.store.user_by_email(realm.id, username)?
            && user.password.as_deref().is_some_and(password::is_usable)
        {
            log.user_id = Some(user.id);
            check_active(realm, &user)?;
            if self.local_password_matches(&user, password)? {
                return Ok(Some(user));
            }
        }
        let (email, full_name) = match ldap::authenticate(ldap, username, password) {
            Outcome::Authenticated { email, full_name } => (email, full_name),
            Outcome::UnknownUser => {
                log.failure = Some("UNKNOWN_USER");
                return Ok(None);
            }
            Outcome::WrongPassword => {
                log.failure = Some("WRONG_PASSWORD");
                return Ok(None);
            }
            Outcome::Unavailable(reason) => {
                warn!("LDAP directory {} unreachable: {reason}", ldap.url);
                log.failure = Some("LDAP_UNAVAILABLE");
                return Ok(None);
            }
        };
        let user = match self.store.user_by_email(realm.id, &email)? {
            Some(user) => user,
            None if ldap.create_users && email::is_valid(&email) => {
                self.create_ldap_user(realm, &email, full_name)?
            }
            None => {
                log.failure = Some("UNKNOWN_USER");
                return Ok(None);
            }
        };
        log.user_id = Some(user.id);
        check_active(realm, &user)?;
        Ok(Some(user))
    }

    /// A directory user's account here, made at their first login (`--ldap-create-users on`).
    fn create_ldap_user(
        &self,
        realm: &Realm,
        email: &str,
        full_name: Option<String>,
    ) -> Result<User, ApiError> {
        let new = NewUser {
            email: email.to_owned(),
            full_name: full_name.unwrap_or_default(),
            role: 400,
            password: None,
            is_active: true,
            api_key: None,
        };
        let id = self.store.create_user(realm, &new).map_err(|e| {
            error!("creating LDAP user failed: {e}");
            ApiError::internal()
        })?;
        let entry = AuditEntry {
            detail: Some("created at first LDAP login".to_owned()),
            ..AuditEntry::new(AuditEvent::UserCreated, Some(realm.id), Some(id))
        };
        self.store.audit(&entry)?;
        self.store
            .user_by_email(realm.id, email)?
            .ok_or_else(ApiError::internal)
    }

    /// `GET`/`HEAD /api/v1/server_settings` (SPEC §6).
    fn server_settings(&mut self, request: &Request) -> Result<Response, ApiError> {
        if request.method != "GET" && request.method != "HEAD" {
            return Ok(Response {
                body: Vec::new(),
                ..method_not_allowed(&["GET", "HEAD"])
            });
        }
        let subdomain = self.config.site.subdomain_of(&request.host);
        let realm = self.store.realm_by_subdomain(&subdomain)?;
        if realm.is_none() && !subdomain.is_empty() {
            return Err(ApiError::invalid_subdomain());
        }
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
                    name: "zulip-auth",
                    display_name: r.web_login_name().to_owned(),
                    display_icon: None,
                    login_url: web::login::PATH,
                    signup_url: web::login::PATH,
                })
                .into_iter()
                .collect(),
            realm_uri: realm_url.clone(),
            realm_url,
        };
        Ok(Response::json(200, &settings))
    }

    /// `POST /api/v1/dev_fetch_api_key` (SPEC §7.1): no password, no rate limit.
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
        check_active(&realm, &user)?;
        let api_key = self.key_for_login(&realm, &user, request, log, None, Some("dev login"))?;
        Ok(api_key_response(
            &api_key,
            &user,
            params.ignored(&["username"]),
        ))
    }

    /// The user's key after a successful login, minted if it is the first; both audited, and
    /// the username's rate-limit bucket cleared, in one durable transaction: the only
    /// synced commit of a successful login.
    fn key_for_login(
        &self,
        realm: &Realm,
        user: &User,
        request: &Request,
        log: &LogContext,
        clear_bucket_of: Option<&str>,
        detail: Option<&str>,
    ) -> Result<String, ApiError> {
        let mut success = self.audit_entry(AuditEvent::LoginSuccess, realm, request, log);
        success.detail = detail.map(str::to_owned);
        let minted_entry = self.audit_entry(AuditEvent::KeyMinted, realm, request, log);
        let limits = self.config.limits;
        let api_key = self.store.durably(|store| {
            if let Some(username) = clear_bucket_of {
                limits.clear(store, username)?;
            }
            // The row read for this login holds the key already, except at the first login.
            let (api_key, minted) = match &user.api_key {
                Some(key) => (key.clone(), false),
                None => store.ensure_api_key(user.id)?,
            };
            store.audit(&success)?;
            if minted {
                store.audit(&minted_entry)?;
            }
            Ok::<_, rusqlite::Error>(api_key)
        })?;
        Ok(api_key)
    }

    fn audit_entry(
        &self,
        event: AuditEvent,
        realm: &Realm,
        request: &Request,
        log: &LogContext,
    ) -> AuditEntry {
        AuditEntry {
            remote_addr: log.client.map(|ip| ip.to_string()),
            user_agent: request
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(MAX_AUDITED_USER_AGENT).collect()),
            ..AuditEntry::new(event, Some(realm.id), log.user_id)
        }
    }

    /// `/api/v1/dev_list_users`, any method (SPEC §7.2).
    fn dev_list_users(&mut self, request: &Request) -> Result<Response, ApiError> {
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
            match user.role {
                100 | 200 => direct_admins.push(entry),
                _ => direct_users.push(entry),
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

    /// `GET`/`HEAD /health`: 200 while the database answers (SPEC §1).
    fn health(&mut self, request: &Request) -> Result<Response, ApiError> {
        if request.method != "GET" && request.method != "HEAD" {
            return Ok(method_not_allowed(&["GET", "HEAD"]));
        }
        self.store.ping()?;
        Ok(Response::json(200, &SUCCESS))
    }

    /// `GET`/`HEAD /api/v1/users/me` with Basic auth (SPEC §9.3): proves a key works.
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
                is_admin: matches!(user.role, 100 | 200),
                is_owner: user.role == 100,
                is_guest: user.role == 600,
                role: user.role,
                is_bot: false,
                full_name: &user.full_name,
                is_active: user.is_active,
                date_joined: &user.date_joined,
                delivery_email: &user.delivery_email,
                max_message_id: -1,
            },
        ))
    }

    /// `POST /api/v1/users/me/api_key/regenerate` (SPEC §9.4): the old key fails at once.
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
        let entry = self.audit_entry(AuditEvent::KeyRotated, &realm, request, log);
        let api_key = self.store.durably(|store| {
            store.audit(&entry)?;
            store.rotate_api_key(user.id)
        })?;
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

    /// The checks of SPEC §9.2, steps 1 to 9, in order.
    fn basic_auth_user(
        &self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<(User, Realm), ApiError> {
        let credentials = basic::parse(request.authorization.as_deref()).map_err(|e| match e {
            BasicAuthError::Missing => {
                ApiError::unauthorized("Not logged in: API authentication or user session required")
            }
            BasicAuthError::Invalid => {
                ApiError::unauthorized("Invalid authorization header for basic auth")
            }
            BasicAuthError::NotBasic => ApiError::basic_auth_required(),
            BasicAuthError::MalformedKey => ApiError::unauthorized("Malformed API key"),
        })?;
        let user = self
            .store
            .user_by_api_key(&credentials.api_key)?
            .filter(|u| u.delivery_email.to_lowercase() == credentials.email.to_lowercase())
            .ok_or(ApiError::unauthorized("Invalid API key"))?;
        let realm = self.store.realm_by_id(user.realm_id)?;
        log.user_id = Some(user.id);
        log.realm = Some(realm.subdomain.clone());
        if realm.deactivated {
            Err(ApiError::unauthorized(
                "This organization has been deactivated",
            ))
        } else if !user.is_active {
            Err(ApiError::unauthorized("Account is deactivated"))
        } else if realm.subdomain != self.config.site.subdomain_of(&request.host) {
            Err(ApiError::unauthorized(
                "Account is not associated with this subdomain",
            ))
        } else {
            Ok((user, realm))
        }
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

fn parse_params(request: &Request) -> Result<Params, ApiError> {
    Params::parse(
        request.content_type.as_deref(),
        &request.body,
        &request.query,
    )
}

/// E8 before E7, both before any password check (SPEC §5.2 step 9).
fn check_active(realm: &Realm, user: &User) -> Result<(), ApiError> {
    if realm.deactivated {
        Err(ApiError::realm_deactivated())
    } else if !user.is_active {
        Err(ApiError::user_deactivated())
    } else {
        Ok(())
    }
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
    // A key must not linger in a shared cache (a permitted deviation, SPEC §3.3).
    .header("Cache-Control", "no-store")
}

/// Method handling of the authenticated REST routes (SPEC §3.2), checked before
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

/// Django's `never_cache`, which upstream puts on its REST routes (SPEC §3.3).
fn never_cache(response: Result<Response, ApiError>) -> Response {
    response
        .unwrap_or_else(|err| Response::error(&err))
        .header(
            "Cache-Control",
            "max-age=0, no-cache, no-store, must-revalidate, private",
        )
        .header("Expires", clock::http_date(SystemTime::now()))
}

/// Django's 405: JSON in a `text/html` response without a trailing newline (SPEC §3.2).
fn method_not_allowed(allowed: &[&'static str]) -> Response {
    #[derive(Serialize)]
    struct Body<'a> {
        result: &'static str,
        msg: &'static str,
        allowed_methods: &'a [&'static str],
    }
    let body = serde_json::to_vec(&Body {
        result: "error",
        msg: "Method Not Allowed",
        allowed_methods: allowed,
    })
    .expect("a 405 body always serializes");
    Response {
        status: 405,
        content_type: Some(HTML),
        headers: vec![("Allow", allowed.join(", "))],
        body,
        log: LogContext::default(),
    }
}

/// `server_settings` in upstream key order (SPEC §6.2).
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
    name: &'static str,
    display_name: String,
    display_icon: Option<String>,
    login_url: &'static str,
    signup_url: &'static str,
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
