//! Reading the `Cookie` header and writing `Set-Cookie`: every cookie is HttpOnly and
//! SameSite, and Secure when the realm's URL is https (web.md §3).

use crate::http::Request;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites too: for cookies a page needs at its
    /// first display, whichever link led there.
    Lax,
    /// Never sent from another site: for cookies that prove who is signed in.
    Strict,
}

/// The value of cookie `name` in the request, if present (the first one, as browsers send
/// the most specific path first).
pub fn get<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .cookie
        .as_deref()?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// One `Set-Cookie` header value for the whole site (`Path=/`). `max_age` `None` is a
/// browser-session cookie; `Some(0)` deletes it. `value` must be a cookie-safe token
/// (hex, base64url): callers only store values they generated.
pub fn set(
    name: &str,
    value: &str,
    max_age: Option<u64>,
    same_site: SameSite,
    secure: bool,
) -> String {
    debug_assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "cookie values are tokens"
    );
    let mut header = format!("{name}={value}; Path=/; HttpOnly");
    if let Some(seconds) = max_age {
        header.push_str(&format!("; Max-Age={seconds}"));
    }
    header.push_str(match same_site {
        SameSite::Lax => "; SameSite=Lax",
        SameSite::Strict => "; SameSite=Strict",
    });
    if secure {
        header.push_str("; Secure");
    }
    header
}

/// A `Set-Cookie` value that removes cookie `name`.
pub fn delete(name: &str, same_site: SameSite, secure: bool) -> String {
    set(name, "", Some(0), same_site, secure)
}

/// Whether cookies for this realm URL must be Secure.
pub fn is_secure(realm_url: &str) -> bool {
    realm_url
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_cookie_among_several() {
        let request = Request {
            cookie: Some("a=1; csrftoken=abc ; sessionid=\"x\"".into()),
            ..Request::default()
        };
        assert_eq!(get(&request, "csrftoken"), Some("abc"));
        assert_eq!(get(&request, "sessionid"), Some("x"));
        assert_eq!(get(&request, "csrf"), None);
        assert_eq!(get(&Request::default(), "a"), None);
    }

    #[test]
    fn attributes() {
        assert_eq!(
            set("csrftoken", "ab", Some(60), SameSite::Lax, false),
            "csrftoken=ab; Path=/; HttpOnly; Max-Age=60; SameSite=Lax"
        );
        assert_eq!(
            delete("sessionid", SameSite::Strict, true),
            "sessionid=; Path=/; HttpOnly; Max-Age=0; SameSite=Strict; Secure"
        );
        assert!(is_secure("HTTPS://chat.example.com"));
        assert!(!is_secure("http://chat.example.com"));
    }
}
