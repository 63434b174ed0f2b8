//! What every page shares: the layout, the headers that keep it out of caches, frames and
//! referrers (web.md §3), plain pages for errors, and redirects.

use std::sync::LazyLock;

use base64ct::{Base64, Encoding};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

use crate::auth::policy;
use crate::http::{HTML, LogContext, Response};
use crate::store::{Realm, StoreError};

/// The one stylesheet, inline so a page is a single request; the policy admits it by hash,
/// and no script at all.
const STYLE: &str = "
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
main{max-width:28rem;margin:0 auto;padding:1.25rem 1rem 2rem}
header{display:flex;align-items:center;gap:.6rem;margin:0 0 1.25rem;font-weight:600;color:#57606a}
header img{width:32px;height:32px;border-radius:6px}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1.15rem;margin:0 0 .5rem}
p{margin:.5rem 0 1rem}
form{margin:0 0 1.5rem}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:1rem;margin:0 0 1.25rem}
section form{margin:0 0 1rem}
section>:last-child{margin-bottom:0}
.hint{font-size:.9rem;color:#57606a;margin:.35rem 0 0}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text],input[type=email],input[type=password]{display:block;width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #8c959f;border-radius:6px;background:#fff}
input:focus{outline:2px solid #0969da;outline-offset:1px}
button,a.button{display:block;width:100%;margin-top:1.25rem;font:inherit;font-weight:600;text-align:center;text-decoration:none;padding:.7rem;border:1px solid #1f6feb;border-radius:6px;color:#fff;background:#1f6feb}
button.secondary{margin-top:.6rem;color:#0969da;background:#fff}
a.button.danger{color:#cf222e;background:#fff;border-color:#cf222e}
button.danger{background:#cf222e;border-color:#cf222e}
a.back{display:block;text-align:center;margin-top:1rem}
.error{padding:.6rem .8rem;border:1px solid #cf222e;border-radius:6px;background:#ffebe9;color:#82071e}
.status{padding:.6rem .8rem;border:1px solid #1a7f37;border-radius:6px;background:#dafbe1;color:#116329}
.qr{display:block;margin:1rem auto;width:220px;max-width:100%;background:#fff}
.qr svg{display:block;width:100%;height:auto}
code{overflow-wrap:anywhere;font-size:.9rem}
";

/// No script may run, styles only from the stylesheet above, forms post only here (and
/// may end in the app's `zulip://` redirect), and no other site may frame a page.
static CONTENT_SECURITY_POLICY: LazyLock<String> = LazyLock::new(|| {
    let hash = Base64::encode_string(&Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self' zulip:; frame-ancestors 'none'; base-uri 'none'"
    )
});

/// The policy of a page with passkey buttons (web.md §9): the above, and the one script the
/// binary serves from its own path, which may fetch a ceremony's options from this origin.
static SCRIPT_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}; script-src 'self'; connect-src 'self'",
        CONTENT_SECURITY_POLICY.as_str()
    )
});

/// `response` (a page) allowed to run our own scripts under [`SCRIPT_POLICY`].
pub fn with_script(mut response: Response) -> Response {
    for (name, value) in &mut response.headers {
        if *name == "Content-Security-Policy" {
            value.clone_from(&SCRIPT_POLICY);
        }
    }
    response
}

/// Whose page it is, above every realm's page (web.md §3): the realm's name, and its icon
/// when the pages' policy lets it load, that is when this origin serves it (`img-src 'self'`).
#[derive(Debug, Clone, Copy)]
pub struct Banner<'a> {
    name: &'a str,
    icon: Option<&'a str>,
}

impl<'a> Banner<'a> {
    pub fn new(realm: &'a Realm, realm_url: &str) -> Banner<'a> {
        Banner {
            name: &realm.name,
            icon: (realm.icon_url.as_deref()).filter(|icon| of_this_origin(icon, realm_url)),
        }
    }
}

/// A `/`-relative URL, or an absolute one below the realm's URL.
fn of_this_origin(url: &str, realm_url: &str) -> bool {
    let path = url.strip_prefix(realm_url).unwrap_or(url);
    path.starts_with('/') && !path.starts_with("//")
}

/// A whole page: `title` in the tab and as the heading, under the realm's banner if the
/// page is a realm's, and `content` under it.
pub fn layout(banner: Option<Banner<'_>>, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    @if let Some(banner) = banner {
                        header {
                            @if let Some(icon) = banner.icon {
                                img src=(icon) alt="" width="32" height="32";
                            }
                            span { (banner.name) }
                        }
                    }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// A rendered page with the headers every page carries.
pub fn html(status: u16, markup: Markup) -> Response {
    secured(Response {
        status,
        content_type: Some(HTML),
        headers: Vec::new(),
        body: markup.into_string().into_bytes(),
        log: LogContext::default(),
    })
}

/// A page of one sentence, for errors: a bad request, a CSRF refusal, a missing realm.
pub fn plain(status: u16, message: &str) -> Response {
    let title = match status {
        400 => "Bad request",
        403 => "Forbidden",
        404 => "Not found",
        405 => "Method not allowed",
        413 => "Too large",
        429 => "Too many attempts",
        503 => "Unavailable",
        _ => "Error",
    };
    html(status, layout(None, title, html! { p { (message) } }))
}

/// A request refused with a plain page: small, so handlers can pass it up with `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: &'static str,
}

/// A page asked of a host that is no organization's.
pub const NO_REALM: Refusal = Refusal {
    status: 404,
    message: "There is no organization at this address.",
};

impl Refusal {
    pub fn page(self) -> Response {
        plain(self.status, self.message)
    }
}

/// The store failed: logged here; the person is asked to come back (wire.md §3.6).
impl From<StoreError> for Refusal {
    fn from(err: StoreError) -> Refusal {
        log::error!("store error: {err}");
        Refusal {
            status: 503,
            message: "The service is unavailable right now. Please try again in a moment.",
        }
    }
}

/// `302 Found` to `location`.
pub fn redirect(location: String) -> Response {
    moved(302, location)
}

/// `303 See Other` to `location`: a browser that opens `/` belongs on the sign-in (wire.md §3.5).
pub fn see_other(location: String) -> Response {
    moved(303, location)
}

fn moved(status: u16, location: String) -> Response {
    secured(Response {
        status,
        content_type: None,
        headers: vec![("Location", location)],
        body: Vec::new(),
        log: LogContext::default(),
    })
}

/// The 405 of a page that answers GET (and HEAD), and POST if it `posts`.
pub fn method_not_allowed(posts: bool) -> Response {
    let (message, allow) = if posts {
        ("This page answers GET and POST only.", "GET, HEAD, POST")
    } else {
        ("This page answers GET only.", "GET, HEAD")
    };
    plain(405, message).header("Allow", allow)
}

/// `response` with the headers every page carries (the file downloads too).
pub fn secured(response: Response) -> Response {
    response
        .header("Cache-Control", "no-store")
        .header("X-Frame-Options", "DENY")
        .header("Referrer-Policy", "no-referrer")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY.as_str())
}

/// The words of a refusal for too many attempts, with when to try again (web.md §3).
pub fn try_again(retry_after: f64) -> String {
    let seconds = retry_after.max(1.0).ceil() as u64;
    let (count, unit) = match seconds {
        0..60 => (seconds, "second"),
        60..7200 => (seconds.div_ceil(60), "minute"),
        _ => (seconds.div_ceil(3600), "hour"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("Too many attempts. Please try again in {count} {unit}{plural}.")
}

/// The two fields of a new password, with Django's names, over the rule in force.
pub fn new_password_fields() -> Markup {
    html! {
        label for="new_password1" { "New password" }
        input type="password" id="new_password1" name="new_password1" autocomplete="new-password"
            aria-describedby="password_rules" required;
        p.hint #password_rules { (policy::rules()) }
        label for="new_password2" { "Confirm new password" }
        input type="password" id="new_password2" name="new_password2" autocomplete="new-password"
            required;
    }
}

/// A labelled password field that must be filled.
pub fn password_field(id: &str, name: &str, label: &str, autocomplete: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        input type="password" id=(id) name=(name) autocomplete=(autocomplete) required;
    }
}

/// A hidden field.
pub fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// The message a form shows after a failed attempt, read out by screen readers.
pub fn error_message(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p class="error" role="alert" { (message) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_carries_the_security_headers() {
        for response in [plain(400, "x"), redirect("zulip://login".into())] {
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(header("Cache-Control"), Some("no-store"));
            assert_eq!(header("X-Frame-Options"), Some("DENY"));
            assert_eq!(header("Referrer-Policy"), Some("no-referrer"));
            let csp = header("Content-Security-Policy").unwrap();
            assert!(
                csp.starts_with("default-src 'none'; style-src 'sha256-"),
                "{csp}"
            );
            assert!(!csp.contains("unsafe-inline"));
            // Chromium holds a form's redirect to the policy: the app's scheme must pass.
            assert!(csp.contains("form-action 'self' zulip:;"), "{csp}");
        }
    }

    #[test]
    fn try_again_rounds_up_to_a_unit_a_person_reads() {
        assert_eq!(
            try_again(0.2),
            "Too many attempts. Please try again in 1 second."
        );
        assert_eq!(
            try_again(59.5),
            "Too many attempts. Please try again in 1 minute."
        );
        assert_eq!(
            try_again(61.0),
            "Too many attempts. Please try again in 2 minutes."
        );
        assert_eq!(
            try_again(7200.0),
            "Too many attempts. Please try again in 2 hours."
        );
    }

    #[test]
    fn the_banner_shows_only_an_icon_of_this_origin() {
        let url = "https://lear.example.com";
        for (icon, shown) in [
            ("/static/lear.png", true),
            ("https://lear.example.com/i.png", true),
            ("//cdn.example.net/i.png", false),
            ("https://lear.example.com//cdn.example.net/i.png", false),
            ("https://lear.example.com.evil.net/i.png", false),
            ("https://cdn.example.net/i.png", false),
        ] {
            assert_eq!(of_this_origin(icon, url), shown, "{icon}");
        }
    }

    #[test]
    fn values_are_escaped() {
        let page = String::from_utf8(plain(400, "<script>alert(1)</script>").body).unwrap();
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let field = hidden("a\"b", "\"><script>").into_string();
        assert_eq!(
            field,
            "<input type=\"hidden\" name=\"a&quot;b\" value=\"&quot;&gt;&lt;script&gt;\">"
        );
    }
}
