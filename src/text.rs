//! Text that reaches an operator's terminal or log. Control characters: names come from the
//! CLI, imports and LDAP; a newline or an escape sequence in one must not forge a table row or
//! drive the terminal, so input refuses them and output escapes whatever is already stored.
//! Secrets: a URL an error names is shown without the parts that may hold a password.

use std::borrow::Cow;

/// The first control character of `text`, if any.
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// `text` with each control character written as a Rust escape (`\n`, `\u{1b}`).
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if first_control(text).is_none() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `text` without its control characters, for names taken from a directory as they are.
pub fn strip_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// `url` as a message may show it: without its user part (`user:password@`), its query and
/// its fragment, any of which may hold a password (issue 20: an SMTP URL's error repeated it).
/// Everything up to the last `@` goes, so a password holding `?` or `#` (which a mistyped URL
/// does not percent-encode) never shows; when such a character precedes that `@`, the `@` may
/// be a query's, so nothing after it shows either.
pub fn url_without_secrets(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (hidden, rest) = match rest.rsplit_once('@') {
        Some((before, _)) if before.contains(['?', '#']) => return format!("{scheme}…"),
        Some((_, after)) => ("…@", after),
        None => ("", rest),
    };
    let (rest, dropped) = match rest.find(['?', '#']) {
        Some(at) => (&rest[..at], "?…"),
        None => (rest, ""),
    };
    format!("{scheme}{hidden}{rest}{dropped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_found_escaped_and_stripped() {
        assert_eq!(first_control("King Hamlet"), None);
        assert_eq!(first_control("a\u{7f}b"), Some('\u{7f}'));
        assert!(matches!(escape_controls("Iago"), Cow::Borrowed("Iago")));
        assert_eq!(
            escape_controls("x\n\r\t\u{1b}[31my\u{85}é"),
            "x\\n\\r\\t\\u{1b}[31my\\u{85}é"
        );
        assert_eq!(strip_controls("Ot\u{1b}[2Jhello\n"), "Ot[2Jhello");
    }

    #[test]
    fn urls_lose_their_user_part_and_query() {
        for (url, shown) in [
            (
                "smtp://user:pw@mail.example.com:587",
                "smtp://…@mail.example.com:587",
            ),
            (
                "smtp://mail.example.com?tls=none&password=pw",
                "smtp://mail.example.com?…",
            ),
            ("postgres://u:pw@[::1/db", "postgres://…@[::1/db"),
            ("u:pw@host/p@th#pw", "…@th?…"),
            // A password holding `?` or `#`, not percent-encoded.
            ("smtp://user:pw?rd@mail.example.com", "smtp://…"),
            ("postgres://u:p#w@db.example.com/x", "postgres://…"),
            // An `@` in the query: what follows it may be a password too.
            ("smtp://mail.example.com?password=a@secret", "smtp://…"),
            ("ldaps://ldap.example.com", "ldaps://ldap.example.com"),
        ] {
            assert_eq!(url_without_secrets(url), shown, "{url}");
        }
    }
}
