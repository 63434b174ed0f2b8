//! `/accounts/login/`: the browser sign-in (web.md §3), with Zulip's mobile flow (§1) and a
//! second factor (§4). All its state travels in form fields: the CSRF token, the app's pad
//! (`mobile_flow_otp`), and after the password a step token that stands for a row in the
//! store, so any instance can serve any step.
//!
//! 1. `GET` shows the password form.
//! 2. `POST` without a step token is the password step: the shared login function checks it
//!    (rate limits, equal timing, LDAP, audit), and finishes at once for a user without a
//!    second factor, unless the realm requires one: then the page enrols them first.
//! 3. `POST` with a step token takes a code. Wrong codes count against the username's limit
//!    like wrong passwords, and only an accepted code finishes the sign-in and clears it.
//! 4. The finish: `302` to `zulip://login?…` with the pad, else a page saying who is signed in.

use maud::{Markup, PreEscaped, html};

use crate::auth::second_factor::{self, Origin};
use crate::auth::token;
use crate::auth::totp::{self, Secret};
use crate::clock;
use crate::http::{LogContext, Request, Response};
use crate::store::{AuditEvent, LoginStep, Realm, User};
use crate::web::cookie;
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::mobile_flow::{self, Pad};
use crate::web::page::{self, Refusal};

pub const PATH: &str = "/accounts/login/";
const STEP_FIELD: &str = "step_token";
const CODE_FIELD: &str = "otp_token";
/// How long a browser may take between its password and its code.
const STEP_LIFETIME_SECONDS: f64 = 600.0;

/// The one message of every failed password step: it never tells whether an account exists.
pub const WRONG_CREDENTIALS: &str = "Your username or password is incorrect.";
const WRONG_CODE: &str = "That code is not right. Enter the code your authenticator app shows now.";
const EXPIRED: &str = "This sign-in took too long. Please start again.";

/// What the password step's login function concluded, as the page needs it.
pub enum PasswordOutcome {
    /// The password is the user's; nothing is finished yet.
    Verified(User),
    /// Refused, with the sentence to show (generic for every credential failure).
    Refused(&'static str),
}

/// What the pages need from the rest of the program: the login function and the store.
pub trait Backend {
    fn store(&self) -> &crate::store::Store;
    /// The realm of the request's Host and its URL (the same as `server_settings`' `realm_uri`).
    fn realm(&self, request: &Request, log: &mut LogContext) -> Option<(Realm, String)>;
    /// The login function's password step, for the web, without finishing.
    fn verify_password(
        &mut self,
        realm: &Realm,
        username: &str,
        password: &str,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<PasswordOutcome, Refusal>;
    /// A code step's attempt against the username's bucket and the client's address: the
    /// message to show if the limits refuse it.
    fn code_attempt(
        &mut self,
        username: &str,
        log: &mut LogContext,
    ) -> Result<Option<&'static str>, Refusal>;
    /// A wrong code: counted against the client's address, and audited.
    fn code_failure(
        &mut self,
        realm: &Realm,
        user: &User,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<(), Refusal>;
    /// The login function's finish: bucket cleared, key handed out (minted if first), audited
    /// as a web login.
    fn finish(
        &mut self,
        realm: &Realm,
        user: &User,
        username: &str,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<String, Refusal>;
    /// An audit entry with the request's client address and user agent.
    fn audit_entry(
        &self,
        event: AuditEvent,
        realm: &Realm,
        request: &Request,
        log: &LogContext,
    ) -> crate::store::AuditEntry;
}

/// Answers `/accounts/login/`.
pub fn serve(backend: &mut impl Backend, request: &Request, log: &mut LogContext) -> Response {
    let outcome = match request.method.as_str() {
        "GET" | "HEAD" => show(backend, request, log),
        "POST" => submit(backend, request, log),
        _ => return page::method_not_allowed(),
    };
    outcome.unwrap_or_else(Refusal::page)
}

fn show(
    backend: &mut impl Backend,
    request: &Request,
    log: &mut LogContext,
) -> Result<Response, Refusal> {
    let query = Form::from_query(request)?;
    let pad = Pad::from_fields(
        query.get(mobile_flow::FIELD),
        query.get(mobile_flow::DESKTOP_FIELD),
    )?;
    let (realm, realm_url) = backend.realm(request, log).ok_or(NO_REALM)?;
    let csrf = Csrf::for_page(request);
    let view = View {
        realm: &realm,
        csrf: &csrf,
        pad: pad.as_ref(),
    };
    Ok(view.respond(password_form(&view, "", None), &realm_url))
}

const NO_REALM: Refusal = Refusal {
    status: 404,
    message: "There is no organization at this address.",
};

fn submit(
    backend: &mut impl Backend,
    request: &Request,
    log: &mut LogContext,
) -> Result<Response, Refusal> {
    let form = Form::from_body(request)?;
    let csrf = Csrf::check(request, &form)?;
    let pad = Pad::from_fields(
        form.get(mobile_flow::FIELD),
        form.get(mobile_flow::DESKTOP_FIELD),
    )?;
    let (realm, realm_url) = backend.realm(request, log).ok_or(NO_REALM)?;
    let view = View {
        realm: &realm,
        csrf: &csrf,
        pad: pad.as_ref(),
    };
    let markup = match form.get(STEP_FIELD) {
        None => password_step(backend, &view, &form, request, log)?,
        Some(step_token) => code_step(
            backend,
            &view,
            step_token,
            form.text(CODE_FIELD),
            request,
            log,
        )?,
    };
    Ok(match markup {
        Next::Page(markup) => view.respond(markup, &realm_url),
        Next::Finished { user, api_key } => {
            finish_page(&view, &user, &api_key, &realm_url, backend, log)?
        }
    })
}

/// Where a step leads: another page, or the finish.
enum Next {
    Page(Markup),
    Finished { user: User, api_key: String },
}

fn password_step(
    backend: &mut impl Backend,
    view: &View<'_>,
    form: &Form,
    request: &Request,
    log: &mut LogContext,
) -> Result<Next, Refusal> {
    let username = form.text("username");
    let password = form.text("password");
    let user = match backend.verify_password(view.realm, username, password, request, log)? {
        PasswordOutcome::Verified(user) => user,
        PasswordOutcome::Refused(message) => {
            return Ok(Next::Page(password_form(view, username, Some(message))));
        }
    };
    let store = backend.store();
    if second_factor::is_enrolled(store, &user)? {
        let token = start_step(store, &user, username, None, true)?;
        return Ok(Next::Page(code_form(view, &token, None)));
    }
    if view.realm.require_2fa {
        let secret = Secret::generate();
        let token = start_step(store, &user, username, Some(&secret), true)?;
        return Ok(Next::Page(enrol_form(view, &user, &token, &secret, None)));
    }
    let api_key = backend.finish(view.realm, &user, username, request, log)?;
    Ok(Next::Finished { user, api_key })
}

/// Stores a step and returns the token the browser carries to the next one.
fn start_step(
    store: &crate::store::Store,
    user: &User,
    username: &str,
    enrol: Option<&Secret>,
    finishes_login: bool,
) -> Result<String, Refusal> {
    let (token, digest) = token::fresh();
    let step = LoginStep {
        user_id: user.id,
        username: username.to_owned(),
        enrol_secret: enrol.map(Secret::to_base32),
        finishes_login,
        expires_at: clock::now() + STEP_LIFETIME_SECONDS,
    };
    store.create_login_step(&digest, &step)?;
    Ok(token)
}

fn code_step(
    backend: &mut impl Backend,
    view: &View<'_>,
    step_token: &str,
    code: &str,
    request: &Request,
    log: &mut LogContext,
) -> Result<Next, Refusal> {
    let digest = token::digest(step_token);
    let found = if token::is_well_formed(step_token) {
        backend.store().login_step(&digest, clock::now())?
    } else {
        None
    };
    // A step of another realm is no step here.
    let Some((step, user)) = found.filter(|(_, user)| user.realm_id == view.realm.id) else {
        return Ok(Next::Page(password_form(view, "", Some(EXPIRED))));
    };
    log.user_id = Some(user.id);
    let enrol_secret = step.enrol_secret.as_deref().and_then(Secret::from_base32);
    let again = |message| match &enrol_secret {
        Some(secret) => enrol_form(view, &user, step_token, secret, Some(message)),
        None => code_form(view, step_token, Some(message)),
    };
    if let Some(message) = backend.code_attempt(&step.username, log)? {
        return Ok(Next::Page(again(message)));
    }
    let store = backend.store();
    let accepted = match &enrol_secret {
        Some(secret) => match second_factor::check_first_code(secret, code) {
            Some(first_step) => {
                let entry = backend.audit_entry(AuditEvent::TotpEnrolled, view.realm, request, log);
                second_factor::enrol(
                    store,
                    view.realm,
                    &user,
                    secret,
                    Some(first_step),
                    Origin::Web,
                    entry,
                )?;
                true
            }
            None => false,
        },
        None => second_factor::check_code(store, &user, code)?,
    };
    if !accepted {
        log.failure = Some("WRONG_CODE");
        backend.code_failure(view.realm, &user, request, log)?;
        return Ok(Next::Page(again(WRONG_CODE)));
    }
    let store = backend.store();
    store.delete_login_step(&digest)?;
    if enrol_secret.is_none() {
        let mut entry = backend.audit_entry(AuditEvent::TotpUsed, view.realm, request, log);
        entry.detail = Some("via web".to_owned());
        store.audit(&entry)?;
    }
    if !step.finishes_login {
        return Ok(Next::Page(enrolled_page(view, &user)));
    }
    let api_key = backend.finish(view.realm, &user, &step.username, request, log)?;
    Ok(Next::Finished { user, api_key })
}

/// The end of a sign-in: the app's redirect, or a page for a person at a browser.
fn finish_page(
    view: &View<'_>,
    user: &User,
    api_key: &str,
    realm_url: &str,
    backend: &mut impl Backend,
    log: &mut LogContext,
) -> Result<Response, Refusal> {
    log.user_id = Some(user.id);
    if let Some(pad) = view.pad {
        // The Location is not logged: it carries the key, if encrypted.
        return Ok(page::redirect(pad.finish_url(
            api_key,
            &user.delivery_email,
            user.id,
            realm_url,
        )));
    }
    let store = backend.store();
    let offer = if second_factor::is_enrolled(store, user)? {
        None
    } else {
        let secret = Secret::generate();
        let token = start_step(store, user, &user.delivery_email, Some(&secret), false)?;
        Some((token, secret))
    };
    Ok(view.respond(signed_in_page(view, user, offer.as_ref()), realm_url))
}

/// What every form of the sign-in carries.
struct View<'a> {
    realm: &'a Realm,
    csrf: &'a Csrf,
    pad: Option<&'a Pad>,
}

impl View<'_> {
    fn respond(&self, markup: Markup, realm_url: &str) -> Response {
        self.csrf
            .set_cookie(page::html(200, markup), cookie::is_secure(realm_url))
    }

    /// The hidden fields of every form: the CSRF token and the app's pad.
    fn carried(&self) -> Markup {
        html! {
            (page::hidden(csrf::FIELD, self.csrf.token()))
            @if let Some(pad) = self.pad {
                (page::hidden(mobile_flow::FIELD, pad.as_hex()))
            }
        }
    }
}

fn password_form(view: &View<'_>, username: &str, error: Option<&str>) -> Markup {
    let title = format!("Sign in to {}", view.realm.name);
    page::layout(
        &title,
        html! {
            (page::error_message(error))
            form method="post" action=(PATH) {
                (view.carried())
                label for="username" { "Email" }
                input #username type="text" name="username" value=(username) autocomplete="username"
                    inputmode="email" autocapitalize="none" spellcheck="false" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The field for a six-digit code, as phones fill it from an authenticator or a message.
fn code_input() -> Markup {
    html! {
        label for="otp_token" { "Code" }
        input #otp_token type="text" name=(CODE_FIELD) inputmode="numeric" pattern="[0-9]{6}"
            maxlength=(totp::DIGITS) autocomplete="one-time-code" required autofocus;
    }
}

fn code_form(view: &View<'_>, step_token: &str, error: Option<&str>) -> Markup {
    page::layout(
        "Two-factor authentication",
        html! {
            (page::error_message(error))
            p { "Enter the six-digit code from your authenticator app." }
            form method="post" action=(PATH) {
                (view.carried())
                (page::hidden(STEP_FIELD, step_token))
                (code_input())
                button type="submit" { "Verify" }
            }
        },
    )
}

/// A new key as a QR code and as text, and the field for its first code.
fn enrolment(
    view: &View<'_>,
    user: &User,
    step_token: &str,
    secret: &Secret,
    button: &str,
) -> Markup {
    let uri = secret.otpauth_uri(second_factor::issuer(view.realm), &user.delivery_email);
    let key = secret.to_base32();
    let grouped: Vec<&str> = key
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect();
    html! {
        p { "Scan this QR code with an authenticator app, or enter the key below by hand, then type the code it shows." }
        // The SVG is drawn by the qrcode crate from the URI alone: no text of a person's in it.
        div class="qr" role="img" aria-label="QR code of the key" { (PreEscaped(totp::qr_svg(&uri))) }
        p { "Key: " code class="secret" { (grouped.join(" ")) } }
        form method="post" action=(PATH) {
            (view.carried())
            (page::hidden(STEP_FIELD, step_token))
            (code_input())
            button type="submit" { (button) }
        }
    }
}

fn enrol_form(
    view: &View<'_>,
    user: &User,
    step_token: &str,
    secret: &Secret,
    error: Option<&str>,
) -> Markup {
    page::layout(
        "Set up two-factor authentication",
        html! {
            (page::error_message(error))
            p { (view.realm.name) " asks for a second factor at every sign-in." }
            (enrolment(view, user, step_token, secret, "Turn on and sign in"))
        },
    )
}

/// Without the app's pad: who is signed in, and the second factor if they have none.
fn signed_in_page(view: &View<'_>, user: &User, offer: Option<&(String, Secret)>) -> Markup {
    page::layout(
        "Signed in",
        html! {
            p { "You are signed in to " (view.realm.name) " as " strong { (user.delivery_email) } "." }
            @match offer {
                None => p { "Two-factor authentication is on." },
                Some((token, secret)) => {
                    h2 { "Two-factor authentication" }
                    p { "Add a second factor, so that a password alone cannot sign in as you." }
                    (enrolment(view, user, token, secret, "Turn on"))
                }
            }
        },
    )
}

fn enrolled_page(view: &View<'_>, user: &User) -> Markup {
    page::layout(
        "Two-factor authentication is on",
        html! {
            p { "From now on, signing in to " (view.realm.name) " as " strong { (user.delivery_email) }
                " asks for a code from your authenticator app." }
        },
    )
}
