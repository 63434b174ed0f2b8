//! `/accounts/login/`: the browser sign-in's pages (web.md §3), with Zulip's mobile flow (§1)
//! and a second factor (§4). The sign-in itself is auth's state machine (`auth::signin`):
//! each POST is one of its steps, and this module renders the outcome. All state travels in
//! form fields: the CSRF token, the app's pad (`mobile_flow_otp`), and after the first step
//! a step token.
//!
//! 1. `GET` shows the password form.
//! 2. `POST` without a step token is the password step.
//! 3. `POST` with a step token takes a code (or a new key's first code).
//! 4. Where the realm offers passkeys (web.md §9): `POST` with `passkey_options` answers a
//!    ceremony's options as JSON (with a step token, for one of the user's passkeys;
//!    without, for a sign-in without a username), and `POST` with the browser's answer is
//!    that step.
//! 5. The finish: `302` to `zulip://login?…` with the pad, else a session and the account
//!    page.

use std::borrow::Cow;

use maud::{Markup, html};

use crate::auth::login::{Credentials, LoginRefusal};
use crate::auth::passkey::RelyingParty;
use crate::auth::passkeys;
use crate::auth::signin::{Denial, NextStep, Outcome, SignIn, StepKind};
use crate::http::{LogContext, Request, Response};
use crate::reset_desk;
use crate::store::{IdentityProvider, Realm, User};
use crate::web::Context;
use crate::web::account;
use crate::web::cookie;
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::mobile_flow::{self, Pad};
use crate::web::oidc;
use crate::web::page::{self, Banner, NO_REALM, Refusal};
use crate::web::passkey;
use crate::web::paths;
use crate::web::totp::{self, CODE_FIELD};

const STEP_FIELD: &str = "step_token";

/// The one message of every failed password step: it never tells whether an account exists.
const WRONG_CREDENTIALS: &str = "Your username or password is incorrect.";
const EXPIRED: &str = "This sign-in took too long. Please start again.";

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
    let pad = Pad::of(&query)?;
    let (realm, realm_url, providers) = ctx.realm_with_providers(request, log)?.ok_or(NO_REALM)?;
    let csrf = Csrf::for_page(request);
    let rp = passkeys::relying_party(ctx.site, &realm).ok();
    let view = View {
        realm: &realm,
        realm_url: &realm_url,
        csrf: &csrf,
        pad: pad.as_ref(),
        resets: ctx.reset_desk.is_some(),
        rp: rp.as_ref(),
        providers: &providers,
    };
    Ok(view.respond(password_form(&view, "", None), true))
}

/// One step of the sign-in, and its outcome rendered.
fn submit(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Result<Response, Refusal> {
    let form = Form::from_body(request)?;
    let csrf = Csrf::check(request, &form)?;
    let pad = Pad::of(&form)?;
    let (realm, realm_url, providers) = ctx.realm_with_providers(request, log)?.ok_or(NO_REALM)?;
    let offered = passkeys::relying_party(ctx.site, &realm);
    let view = View {
        realm: &realm,
        realm_url: &realm_url,
        csrf: &csrf,
        pad: pad.as_ref(),
        resets: ctx.reset_desk.is_some(),
        rp: offered.as_ref().ok(),
        providers: &providers,
    };
    let signin = SignIn {
        login: &ctx.login,
        client: ctx.client,
        site: ctx.site,
    };
    let (token, answer) = (form.get(STEP_FIELD), passkey::answer(&form));
    if passkey::wants_options(&form) {
        return Ok(match &offered {
            Ok(rp) => passkey::options_or_why(signin.passkey_options(&realm, token, rp)?),
            Err(unavailable) => passkey::options(Err(unavailable.message())),
        });
    }
    let username = form.text("username");
    let step = match (token, answer, &offered) {
        (_, Some(_), Err(unavailable)) => {
            let message = Some(unavailable.message());
            return Ok(view.respond(password_form(&view, "", message), false));
        }
        (None, Some(answer), Ok(rp)) => signin.password_free(&realm, rp, answer)?,
        (Some(token), Some(answer), Ok(rp)) => signin.passkey(&realm, token, rp, answer)?,
        (None, None, _) => {
            let password = form.text("password");
            signin.password(&realm, Credentials { username, password })?
        }
        (Some(token), None, _) => signin.code(&realm, token, form.text(CODE_FIELD))?,
    };
    log.user_id = step.user_id;
    log.failure = step.failure();
    let by_passkey = answer.is_some();
    render_outcome(ctx, &view, step.outcome, username, by_passkey, false)
}

/// The page of a sign-in that came back from an identity provider (web.md §10.2): its
/// outcome, rendered as after a password. The provider's redirect came from another site,
/// so a finish in a browser goes through a same-site step.
pub fn after_provider(
    ctx: &Context<'_>,
    request: &Request,
    realm: &Realm,
    realm_url: &str,
    pad: Option<&Pad>,
    outcome: Outcome,
) -> Result<Response, Refusal> {
    let csrf = Csrf::for_page(request);
    let rp = passkeys::relying_party(ctx.site, realm).ok();
    let providers = ctx.store.identity_providers(realm.id)?;
    let view = View {
        realm,
        realm_url,
        csrf: &csrf,
        pad,
        resets: ctx.reset_desk.is_some(),
        rp: rp.as_ref(),
        providers: &providers,
    };
    render_outcome(ctx, &view, outcome, "", false, true)
}

/// A step's outcome rendered: the finish, the next step's form, or a refusal. `by_passkey`: the
/// step was answered with a passkey. `across_sites`:
/// the request came from another site, whose navigation carries no SameSite=Strict cookie.
fn render_outcome(
    ctx: &Context<'_>,
    view: &View<'_>,
    outcome: Outcome,
    username: &str,
    by_passkey: bool,
    across_sites: bool,
) -> Result<Response, Refusal> {
    // The pages with a passkey button load the script (web.md §9).
    let (markup, passkeys) = match outcome {
        Outcome::Success(success) => {
            let finished = finish(ctx, view, &success.user, &success.api_key, across_sites);
            reset_desk::post(ctx.reset_desk, success.notices);
            return finished;
        }
        Outcome::Continue(next) => (step_form(view, &next, None), offers_passkey(&next)),
        // A refused passkey counts as a wrong code, but reads as what it was (web.md §9).
        Outcome::Denied(Denial::Again {
            step,
            refusal: LoginRefusal::WrongCode,
        }) if by_passkey => (
            step_form(view, &step, Some(passkey::NOT_ACCEPTED)),
            offers_passkey(&step),
        ),
        Outcome::Denied(Denial::Again { step, refusal }) => (
            step_form(view, &step, Some(&refusal_message(refusal))),
            offers_passkey(&step),
        ),
        // The form of the code step has no username: a refusal there starts afresh.
        Outcome::Denied(Denial::Refused(refusal)) => (
            password_form(view, username, Some(&refusal_message(refusal))),
            true,
        ),
        Outcome::Denied(Denial::Expired) => (password_form(view, "", Some(EXPIRED)), true),
    };
    Ok(view.respond(markup, passkeys))
}

/// Whether the step offers one of the user's passkeys.
fn offers_passkey(next: &NextStep) -> bool {
    matches!(next.kind, StepKind::Code { passkey: true })
}

/// The words for a refusal, never telling whether the account exists: a deactivated
/// account reads as a wrong password.
fn refusal_message(refusal: LoginRefusal) -> Cow<'static, str> {
    match refusal {
        LoginRefusal::RateLimited { retry_after } => page::try_again(retry_after).into(),
        LoginRefusal::PasswordAuthDisabled => {
            "Password authentication is disabled in this organization.".into()
        }
        LoginRefusal::ResetRequired => {
            "Your password has been disabled and needs to be reset.".into()
        }
        LoginRefusal::WrongCode => totp::WRONG_CODE.into(),
        LoginRefusal::WrongPasskey => passkey::NOT_ACCEPTED.into(),
        LoginRefusal::InvalidEmail
        | LoginRefusal::UnknownUser
        | LoginRefusal::WrongPassword
        | LoginRefusal::DirectoryUnavailable
        | LoginRefusal::PasswordChanged
        | LoginRefusal::RealmDeactivated
        | LoginRefusal::UserDeactivated
        | LoginRefusal::BadToken
        | LoginRefusal::NoEmail
        | LoginRefusal::OtherRealm
        | LoginRefusal::ProviderFailed => WRONG_CREDENTIALS.into(),
    }
}

/// The end of a sign-in: the app's redirect, or a session for a person at a browser.
fn finish(
    ctx: &Context<'_>,
    view: &View<'_>,
    user: &User,
    api_key: &str,
    across_sites: bool,
) -> Result<Response, Refusal> {
    if let Some(pad) = view.pad {
        // Not logged: the Location carries the key, encrypted.
        return Ok(page::redirect(pad.finish_url(
            api_key,
            &user.delivery_email,
            user.id,
            view.realm_url,
        )));
    }
    if across_sites {
        return account::sign_in_across_sites(ctx, user, view.realm_url);
    }
    account::sign_in(ctx, user, view.realm_url)
}

/// The form of the step that is due.
fn step_form(view: &View<'_>, next: &NextStep, error: Option<&str>) -> Markup {
    match &next.kind {
        StepKind::Code { passkey } => code_form(view, &next.token, *passkey, error),
        // The key to scan is the point of this page: the code's field takes no focus.
        StepKind::Enrol { secret, email } => view.layout(
            "Set up two-factor authentication",
            html! {
                (page::error_message(error))
                p { (view.realm.name) " asks for a second factor at every sign-in." }
                (totp::new_key(view.realm, email, secret))
                form method="post" action=(paths::LOGIN) {
                    (view.carried())
                    (page::hidden(STEP_FIELD, &next.token))
                    (totp::code_input())
                    button type="submit" { "Turn on and sign in" }
                }
            },
        ),
    }
}

/// What every form of the sign-in carries.
struct View<'a> {
    realm: &'a Realm,
    realm_url: &'a str,
    csrf: &'a Csrf,
    pad: Option<&'a Pad>,
    /// Mail is set up: the password form links to the reset page (web.md §6).
    resets: bool,
    /// The realm offers passkeys (web.md §9): its pages with passkey buttons carry the script.
    rp: Option<&'a RelyingParty>,
    /// The realm's identity providers, a link to each under the form (web.md §10.1).
    providers: &'a [IdentityProvider],
}

impl View<'_> {
    /// The page; one that may have a passkey button (`passkeys`), where the realm offers
    /// them, under the script's policy.
    fn respond(&self, markup: Markup, passkeys: bool) -> Response {
        let page = page::html(200, markup);
        let page = match (self.rp, passkeys) {
            (Some(_), true) => page::with_script(page),
            _ => page,
        };
        self.csrf
            .set_cookie(page, cookie::is_secure(self.realm_url))
    }

    /// A form with a passkey button, where the realm offers passkeys: `token` is the step's.
    fn passkey_form(&self, token: Option<&str>, label: &str) -> Markup {
        html! {
            @if self.rp.is_some() {
                form method="post" action=(paths::LOGIN) {
                    (self.carried())
                    @if let Some(token) = token {
                        (page::hidden(STEP_FIELD, token))
                    }
                    (passkey::button("get", label))
                }
                (passkey::script())
            }
        }
    }

    fn layout(&self, title: &str, content: Markup) -> Markup {
        page::layout(
            Some(Banner::new(self.realm, self.realm_url)),
            title,
            content,
        )
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
    view.layout(
        &title,
        html! {
            (page::error_message(error))
            form method="post" action=(paths::LOGIN) {
                (view.carried())
                label for="username" { "Email" }
                input #username type="text" name="username" value=(username) autocomplete="username"
                    inputmode="email" autocapitalize="none" spellcheck="false" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password"
                    required;
                button type="submit" { "Sign in" }
            }
            (view.passkey_form(None, "Sign in with a passkey"))
            (oidc::links(view.providers, view.pad))
            // Hidden in an app's flow: the reset pages would lose its pad (web.md §3).
            @if view.resets && view.pad.is_none() {
                a.back href=(paths::RESET_REQUEST) { "Forgot your password?" }
            }
        },
    )
}

fn code_form(view: &View<'_>, step_token: &str, passkey: bool, error: Option<&str>) -> Markup {
    view.layout(
        "Two-factor authentication",
        html! {
            (page::error_message(error))
            @if passkey {
                (view.passkey_form(Some(step_token), "Use a passkey"))
            }
            p { "Enter the six-digit code from your authenticator app, or one of your recovery codes." }
            form method="post" action=(paths::LOGIN) {
                (view.carried())
                (page::hidden(STEP_FIELD, step_token))
                (totp::code_or_recovery_input())
                button type="submit" { "Verify" }
            }
        },
    )
}
