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

use crate::auth::login::{Credentials, Deferred, Method, Refusal as LoginRefusal, Verified};
use crate::auth::second_factor::{self, Origin};
use crate::auth::token;
use crate::auth::totp::{self, Secret};
use crate::clock;
use crate::http::{LogContext, Request, Response};
use crate::store::{AuditEntry, AuditEvent, LoginStep, Realm, StoreResult, User};
use crate::web::Context;
use crate::web::account;
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
const WRONG_CREDENTIALS: &str = "Your username or password is incorrect.";
const WRONG_CODE: &str = "That code is not right. Enter the code your authenticator app shows now.";
const TOO_MANY: &str = "Too many attempts. Please wait a while, then try again.";
const EXPIRED: &str = "This sign-in took too long. Please start again.";

const NO_REALM: Refusal = Refusal {
    status: 404,
    message: "There is no organization at this address.",
};

/// Answers `/accounts/login/`.
pub fn serve(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Response {
    let outcome = match request.method.as_str() {
        "GET" | "HEAD" => show(ctx, request, log),
        "POST" => submit(ctx, request, log),
        _ => return page::method_not_allowed(true),
    };
    outcome.unwrap_or_else(Refusal::page)
}

fn show(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Result<Response, Refusal> {
    let query = Form::from_query(request)?;
    let pad = Pad::from_fields(
        query.get(mobile_flow::FIELD),
        query.get(mobile_flow::DESKTOP_FIELD),
    )?;
    let (realm, realm_url) = ctx.realm(request, log)?.ok_or(NO_REALM)?;
    let csrf = Csrf::for_page(request);
    let view = View {
        realm: &realm,
        csrf: &csrf,
        pad: pad.as_ref(),
    };
    Ok(view.respond(password_form(&view, "", None), &realm_url))
}

fn submit(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Result<Response, Refusal> {
    let form = Form::from_body(request)?;
    let csrf = Csrf::check(request, &form)?;
    let pad = Pad::from_fields(
        form.get(mobile_flow::FIELD),
        form.get(mobile_flow::DESKTOP_FIELD),
    )?;
    let (realm, realm_url) = ctx.realm(request, log)?.ok_or(NO_REALM)?;
    let view = View {
        realm: &realm,
        csrf: &csrf,
        pad: pad.as_ref(),
    };
    let next = match form.get(STEP_FIELD) {
        None => password_step(ctx, &view, &form, log)?,
        Some(step_token) => code_step(ctx, request, &view, step_token, form.text(CODE_FIELD), log)?,
    };
    match next {
        Next::Page(markup) => Ok(view.respond(markup, &realm_url)),
        Next::Finished { user, api_key } => finish_page(ctx, &view, &user, &api_key, &realm_url),
    }
}

/// Where a step leads: another page, or the finish.
enum Next {
    Page(Markup),
    Finished { user: User, api_key: String },
}

/// The words for a refused password, never telling whether the account exists: a
/// deactivated account reads as a wrong password.
fn refusal_message(refusal: LoginRefusal) -> &'static str {
    match refusal {
        LoginRefusal::RateLimited { .. } => TOO_MANY,
        LoginRefusal::PasswordAuthDisabled => {
            "Password authentication is disabled in this organization."
        }
        LoginRefusal::ResetRequired => "Your password has been disabled and needs to be reset.",
        LoginRefusal::WrongCode => WRONG_CODE,
        LoginRefusal::InvalidEmail
        | LoginRefusal::UnknownUser
        | LoginRefusal::WrongPassword
        | LoginRefusal::DirectoryUnavailable
        | LoginRefusal::PasswordChanged
        | LoginRefusal::RealmDeactivated
        | LoginRefusal::UserDeactivated => WRONG_CREDENTIALS,
    }
}

fn password_step(
    ctx: &Context<'_>,
    view: &View<'_>,
    form: &Form,
    log: &mut LogContext,
) -> Result<Next, Refusal> {
    let username = form.text("username");
    let credentials = Credentials {
        username,
        password: form.text("password"),
    };
    let checked = ctx
        .login
        .verify(view.realm, credentials, ctx.client, Method::Web)?;
    log.user_id = checked.user_id;
    let verified = match checked.outcome {
        Ok(verified) => verified,
        Err(refusal) => {
            log.failure = refusal.reason();
            return Ok(Next::Page(password_form(
                view,
                username,
                Some(refusal_message(refusal)),
            )));
        }
    };
    let enrolled = second_factor::is_enrolled(ctx.store, &verified.user)?;
    if !enrolled && !view.realm.require_2fa {
        return finish(ctx, view, verified);
    }
    // A second factor comes first: nothing is handed out and the bucket stays as it is.
    let verified = ctx.login.defer(verified);
    let deferred = verified.deferred(username);
    if enrolled {
        let token = start_step(ctx, &deferred, None, true)?;
        Ok(Next::Page(code_form(view, &token, None)))
    } else {
        let secret = Secret::generate();
        let token = start_step(ctx, &deferred, Some(&secret), true)?;
        Ok(Next::Page(enrol_form(
            view,
            &verified.user,
            &token,
            &secret,
            None,
        )))
    }
}

/// Stores a step and returns the token the browser carries to the next one.
fn start_step(
    ctx: &Context<'_>,
    deferred: &Deferred,
    enrol: Option<&Secret>,
    finishes_login: bool,
) -> Result<String, Refusal> {
    let (token, digest) = token::fresh();
    let step = LoginStep {
        user_id: deferred.user_id,
        username: deferred.username.clone(),
        verified_hash: deferred.verified_hash.clone(),
        rehash: deferred.rehash.clone(),
        enrol_secret: enrol.map(Secret::to_base32),
        finishes_login,
        expires_at: clock::now() + STEP_LIFETIME_SECONDS,
    };
    ctx.store.create_login_step(&digest, &step)?;
    Ok(token)
}

fn code_step(
    ctx: &Context<'_>,
    request: &Request,
    view: &View<'_>,
    step_token: &str,
    code: &str,
    log: &mut LogContext,
) -> Result<Next, Refusal> {
    let digest = token::digest(step_token);
    let found = if token::is_well_formed(step_token) {
        ctx.store.login_step(&digest, clock::now())?
    } else {
        None
    };
    // A step of another realm is no step here.
    let Some((step, user)) = found.filter(|(_, user)| user.realm_id == view.realm.id) else {
        return Ok(Next::Page(password_form(view, "", Some(EXPIRED))));
    };
    log.user_id = Some(user.id);
    // An offer of a new key stands only while the user has none: a factor turned on since
    // (by another offer, or the operator) is never replaced by an older offer's key.
    if step.enrol_secret.is_some() && second_factor::is_enrolled(ctx.store, &user)? {
        ctx.store.take_login_step(&digest)?;
        return Ok(Next::Page(password_form(view, "", Some(EXPIRED))));
    }
    let enrol_secret = step.enrol_secret.as_deref().and_then(Secret::from_base32);
    let again = |message| match &enrol_secret {
        Some(secret) => enrol_form(view, &user, step_token, secret, Some(message)),
        None => code_form(view, step_token, Some(message)),
    };
    let context = ctx
        .client
        .audit(AuditEvent::TotpUsed, view.realm, Some(user.id));
    // The code's check, for the login to call once the limits have admitted the attempt. A
    // store fault inside it is kept and reported after.
    let mut fault = None;
    // A key enrolled during a sign-in becomes the user's only once the sign-in finishes: a
    // finish refused because the password changed meanwhile must leave no factor behind.
    let mut first_code = None;
    let mut accept = |user: &User| match &enrol_secret {
        Some(secret) if step.finishes_login => {
            first_code = second_factor::check_first_code(secret, code);
            first_code.is_some()
        }
        _ => accepts(ctx, view.realm, user, enrol_secret.as_ref(), code, &context).unwrap_or_else(
            |err| {
                fault = Some(err);
                false
            },
        ),
    };
    if !step.finishes_login {
        // A signed-in user turning it on: nothing to finish, and nothing to guess. Only
        // while signed in: the page's form must not outlive the session that showed it.
        if !account::is_signed_in_as(ctx, request, &user)? {
            return Ok(Next::Page(password_form(view, "", Some(EXPIRED))));
        }
        if !accept(&user) {
            return match fault {
                Some(err) => Err(err.into()),
                None => Ok(Next::Page(again(WRONG_CODE))),
            };
        }
        ctx.store.take_login_step(&digest)?;
        return Ok(Next::Page(enrolled_page(view, &user)));
    }
    let username = step.username.clone();
    let deferred = Deferred {
        user_id: step.user_id,
        username: step.username,
        verified_hash: step.verified_hash,
        rehash: step.rehash,
    };
    let verified = ctx
        .login
        .resume(view.realm, deferred, user.clone(), Method::Web);
    let checked = ctx
        .login
        .second_factor(view.realm, &username, verified, ctx.client, accept)?;
    if let Some(err) = fault {
        return Err(err.into());
    }
    match checked.outcome {
        Ok(success) => {
            // Spent: the same token cannot finish a second time. A request that raced this
            // one with another valid code and took the step first has had the key.
            if !ctx.store.take_login_step(&digest)? {
                return Ok(Next::Page(password_form(view, "", Some(EXPIRED))));
            }
            if let (Some(secret), Some(first)) = (&enrol_secret, first_code) {
                second_factor::enrol(
                    ctx.store,
                    view.realm,
                    &success.user,
                    secret,
                    Some(first),
                    Origin::Web,
                    &context,
                )?;
            }
            Ok(Next::Finished {
                user: success.user,
                api_key: success.api_key,
            })
        }
        Err(refusal @ (LoginRefusal::WrongCode | LoginRefusal::RateLimited { .. })) => {
            log.failure = refusal.reason();
            Ok(Next::Page(again(refusal_message(refusal))))
        }
        Err(refusal) => {
            log.failure = refusal.reason();
            ctx.store.take_login_step(&digest)?;
            Ok(Next::Page(password_form(
                view,
                "",
                Some(refusal_message(refusal)),
            )))
        }
    }
}

/// Whether `code` is right: a code of the user's key (used up once accepted), or the first
/// code of the key being enrolled, which then becomes theirs.
fn accepts(
    ctx: &Context<'_>,
    realm: &Realm,
    user: &User,
    enrol_secret: Option<&Secret>,
    code: &str,
    context: &AuditEntry,
) -> StoreResult<bool> {
    let Some(secret) = enrol_secret else {
        return second_factor::check_code(ctx.store, realm, user, code, Origin::Web, context);
    };
    match second_factor::check_first_code(secret, code) {
        Some(first) => {
            second_factor::enrol(
                ctx.store,
                realm,
                user,
                secret,
                Some(first),
                Origin::Web,
                context,
            )?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The login function's finish: the bucket cleared and the key handed out, or a refusal if
/// the account changed since its password was verified.
fn finish(ctx: &Context<'_>, view: &View<'_>, verified: Verified) -> Result<Next, Refusal> {
    match ctx.login.finish(view.realm, verified, ctx.client)? {
        Ok(success) => Ok(Next::Finished {
            user: success.user,
            api_key: success.api_key,
        }),
        Err(refusal) => Ok(Next::Page(password_form(
            view,
            "",
            Some(refusal_message(refusal)),
        ))),
    }
}

/// The end of a sign-in: the app's redirect, or a page for a person at a browser.
fn finish_page(
    ctx: &Context<'_>,
    view: &View<'_>,
    user: &User,
    api_key: &str,
    realm_url: &str,
) -> Result<Response, Refusal> {
    if let Some(pad) = view.pad {
        // Not logged: the Location carries the key, encrypted.
        return Ok(page::redirect(pad.finish_url(
            api_key,
            &user.delivery_email,
            user.id,
            realm_url,
        )));
    }
    account::sign_in(ctx, user, realm_url)
}

/// For a signed-in user without a second factor: a new key to scan and the form for its
/// first code, which posts here and turns the factor on (the account page shows it).
pub fn enrolment_offer(
    ctx: &Context<'_>,
    realm: &Realm,
    csrf: &Csrf,
    user: &User,
) -> Result<Markup, Refusal> {
    let secret = Secret::generate();
    let deferred = Deferred {
        user_id: user.id,
        username: user.delivery_email.clone(),
        verified_hash: None,
        rehash: None,
    };
    let token = start_step(ctx, &deferred, Some(&secret), false)?;
    let view = View {
        realm,
        csrf,
        pad: None,
    };
    // Only a realm that requires it sends the apps' logins through these pages too.
    let reach = if realm.require_2fa {
        "Add a second factor, so that a password alone cannot sign in as you."
    } else {
        "Add a second factor, so that a password alone cannot sign in as you on these pages. \
         The apps and other clients can still log in with your password alone unless your \
         organization requires a second factor."
    };
    Ok(html! {
        p { (reach) }
        (enrolment(&view, user, &token, &secret, "Turn on"))
    })
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
                input #password type="password" name="password" autocomplete="current-password"
                    required;
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
        p {
            "Scan this QR code with an authenticator app, or enter the key below by hand, "
            "then type the code it shows."
        }
        // The SVG is drawn by the qrcode crate from the URI alone: no text of a person's in it.
        div class="qr" role="img" aria-label="QR code of the key" {
            (PreEscaped(totp::qr_svg(&uri)))
        }
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

fn enrolled_page(view: &View<'_>, user: &User) -> Markup {
    page::layout(
        "Two-factor authentication is on",
        html! {
            p {
                "From now on, signing in to " (view.realm.name) " as "
                strong { (user.delivery_email) }
                " asks for a code from your authenticator app."
            }
            p { a href=(account::SETTINGS_PATH) { "Back to your account" } }
        },
    )
}
