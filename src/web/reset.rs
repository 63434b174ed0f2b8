//! The forgotten-password pages at Zulip's URLs (web.md §6): the request form, the page
//! after it, the form behind a link, and the page after that.
//!
//! The request's answer is the same redirect for every address, after the same work: the
//! limits, then a hand-over to the reset desk, which does the lookup and the mail off the
//! answer's path. The desk never sends a link to an unknown, deactivated, LDAP-managed or
//! password-less account.

use maud::{Markup, html};

use crate::auth::account::PasswordRefusal;
use crate::auth::reset;
use crate::clock;
use crate::email;
use crate::http::{LogContext, Request, Response};
use crate::reset_desk::ResetRequest;
use crate::store::{AuditEntry, AuditEvent, Realm};
use crate::web::Context;
use crate::web::cookie;
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::page::{self, Banner, Refusal, hidden};
use crate::web::paths;

const NO_PAGE: Refusal = Refusal {
    status: 404,
    message: "There is no page at this address.",
};
const INVALID_LINK: &str = "Sorry, the link you provided is invalid or has already been used.";

/// The token of a link's path, `/accounts/password/reset/<token>/`.
fn token_of(path: &str) -> Option<&str> {
    let token = path.strip_prefix(reset::PATH_PREFIX)?.strip_suffix('/')?;
    (!token.is_empty() && !token.contains('/')).then_some(token)
}

/// Answers every page of this module.
pub fn serve(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Response {
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    if !get && request.method != "POST" {
        return page::method_not_allowed(true);
    }
    let outcome = ctx
        .realm(request, log)
        .map_err(Refusal::from)
        .and_then(|realm| realm.ok_or(page::NO_REALM))
        .and_then(|(realm, realm_url)| {
            let page = Page {
                ctx,
                request,
                realm: &realm,
                realm_url: &realm_url,
            };
            match request.path.as_str() {
                paths::RESET_SENT | paths::RESET_DONE if !get => {
                    Ok(page::method_not_allowed(false))
                }
                paths::RESET_SENT => Ok(page.sent()),
                paths::RESET_DONE => Ok(page.done()),
                paths::RESET_REQUEST if get => Ok(page.request_form(None)),
                paths::RESET_REQUEST => page.request_reset(log),
                path => match token_of(path) {
                    Some(token) if get => page.link_form(token, None),
                    Some(token) => page.set_password(token, log),
                    None => Err(NO_PAGE),
                },
            }
        });
    outcome.unwrap_or_else(Refusal::page)
}

/// What every page of a request shares.
struct Page<'a> {
    ctx: &'a Context<'a>,
    request: &'a Request,
    /// The realm of the request's host: a link opens only its own realm's accounts.
    realm: &'a Realm,
    /// Its URL: cookies are Secure under https.
    realm_url: &'a str,
}

/// The way back to the sign-in, under every page of a reset (web.md §6).
fn back_to_sign_in() -> Markup {
    html! { a.back href=(paths::LOGIN) { "Back to sign in" } }
}

impl Page<'_> {
    fn layout(&self, title: &str, content: Markup) -> Markup {
        page::layout(
            Some(Banner::new(self.realm, self.realm_url)),
            title,
            content,
        )
    }

    fn respond(&self, csrf: &Csrf, markup: Markup) -> Response {
        csrf.set_cookie(page::html(200, markup), cookie::is_secure(self.realm_url))
    }

    fn sent(&self) -> Response {
        let content = html! {
            p { "Check your email in a few minutes to finish the process." }
            (back_to_sign_in())
        };
        page::html(200, self.layout("Password reset sent!", content))
    }

    fn done(&self) -> Response {
        let content = html! {
            p { "Please log in with your new password." }
            a.button href=(paths::LOGIN) { "Log in" }
        };
        page::html(200, self.layout("You've set a new password!", content))
    }

    fn invalid_link(&self) -> Response {
        let content = html! {
            p { (INVALID_LINK) }
            p { a href=(paths::RESET_REQUEST) { "Request a new link" } }
            (back_to_sign_in())
        };
        page::html(200, self.layout("Reset your password", content))
    }

    /// The request form, or without mail the sentence that sends people to their
    /// administrator.
    fn request_form(&self, error: Option<&str>) -> Response {
        let csrf = Csrf::for_page(self.request);
        let content = if self.ctx.reset_desk.is_some() {
            html! {
                p { "Enter the email address of your account, and we will send you a link to set a new password." }
                (page::error_message(error))
                form method="post" action=(paths::RESET_REQUEST) {
                    (hidden(csrf::FIELD, csrf.token()))
                    label for="email" { "Email" }
                    input type="email" id="email" name="email" autocomplete="email" required autofocus;
                    button type="submit" { "Reset password" }
                }
                (back_to_sign_in())
            }
        } else {
            html! {
                p { "This server does not send email. Your administrator resets passwords: ask them for a password reset link." }
                (back_to_sign_in())
            }
        };
        self.respond(&csrf, self.layout("Reset your password", content))
    }

    fn request_reset(&self, log: &LogContext) -> Result<Response, Refusal> {
        let form = Form::from_body(self.request)?;
        Csrf::check(self.request, &form)?;
        let Some(desk) = self.ctx.reset_desk else {
            return Ok(self.request_form(None));
        };
        let address = form.text("email").trim();
        if !email::is_valid(address) {
            return Ok(self.request_form(Some("Enter a valid email address.")));
        }
        let now = clock::now();
        if !reset::request_allowed(self.ctx.store, address, log.client, now)? {
            return Ok(page::plain(429, "Rate limit exceeded."));
        }
        desk.submit(ResetRequest {
            realm_id: self.realm.id,
            realm_url: self.realm_url.to_owned(),
            email: address.to_owned(),
            client: log.client,
            at: now,
        });
        Ok(page::redirect(paths::RESET_SENT.to_owned()))
    }

    /// The form behind a live link, with Django's field names.
    fn link_form(&self, token: &str, error: Option<&str>) -> Result<Response, Refusal> {
        let Some(user) = reset::holder(self.ctx.store, self.realm, token, clock::now())? else {
            return Ok(self.invalid_link());
        };
        let csrf = Csrf::for_page(self.request);
        let content = html! {
            p { "Choose a new password for " b { (user.delivery_email) } "." }
            (page::error_message(error))
            form method="post" action=(reset::path(token)) {
                (hidden(csrf::FIELD, csrf.token()))
                (page::new_password_fields())
                button type="submit" { "Set password" }
            }
            (back_to_sign_in())
        };
        Ok(self.respond(&csrf, self.layout("Set a new password", content)))
    }

    fn set_password(&self, token: &str, log: &mut LogContext) -> Result<Response, Refusal> {
        let form = Form::from_body(self.request)?;
        Csrf::check(self.request, &form)?;
        let Some(user) = reset::holder(self.ctx.store, self.realm, token, clock::now())? else {
            return Ok(self.invalid_link());
        };
        log.user_id = Some(user.id);
        let new_password = form.text("new_password1");
        if new_password != form.text("new_password2") {
            return self.link_form(token, Some("The two password fields didn't match."));
        }
        let audit = AuditEntry {
            detail: Some("by the user, with a reset link".to_owned()),
            ..self
                .ctx
                .client
                .audit(AuditEvent::PasswordChanged, self.realm, Some(user.id))
        };
        match reset::set_password(&self.ctx.login, &user, token, new_password, &audit) {
            Ok(true) => Ok(page::redirect(paths::RESET_DONE.to_owned())),
            Ok(false) => Ok(self.invalid_link()),
            Err(PasswordRefusal::Store(e)) => Err(e.into()),
            Err(_) => self.link_form(token, Some("The password is too weak.")),
        }
    }
}
