//! Sign-in through a realm's OpenID provider (web.md §10): the links on the sign-in page, the
//! start that sends the browser to the provider, and the return URL it comes back to. The
//! decisions are auth's (`auth::oidc_login`); what follows a provider's sign-in is rendered
//! as after a password (`web::login`).
//!
//! - `GET /accounts/login/social/oidc/NAME[?mobile_flow_otp=…]` (also `/accounts/register/…`,
//!   and without a name for the realm's only provider): the pad is checked as on the
//!   password page, the pending sign-in kept, a `SameSite=Lax` cookie binds it to this
//!   browser, and a 302 goes to the provider.
//! - `GET /complete/oidc/?state=…&code=…`: the callback; the cookie goes with it.

use maud::{Markup, html};

use crate::auth::oidc::{self as relying, RelyingParty};
use crate::auth::oidc_login::{
    self, Asked, Callback, PENDING_LIFETIME_SECONDS, Returned, StartRefusal,
};
use crate::auth::session;
use crate::auth::signin::SignIn;
use crate::clock;
use crate::http::{LogContext, Request, Response};
use crate::store::{IdentityProvider, Realm};
use crate::web::Context;
use crate::web::cookie::{self, SameSite};
use crate::web::form::Form;
use crate::web::login;
use crate::web::mobile_flow::{self, Pad};
use crate::web::page::{self, Banner, NO_REALM, Refusal};
use crate::web::paths;

/// The cookie that binds a pending sign-in to the browser that started it. `SameSite=Lax`:
/// the provider's redirect back is a top-level navigation from another site.
const COOKIE: &str = "oidc_signin";
/// The start's query field that asks for a re-confirmation of the signed-in user.
const RECONFIRM: &str = "reconfirm";

const REFUSED: &str = "The identity provider's answer could not be accepted (an unverified email \
                       address, or an answer that failed its checks). Please try again.";

const NO_PROVIDER: Refusal = Refusal {
    status: 404,
    message: "This organization has no such identity provider.",
};

/// A "Sign in with …" link per provider, keeping the app's pad: plain links, since the
/// pages' `form-action` would stop a form's redirect to the provider (web.md §10.1).
pub fn links(providers: &[IdentityProvider], pad: Option<&Pad>) -> Markup {
    let query = pad.map(|pad| format!("?{}={}", mobile_flow::FIELD, pad.as_hex()));
    provider_links(
        providers,
        "Sign in with ",
        query.as_deref().unwrap_or_default(),
    )
}

/// A link per provider to sign in again, re-confirming the signed-in user (web.md §10.5).
pub fn reconfirm_links(providers: &[IdentityProvider]) -> Markup {
    provider_links(providers, "Sign in again with ", &format!("?{RECONFIRM}=1"))
}

fn provider_links(providers: &[IdentityProvider], words: &str, query: &str) -> Markup {
    html! {
        @for provider in providers {
            a.button href={ (paths::oidc_login(&provider.name)) (query) } {
                (words) (provider.display_name)
            }
        }
    }
}

/// Answers the start, `name` being the provider's (or `None` for the realm's only one).
pub fn start(
    ctx: &Context<'_>,
    rp: &RelyingParty,
    request: &Request,
    log: &mut LogContext,
    name: Option<&str>,
) -> Response {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return page::method_not_allowed(false);
    }
    let answered = (|| {
        let query = Form::from_query(request)?;
        let pad = Pad::of(&query)?;
        let (realm, realm_url) = ctx.realm(request, log)?.ok_or(NO_REALM)?;
        let return_url = format!("{realm_url}{}", paths::OIDC_CALLBACK);
        // A re-confirmation is of the user signed in on this browser (web.md §10.5).
        let reconfirm = match (query.get(RECONFIRM), cookie::get(request, session::COOKIE)) {
            (Some(_), Some(id)) => session::current(ctx.store, id, clock::now(), ctx.sessions)?
                .filter(|(_, session_realm)| session_realm.id == realm.id)
                .map(|(user, _)| user.id),
            _ => None,
        };
        let asked = Asked {
            name,
            return_url: &return_url,
            pad: pad.as_ref().map(Pad::as_hex),
            reconfirm,
            address: ctx.client.address,
        };
        let started = oidc_login::start(ctx.store, rp, &realm, &asked)?;
        Ok(match started {
            Ok(started) => page::redirect(started.url).header(
                "Set-Cookie",
                cookie::set(
                    COOKIE,
                    &started.browser_token,
                    Some(PENDING_LIFETIME_SECONDS as u64),
                    SameSite::Lax,
                    cookie::is_secure(&realm_url),
                ),
            ),
            Err(StartRefusal::NoProvider) => NO_PROVIDER.page(),
            Err(StartRefusal::TooMany(retry_after)) => {
                log.failure = Some("oidc_starts");
                page::plain(429, &page::try_again(retry_after))
            }
            Err(StartRefusal::Provider(error)) => {
                log.failure = Some(error.reason());
                log::warn!(
                    "realm {:?}: identity provider: {error} ({})",
                    realm.subdomain,
                    error.reason()
                );
                let name = name.unwrap_or_default();
                unavailable(&realm, &realm_url, name, pad.as_ref(), &error)
            }
        })
    })();
    answered.unwrap_or_else(Refusal::page)
}

/// Answers the return URL.
pub fn callback(
    ctx: &Context<'_>,
    rp: &RelyingParty,
    request: &Request,
    log: &mut LogContext,
) -> Response {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return page::method_not_allowed(false);
    }
    let answered = (|| {
        let query = Form::from_query(request)?;
        let (realm, realm_url) = ctx.realm(request, log)?.ok_or(NO_REALM)?;
        let return_url = format!("{realm_url}{}", paths::OIDC_CALLBACK);
        let signin = SignIn {
            login: &ctx.login,
            client: ctx.client,
            site: ctx.site,
        };
        let returned = Returned {
            state: query.text("state"),
            code: query.get("code").filter(|_| query.get("error").is_none()),
            browser_token: cookie::get(request, COOKIE),
            return_url: &return_url,
        };
        let callback = oidc_login::callback(&signin, rp, &realm, &returned)?;
        // The binding cookie has done its work once its sign-in is taken, whatever came of it;
        // a callback without a sign-in (a tampered `state`) leaves it to the real one.
        let forget = cookie::delete(COOKIE, SameSite::Lax, cookie::is_secure(&realm_url));
        let response = match callback {
            Callback::Expired => {
                log.failure = Some("oidc_state");
                return Ok(expired(&realm, &realm_url));
            }
            Callback::Cancelled { pad, provider } => {
                log.failure = Some("oidc_cancelled");
                let pad = stored_pad(pad.as_deref())?;
                let message = "The identity provider did not sign you in.";
                failed(
                    &realm,
                    &realm_url,
                    &provider,
                    pad.as_ref(),
                    "cancelled",
                    message,
                )
            }
            Callback::Returned {
                step,
                pad,
                provider,
                error,
            } => {
                log.user_id = step.user_id;
                log.failure = step.failure();
                let pad = stored_pad(pad.as_deref())?;
                match (error, step.outcome) {
                    (Some(error), _) => {
                        log::warn!(
                            "realm {:?}: identity provider {}: {error} ({})",
                            realm.subdomain,
                            provider.name,
                            error.reason()
                        );
                        if error.is_unavailable() {
                            unavailable(&realm, &realm_url, &provider.name, pad.as_ref(), &error)
                        } else {
                            failed(
                                &realm,
                                &realm_url,
                                &provider,
                                pad.as_ref(),
                                "failed",
                                REFUSED,
                            )
                        }
                    }
                    (None, outcome) if no_account(&outcome) => {
                        no_account_page(&realm, &realm_url, pad.as_ref())
                    }
                    (None, outcome) => login::after_provider(
                        ctx,
                        request,
                        &realm,
                        &realm_url,
                        pad.as_ref(),
                        outcome,
                    )?,
                }
            }
        };
        Ok(response.header("Set-Cookie", forget))
    })();
    answered.unwrap_or_else(Refusal::page)
}

/// The pad kept with the pending sign-in, checked again as it was at the start.
fn stored_pad(hex: Option<&str>) -> Result<Option<Pad>, Refusal> {
    Pad::from_fields(hex, None)
}

/// Whether the provider vouched for an address this organization has no account for.
fn no_account(outcome: &crate::auth::signin::Outcome) -> bool {
    use crate::auth::login::LoginRefusal;
    use crate::auth::signin::{Denial, Outcome};
    matches!(
        outcome,
        Outcome::Denied(Denial::Refused(
            LoginRefusal::UnknownUser | LoginRefusal::OtherRealm
        ))
    )
}

/// A page of the realm's with a sentence and a way back to the sign-in (keeping the pad).
fn message_page(
    status: u16,
    realm: &Realm,
    realm_url: &str,
    title: &str,
    message: &str,
    pad: Option<&Pad>,
) -> Response {
    let back = match pad {
        Some(pad) => format!("{}?{}={}", paths::LOGIN, mobile_flow::FIELD, pad.as_hex()),
        None => paths::LOGIN.to_owned(),
    };
    page::html(
        status,
        page::layout(
            Some(Banner::new(realm, realm_url)),
            title,
            html! {
                p.error { (message) }
                a.back href=(back) { "Back to the sign-in" }
            },
        ),
    )
}

fn unavailable(
    realm: &Realm,
    realm_url: &str,
    name: &str,
    pad: Option<&Pad>,
    error: &relying::Error,
) -> Response {
    let message = if matches!(error, relying::Error::Busy) {
        "Too many sign-ins are waiting for the identity provider. Please try again in a moment."
    } else {
        "The identity provider could not be reached. Please try again later, or ask your \
         administrator."
    };
    let title = if name.is_empty() {
        "Sign-in unavailable".to_owned()
    } else {
        format!("Sign-in with {name} unavailable")
    };
    message_page(503, realm, realm_url, &title, message, pad)
}

/// The provider's sign-in did not end in an identity: `what` went wrong, and why.
fn failed(
    realm: &Realm,
    realm_url: &str,
    provider: &IdentityProvider,
    pad: Option<&Pad>,
    what: &str,
    message: &str,
) -> Response {
    let title = format!("Sign-in with {} {what}", provider.display_name);
    message_page(400, realm, realm_url, &title, message, pad)
}

fn expired(realm: &Realm, realm_url: &str) -> Response {
    let message = "This sign-in is unknown, was used already, took too long, or was started in \
                   another browser. Please start again.";
    message_page(400, realm, realm_url, "Sign-in expired", message, None)
}

fn no_account_page(realm: &Realm, realm_url: &str, pad: Option<&Pad>) -> Response {
    let message = "This organization has no account for that address. Ask an administrator \
                   to add you, then sign in again.";
    message_page(403, realm, realm_url, "No account", message, pad)
}
