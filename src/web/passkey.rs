//! Passkeys on the pages (web.md §9): the one script those pages load, from a path of its
//! own under `script-src 'self'; connect-src 'self'` (the pages without passkeys keep their
//! policy without script), the ceremony's options it fetches, the buttons, and the account
//! page's section. The decisions are auth's (`auth::passkeys`, `auth::signin`).

use maud::{Markup, html};

use crate::auth::passkey::{Error, StoredPasskey, Unavailable};
use crate::auth::passkeys::Answer;
use crate::clock;
use crate::http::{JSON, LogContext, Request, Response};
use crate::text;
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::page::{self, hidden};
use crate::web::paths;

/// `static/passkey.js`, served as `text/javascript`.
pub const SCRIPT: &str = include_str!("../../static/passkey.js");

/// The field the script adds when it asks for a ceremony's options.
const OPTIONS_FIELD: &str = "passkey_options";
/// The fields the script submits the browser's answer in.
const CEREMONY_FIELD: &str = "ceremony";
const CREDENTIAL_FIELD: &str = "credential";
/// The field of a passkey's id on the account page.
pub const ID_FIELD: &str = "passkey_id";

/// A refused passkey at the sign-in, which tells nothing of whose it is.
pub const NOT_ACCEPTED: &str = "That passkey was not accepted. Please try again.";

/// `GET /static/passkey.js`.
pub fn serve_script(request: &Request) -> Response {
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return page::method_not_allowed(false);
    }
    page::secured(Response {
        status: 200,
        content_type: Some("text/javascript; charset=utf-8"),
        headers: Vec::new(),
        body: SCRIPT.as_bytes().to_vec(),
        log: LogContext::default(),
    })
}

/// Whether the script asks for a ceremony's options.
pub fn wants_options(form: &Form) -> bool {
    form.get(OPTIONS_FIELD).is_some()
}

/// The browser's answer to a ceremony, if the form carries one.
pub fn answer(form: &Form) -> Option<Answer<'_>> {
    Some(Answer {
        ceremony: form.get(CEREMONY_FIELD)?,
        credential: form.get(CREDENTIAL_FIELD)?,
    })
}

/// A refused request for options, shaped as the API's errors.
#[derive(serde::Serialize)]
struct Refused<'a> {
    result: &'static str,
    msg: &'a str,
}

/// The answer to the script's request for options: the ceremony's options, or a refusal
/// whose `msg` the script shows.
pub fn options(options: Result<String, &str>) -> Response {
    let response = match options {
        Ok(options) => Response {
            status: 200,
            content_type: Some(JSON),
            headers: Vec::new(),
            body: options.into_bytes(),
            log: LogContext::default(),
        },
        Err(msg) => Response::json(
            400,
            &Refused {
                result: "error",
                msg,
            },
        ),
    };
    page::secured(response)
}

/// [`options`] of a ceremony that may not have begun: why not, in words.
pub fn options_or_why(started: Result<String, Error>) -> Response {
    options(started.map_err(message))
}

/// The words for a failed ceremony on a page.
pub fn message(error: Error) -> &'static str {
    match error {
        Error::NoCeremony | Error::Expired => {
            "The passkey request took too long or was used already. Please try again."
        }
        Error::AlreadyRegistered => "That passkey is registered already.",
        Error::NotVerified => {
            "Your authenticator did not verify you (with a PIN or biometrics). Please try again."
        }
        Error::Internal | Error::NoPasskeys => {
            "The passkey could not be used. Please try again later."
        }
        Error::TooManyCeremonies => {
            "Too many passkey requests from your address. Please try again in a few minutes."
        }
        _ => NOT_ACCEPTED,
    }
}

/// A button the script shows where WebAuthn exists: `create` registers a passkey, `get`
/// asks for one. Hidden without the script.
pub fn button(kind: &str, label: &str) -> Markup {
    html! { button type="button" hidden data-passkey=(kind) { (label) } }
}

/// The script's tag: at the end of a page that has buttons.
pub fn script() -> Markup {
    html! { script src=(paths::PASSKEY_SCRIPT) defer {} }
}

/// The account page's section (web.md §7, §9): the user's passkeys with when each was
/// added and last used and a link to remove it, and the form that adds one; or why there
/// are none. `action` gives a form's action in the section; `reconfirm` is the field that
/// re-confirms the change, as in the page's other forms (web.md §10.5: none for a user without
/// a password who signed in just now).
pub fn account_section(
    csrf: &Csrf,
    offered: Result<(), Unavailable>,
    passkeys: &[StoredPasskey],
    action: impl Fn(&str) -> String,
    reconfirm: Markup,
) -> Markup {
    let when = |t: f64| clock::iso8601(t);
    html! {
        @if passkeys.is_empty() {
            p { "A passkey signs you in with your phone, your computer or a security key, without a password or a code." }
        } @else {
            ul {
                @for passkey in passkeys {
                    li {
                        b { (passkey.record.name) } ", added " (when(passkey.record.created))
                        @match passkey.record.last_used {
                            Some(used) => { ", last used " (when(used)) }
                            None => { ", never used" }
                        }
                        " "
                        a href=(format!("{}?{ID_FIELD}={}", paths::PASSKEY_REMOVE, passkey.id)) { "Remove" }
                    }
                }
            }
        }
        @match offered {
            Err(unavailable) => p { (unavailable.message()) },
            Ok(()) => {
                form method="post" action=(action(paths::PASSKEY_ADD)) {
                    (hidden(csrf::FIELD, csrf.token()))
                    label for="passkey_name" { "Passkey name" }
                    input type="text" id="passkey_name" name="passkey_name" maxlength=(text::MAX_NAME)
                        placeholder="My phone";
                    (reconfirm)
                    (button("create", "Add a passkey"))
                    noscript { p.hint { "Adding a passkey needs JavaScript." } }
                }
                (script())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adding form asks for what the page's other forms ask for: the password, or for a
    /// user without one nothing more (review: it asked every user for a password).
    #[test]
    fn the_adding_form_asks_for_the_given_reconfirmation() {
        let csrf = Csrf::for_page(&crate::http::Request::default());
        let section = |reconfirm| {
            account_section(&csrf, Ok(()), &[], |path| path.to_owned(), reconfirm).into_string()
        };
        let without = section(html! {});
        assert!(without.contains("Add a passkey"), "{without}");
        assert!(!without.contains("type=\"password\""), "{without}");
        let with = section(crate::web::page::password_field(
            "p", "password", "Password", "x",
        ));
        assert!(with.contains("type=\"password\""), "{with}");
    }

    #[test]
    fn the_script_needs_nothing_a_strict_policy_refuses() {
        // No eval, no strings run as code, no markup written: `script-src 'self'` without
        // 'unsafe-eval', and nothing a value could inject.
        for construct in [
            "eval(",
            "Function(",
            "innerHTML",
            "outerHTML",
            "document.write",
        ] {
            assert!(!SCRIPT.contains(construct), "{construct}");
        }
        // It talks only to its own page's path, and hides the buttons without WebAuthn.
        assert!(SCRIPT.contains("fetch(form.action,"));
        assert!(
            SCRIPT.contains("if (!window.PublicKeyCredential || !navigator.credentials) return;")
        );
    }
}
