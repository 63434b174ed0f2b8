//! The account page (web.md §7) and the browser session behind it: who is signed in, their
//! API key and `zuliprc` after the password is entered again, a new key, a new password,
//! and signing out. Every form posts the CSRF token; every action but signing out asks for
//! the password, which counts against the per-username limit as a login does.

use maud::{Markup, html};

use crate::api::{Api, client};
use crate::auth::account;
use crate::auth::account::Refusal as PasswordRefusal;
use crate::auth::{key, session};
use crate::clock;
use crate::error::ApiError;
use crate::http::{LogContext, Request, Response};
use crate::store::{AuditEntry, AuditEvent, Realm, StoreError, StoreResult, User};
use crate::web::cookie::{self, SameSite};
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::page::{self, Refusal, hidden, layout};

pub const SETTINGS_PATH: &str = "/accounts/settings/";
pub const API_KEY_PATH: &str = "/accounts/settings/api-key";
pub const REGENERATE_PATH: &str = "/accounts/settings/api-key/regenerate";
pub const ZULIPRC_PATH: &str = "/accounts/settings/zuliprc";
pub const PASSWORD_PATH: &str = "/accounts/settings/password";
pub const LOGOUT_PATH: &str = "/accounts/logout/";
const LOGIN_PATH: &str = "/accounts/login/";

/// The realm of the request's Host, or why there is none to serve.
pub fn realm_of(api: &Api, request: &Request, log: &mut LogContext) -> Result<Realm, Refusal> {
    let subdomain = api.config.site.subdomain_of(&request.host);
    match api.store.realm_by_subdomain(&subdomain) {
        Ok(Some(realm)) => {
            log.realm = Some(realm.subdomain.clone());
            Ok(realm)
        }
        Ok(None) => Err(Refusal {
            status: 404,
            message: "There is no organization at this address.",
        }),
        Err(e) => {
            log::error!("database error on a web page: {e}");
            Err(SOMETHING_WENT_WRONG)
        }
    }
}

const SOMETHING_WENT_WRONG: Refusal = Refusal {
    status: 500,
    message: "Something went wrong. Please try again in a moment.",
};

/// Whether cookies for this request's realm must be Secure.
pub fn is_secure(api: &Api, request: &Request) -> bool {
    let subdomain = api.config.site.subdomain_of(&request.host);
    cookie::is_secure(&api.config.site.realm_url(&subdomain, &request.host))
}

/// What signing in on the login page ends with: a new session and the account page.
pub fn sign_in(api: &Api, request: &Request, user: &User) -> Response {
    match session_cookie(api, request, user) {
        Ok(cookie) => page::redirect(SETTINGS_PATH.to_owned()).header("Set-Cookie", cookie),
        Err(e) => internal(&e),
    }
}

/// A new session for `user`, as the `Set-Cookie` value that hands it to the browser.
fn session_cookie(api: &Api, request: &Request, user: &User) -> StoreResult<String> {
    let id = session::start(&api.store, user, clock::now())?;
    Ok(cookie::set(
        session::COOKIE,
        &id,
        Some(api.config.sessions.lifetime as u64),
        SameSite::Strict,
        is_secure(api, request),
    ))
}

/// The person signed in on this browser, with their session id.
struct SignedIn {
    user: User,
    realm: Realm,
    session_id: String,
}

fn signed_in(api: &Api, request: &Request) -> StoreResult<Option<SignedIn>> {
    let Some(id) = cookie::get(request, session::COOKIE) else {
        return Ok(None);
    };
    let subdomain = api.config.site.subdomain_of(&request.host);
    let found = session::current(&api.store, id, clock::now(), api.config.sessions)?;
    Ok(found
        .filter(|(_, realm)| realm.subdomain == subdomain)
        .map(|(user, realm)| SignedIn {
            user,
            realm,
            session_id: id.to_owned(),
        }))
}

/// Every page of this module, as a route of the API's table.
pub fn handle(
    api: &mut Api,
    request: &Request,
    log: &mut LogContext,
) -> Result<Response, ApiError> {
    Ok(page_for(api, request, log))
}

fn page_for(api: &Api, request: &Request, log: &mut LogContext) -> Response {
    if let Err(refusal) = realm_of(api, request, log) {
        return refusal.page();
    }
    // The page is read; its forms post to the other paths.
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    match (request.path == SETTINGS_PATH, get, request.method == "POST") {
        (true, false, _) => {
            return page::plain(405, "This page answers GET only.").header("Allow", "GET, HEAD");
        }
        (false, _, false) => {
            return page::plain(405, "This page answers POST only.").header("Allow", "POST");
        }
        _ => {}
    }
    let form = if get {
        None
    } else {
        match Form::from_body(request).and_then(|form| Csrf::check(request, &form).map(|_| form)) {
            Ok(form) => Some(form),
            Err(refusal) => return refusal.page(),
        }
    };
    let who = match signed_in(api, request) {
        Ok(Some(who)) => who,
        Ok(None) => return page::redirect(LOGIN_PATH.to_owned()),
        Err(e) => return internal(&e),
    };
    log.user_id = Some(who.user.id);
    let Some(form) = form else {
        return account_page(api, request, &who, Notice::None);
    };
    let result = match request.path.as_str() {
        LOGOUT_PATH => return sign_out(api, request, &who),
        PASSWORD_PATH => change_password(api, request, &who, &form, log),
        path => with_password(api, request, &who, &form, log, path),
    };
    match result {
        Ok(response) => response,
        Err(Failure::Refused(refusal)) => account_page(
            api,
            request,
            &who,
            Notice::Error(ApiError::from(refusal).msg.into_owned()),
        ),
        Err(Failure::Mismatch) => account_page(
            api,
            request,
            &who,
            Notice::Error("The two password fields didn't match.".into()),
        ),
    }
}

enum Notice {
    None,
    Error(String),
    Done(&'static str),
    ApiKey(String),
}

enum Failure {
    Refused(PasswordRefusal),
    Mismatch,
}

impl From<PasswordRefusal> for Failure {
    fn from(refusal: PasswordRefusal) -> Failure {
        Failure::Refused(refusal)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Refused(PasswordRefusal::Store(e))
    }
}

/// Showing the key, downloading `zuliprc`, regenerating the key: each after the password.
fn with_password(
    api: &Api,
    request: &Request,
    who: &SignedIn,
    form: &Form,
    log: &LogContext,
    path: &str,
) -> Result<Response, Failure> {
    let (user, realm) = (&who.user, &who.realm);
    let client = client(request, log);
    let key = account::confirm_password(&api.login(), realm, user, form.text("password"), client)?;
    let key = if path == REGENERATE_PATH {
        let audit = AuditEntry {
            detail: Some(ON_THE_PAGE.to_owned()),
            ..client.audit(AuditEvent::KeyRotated, realm, Some(user.id))
        };
        key::with_fresh_key(|new_key| {
            api.store.replace_api_key(user.id, new_key, &audit)?;
            Ok(new_key.to_owned())
        })?
    } else {
        key
    };
    if path == ZULIPRC_PATH {
        let site = api.config.site.realm_url(&realm.subdomain, &request.host);
        return Ok(zuliprc(&user.delivery_email, &key, &site));
    }
    Ok(account_page(api, request, who, Notice::ApiKey(key)))
}

const ON_THE_PAGE: &str = "by the user, on the account page";

/// Zulip's `zuliprc` (web.md §7), as an attachment that no cache keeps.
fn zuliprc(email: &str, key: &str, site: &str) -> Response {
    let body = format!("[api]\nemail={email}\nkey={key}\nsite={site}\n");
    Response {
        status: 200,
        content_type: Some("text/plain; charset=utf-8"),
        headers: Vec::new(),
        body: body.into_bytes(),
        log: LogContext::default(),
    }
    .header("Content-Disposition", "attachment; filename=\"zuliprc\"")
    .header("Cache-Control", "no-store")
    .header("X-Content-Type-Options", "nosniff")
}

/// A new password ends every session of the user (web.md §5), and this browser gets a new
/// one, so the person stays signed in here.
fn change_password(
    api: &Api,
    request: &Request,
    who: &SignedIn,
    form: &Form,
    log: &LogContext,
) -> Result<Response, Failure> {
    let (user, realm) = (&who.user, &who.realm);
    if account::managed_by_ldap(realm, user) {
        return Err(PasswordRefusal::ManagedByLdap.into());
    }
    let login = api.login();
    let client = client(request, log);
    account::confirm_password(&login, realm, user, form.text("old_password"), client)?;
    let new_password = form.text("new_password1");
    if new_password != form.text("new_password2") {
        return Err(Failure::Mismatch);
    }
    let audit = AuditEntry {
        detail: Some(ON_THE_PAGE.to_owned()),
        ..client.audit(AuditEvent::PasswordChanged, realm, Some(user.id))
    };
    account::set_password(&login, user, new_password, &audit)?;
    let cookie = session_cookie(api, request, user)?;
    let page = account_page(
        api,
        request,
        who,
        Notice::Done("Your password has been changed."),
    );
    Ok(page.header("Set-Cookie", cookie))
}

fn sign_out(api: &Api, request: &Request, who: &SignedIn) -> Response {
    if let Err(e) = session::end(&api.store, &who.session_id) {
        return internal(&e);
    }
    page::redirect(LOGIN_PATH.to_owned()).header(
        "Set-Cookie",
        cookie::delete(session::COOKIE, SameSite::Strict, is_secure(api, request)),
    )
}

fn password_field(id: &str, name: &str, label: &str, autocomplete: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        input type="password" id=(id) name=(name) autocomplete=(autocomplete) required;
    }
}

fn account_page(api: &Api, request: &Request, who: &SignedIn, notice: Notice) -> Response {
    let csrf = Csrf::for_page(request);
    let token = csrf.token();
    let user = &who.user;
    let content = html! {
        p { "Signed in as " b { (user.full_name) } " (" (user.delivery_email) ")." }
        @match &notice {
            Notice::None => {},
            Notice::Error(message) => (page::error_message(Some(message))),
            Notice::Done(message) => p role="status" { (message) },
            Notice::ApiKey(key) => p role="status" { "Your API key: " code { (key) } },
        }
        h2 { "API key" }
        p { "Enter your password to see your API key, download a zuliprc file for Zulip's tools, or replace the key (the old one stops working at once)." }
        @for (action, id, button) in [
            (API_KEY_PATH, "password_show", "Show API key"),
            (ZULIPRC_PATH, "password_zuliprc", "Download zuliprc"),
            (REGENERATE_PATH, "password_regenerate", "Generate a new API key"),
        ] {
            form method="post" action=(action) {
                (hidden(csrf::FIELD, token))
                (password_field(id, "password", "Password", "current-password"))
                button type="submit" { (button) }
            }
        }
        h2 { "Password" }
        form method="post" action=(PASSWORD_PATH) {
            (hidden(csrf::FIELD, token))
            (password_field("old_password", "old_password", "Current password", "current-password"))
            (password_field("new_password1", "new_password1", "New password", "new-password"))
            (password_field("new_password2", "new_password2", "Confirm new password", "new-password"))
            button type="submit" { "Change password" }
        }
        form method="post" action=(LOGOUT_PATH) {
            (hidden(csrf::FIELD, token))
            button type="submit" { "Sign out" }
        }
    };
    csrf.set_cookie(
        page::html(200, layout("Your account", content)),
        is_secure(api, request),
    )
}

pub fn internal(e: &StoreError) -> Response {
    log::error!("database error on a web page: {e}");
    SOMETHING_WENT_WRONG.page()
}
