//! The forgotten-password pages at Zulip's URLs (web.md §6): the request form, the page
//! after it, the form behind a link, and the page after that.
//!
//! The request's answer is the same redirect for every address, after the same work: the
//! limits, then a hand-over to the reset desk, which does the lookup and the mail off the
//! answer's path. The desk never sends a link to an unknown, deactivated, LDAP-managed or
//! password-less account.

use maud::{Markup, html};

use crate::api::{Api, client};
use crate::auth::account::{self, Refusal};
use crate::auth::reset;
use crate::clock;
use crate::email;
use crate::error::ApiError;
use crate::http::{LogContext, Request, Response};
use crate::reset_desk::ResetRequest;
use crate::store::{AuditEntry, AuditEvent, Realm};
use crate::web::account::{internal, is_secure, realm_of};
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::page::{self, hidden, layout};

pub const REQUEST_PATH: &str = reset::PATH_PREFIX;
pub const SENT_PATH: &str = "/accounts/password/reset/done/";
pub const DONE_PATH: &str = "/accounts/password/done/";

/// The token of a link's path, `/accounts/password/reset/<token>/`.
fn token_of(path: &str) -> Option<&str> {
    let token = path.strip_prefix(reset::PATH_PREFIX)?.strip_suffix('/')?;
    (!token.is_empty() && !token.contains('/') && token != "done").then_some(token)
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
    let realm = match realm_of(api, request, log) {
        Ok(realm) => realm,
        Err(refusal) => return refusal.page(),
    };
    let path = request.path.as_str();
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    let post = request.method == "POST";
    match path {
        _ if !get && !post => page::method_not_allowed(),
        SENT_PATH | DONE_PATH if post => page::method_not_allowed(),
        SENT_PATH => page::html(
            200,
            layout(
                "Password reset sent!",
                html! { p { "Check your email in a few minutes to finish the process." } },
            ),
        ),
        DONE_PATH => page::html(
            200,
            layout(
                "You've set a new password!",
                html! {
                    p { "Please log in with your new password." }
                    p { a href="/accounts/login/" { "Log in" } }
                },
            ),
        ),
        REQUEST_PATH if get => request_form(api, request, None),
        REQUEST_PATH => request_reset(api, request, &realm, log),
        _ => match token_of(path) {
            Some(token) if get => link_form(api, request, token, None),
            Some(token) => set_password(api, request, token, log),
            None => page::plain(404, "There is no page at this address."),
        },
    }
}

/// The request form, or without mail the sentence that sends people to their administrator.
fn request_form(api: &Api, request: &Request, error: Option<&str>) -> Response {
    let csrf = Csrf::for_page(request);
    let content = if api.config.reset_desk.is_some() {
        html! {
            p { "Enter the email address of your account, and we will send you a link to set a new password." }
            (page::error_message(error))
            form method="post" action=(REQUEST_PATH) {
                (hidden(csrf::FIELD, csrf.token()))
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="email" required autofocus;
                button type="submit" { "Reset password" }
            }
        }
    } else {
        html! {
            p { "This server does not send email. Your administrator resets passwords: ask them for a password reset link." }
        }
    };
    csrf.set_cookie(
        page::html(200, layout("Reset your password", content)),
        is_secure(api, request),
    )
}

fn request_reset(api: &Api, request: &Request, realm: &Realm, log: &mut LogContext) -> Response {
    let form = match Form::from_body(request) {
        Ok(form) => form,
        Err(refusal) => return refusal.page(),
    };
    if let Err(refusal) = Csrf::check(request, &form) {
        return refusal.page();
    }
    let Some(desk) = &api.config.reset_desk else {
        return request_form(api, request, None);
    };
    let address = form.text("email").trim();
    if !email::is_valid(address) {
        return request_form(api, request, Some("Enter a valid email address."));
    }
    let now = clock::now();
    match reset::request_allowed(&api.store, address, log.client, now) {
        Ok(true) => {}
        Ok(false) => return page::plain(429, "Rate limit exceeded."),
        Err(e) => return internal(&e),
    }
    desk.submit(ResetRequest {
        realm_id: realm.id,
        realm_url: api.config.site.realm_url(&realm.subdomain, &request.host),
        email: address.to_owned(),
        client: log.client,
        at: now,
    });
    page::redirect(SENT_PATH.to_owned())
}

const INVALID_LINK: &str = "Sorry, the link you provided is invalid or has already been used.";

fn invalid_link() -> Response {
    page::html(
        200,
        layout(
            "Reset your password",
            html! {
                p { (INVALID_LINK) }
                p { a href=(REQUEST_PATH) { "Request a new link" } }
            },
        ),
    )
}

/// The form behind a live link, with Django's field names.
fn link_form(api: &Api, request: &Request, token: &str, error: Option<&str>) -> Response {
    match reset::holder(&api.store, token, clock::now()) {
        Ok(Some((user, _))) => {
            let csrf = Csrf::for_page(request);
            let action = reset::path(token);
            let content: Markup = html! {
                p { "Choose a new password for " b { (user.delivery_email) } "." }
                (page::error_message(error))
                form method="post" action=(action) {
                    (hidden(csrf::FIELD, csrf.token()))
                    label for="new_password1" { "New password" }
                    input type="password" id="new_password1" name="new_password1" autocomplete="new-password" required autofocus;
                    label for="new_password2" { "Confirm password" }
                    input type="password" id="new_password2" name="new_password2" autocomplete="new-password" required;
                    button type="submit" { "Set password" }
                }
            };
            csrf.set_cookie(
                page::html(200, layout("Set a new password", content)),
                is_secure(api, request),
            )
        }
        Ok(None) => invalid_link(),
        Err(e) => internal(&e),
    }
}

fn set_password(api: &Api, request: &Request, token: &str, log: &mut LogContext) -> Response {
    let form = match Form::from_body(request) {
        Ok(form) => form,
        Err(refusal) => return refusal.page(),
    };
    if let Err(refusal) = Csrf::check(request, &form) {
        return refusal.page();
    }
    let (user, realm) = match reset::holder(&api.store, token, clock::now()) {
        Ok(Some(holder)) => holder,
        Ok(None) => return invalid_link(),
        Err(e) => return internal(&e),
    };
    log.user_id = Some(user.id);
    let new_password = form.text("new_password1");
    if new_password != form.text("new_password2") {
        return link_form(
            api,
            request,
            token,
            Some("The two password fields didn't match."),
        );
    }
    let audit = AuditEntry {
        detail: Some("by the user, with a reset link".to_owned()),
        ..client(request, log).audit(AuditEvent::PasswordChanged, &realm, Some(user.id))
    };
    match account::set_password(&api.login(), &user, new_password, &audit) {
        Ok(()) => page::redirect(DONE_PATH.to_owned()),
        Err(Refusal::Store(e)) => internal(&e),
        Err(_) => link_form(api, request, token, Some("The password is too weak.")),
    }
}
