//! Text that reaches an operator's terminal or log. Control characters: names come from the
//! CLI, imports and LDAP; a newline or an escape sequence in one must not forge a table row or
//! drive the terminal, so input refuses them and output escapes whatever is already stored.
//! Names users and providers give (passkeys, device keys, full names) lose every invisible
//! character too, so one cannot pass for another in a list (web.md §9).
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

/// Whether `c` shows nothing of its own yet can change what a name looks like: a control
/// character, a format character (general category Cf: U+202E RIGHT-TO-LEFT OVERRIDE turns
/// the rest around, U+200B ZERO WIDTH SPACE hides in a word), a line or paragraph separator,
/// a private-use or unassigned code point, or one of the letters Unicode draws as blank
/// (the Hangul fillers) or the combining grapheme joiner.
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::PrivateUse
            | G::Unassigned
    ) || matches!(
        c,
        '\u{34f}' | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
    )
}

/// `text` without its invisible characters ([`is_invisible`]), for names taken from a
/// directory or a provider as they are.
pub fn strip_invisibles(text: &str) -> String {
    text.chars().filter(|&c| !is_invisible(c)).collect()
}

/// The longest name a user gives a passkey or a device key, in characters: the forms'
/// `maxlength`, held on the server too.
pub const MAX_NAME: usize = 100;

/// A name or a label as the user typed it, fit to store and list: without invisible
/// characters, at most `max` characters (not bytes), trimmed; `None` if nothing is left.
/// The one cleaning of passkey names, device key names and stored User-Agents.
pub fn stored_name(text: &str, max: usize) -> Option<String> {
    let clean: String = text
        .chars()
        .filter(|&c| !is_invisible(c))
        .take(max)
        .collect();
    Some(clean.trim().to_owned()).filter(|name| !name.is_empty())
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
        assert_eq!(strip_invisibles("Ot\u{1b}[2Jhello\n"), "Ot[2Jhello");
    }

    #[test]
    fn invisible_characters_are_dropped_from_names() {
        // The red team's name: it reads "Work security-key" in a list.
        assert_eq!(
            strip_invisibles("Work \u{202e}yek-ytiruces\u{202c}\u{200b}"),
            "Work yek-ytiruces"
        );
        for invisible in [
            '\u{200b}', '\u{200e}', '\u{2066}', '\u{feff}', '\u{ad}', '\u{2028}', '\u{e000}',
            '\u{3164}', '\u{34f}', '\u{7f}',
        ] {
            assert_eq!(
                strip_invisibles(&format!("a{invisible}b")),
                "ab",
                "{invisible:?}"
            );
        }
        // Letters, marks and symbols of every script stay.
        assert_eq!(strip_invisibles("Jérôme 李 Ωμέγα 🔑"), "Jérôme 李 Ωμέγα 🔑");
    }

    #[test]
    fn stored_names_are_clean_trimmed_and_capped_in_characters() {
        assert_eq!(stored_name(" a\u{7}b\r\n ", 100).as_deref(), Some("ab"));
        assert_eq!(stored_name("\u{200b}\u{202e} \n", 100), None);
        assert_eq!(stored_name(&"é".repeat(150), 100), Some("é".repeat(100)));
        assert_eq!(
            stored_name(&"x".repeat(999), 256).map(|n| n.len()),
            Some(256)
        );
        // Invisibles do not count toward the cap.
        assert_eq!(
            stored_name(&format!("{}ab", "\u{200b}".repeat(100)), 2).as_deref(),
            Some("ab")
        );
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
