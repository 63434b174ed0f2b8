//! Email syntax as Django's `validate_email` judges it (wire.md §5.6), since clients and Zulip's
//! tests expect exactly its verdicts. Internationalised domains are rejected (a deviation).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest address Django accepts.
const MAX_LENGTH: usize = 320;

pub fn is_valid(value: &str) -> bool {
    if value.len() > MAX_LENGTH {
        return false;
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    (is_dot_atom(local) || is_quoted_string(local))
        && (domain == "localhost" || is_domain_name(domain) || is_address_literal(domain))
}

fn is_atom_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

fn is_dot_atom(local: &str) -> bool {
    local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atom_char))
}

/// `"…"` of the characters Django's regex allows, with backslash escapes.
fn is_quoted_string(local: &str) -> bool {
    let Some(inner) = local
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|_| local.len() >= 2)
    else {
        return false;
    };
    let plain = |b: u8| matches!(b, 0x01..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | b'!' | b'#'..=b'[' | b']'..=0x7f);
    let escapable = |b: u8| matches!(b, 0x01..=0x09 | 0x0b | 0x0c | 0x0e..=0x7f);
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        let ok = if b == b'\\' {
            bytes.next().is_some_and(escapable)
        } else {
            plain(b)
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Two or more labels; the last is 2–63 of `[A-Za-z0-9-]` not ending in a hyphen.
fn is_domain_name(domain: &str) -> bool {
    let Some((labels, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    let tld_ok = (2..=63).contains(&tld.len())
        && tld.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !tld.ends_with('-');
    tld_ok && labels.split('.').all(crate::dns::is_label)
}

fn is_address_literal(domain: &str) -> bool {
    let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && (inner.parse::<Ipv4Addr>().is_ok() || inner.parse::<Ipv6Addr>().is_ok())
}

/// The Gravatar image of an address, as Zulip's user objects give a person without an
/// uploaded avatar (wire.md §17): the MD5 of the lowercased address, with an identicon as
/// the fallback.
pub fn gravatar_url(email: &str) -> String {
    use md5::{Digest, Md5};
    let digest = Md5::digest(email.to_lowercase().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("https://secure.gravatar.com/avatar/{hex}?d=identicon&version=1")
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn spec_vectors() {
        for bad in [
            "hamlet",
            "iago@example",
            " iago@example.com",
            "iago@example.com ",
        ] {
            assert!(!is_valid(bad), "{bad:?} should be invalid");
        }
        for good in ["iago@localhost", "Iago.X+tag@Example.COM", "a@[127.0.0.1]"] {
            assert!(is_valid(good), "{good:?} should be valid");
        }
    }

    #[test]
    fn django_edge_cases() {
        assert!(is_valid("\"quoted\\ local\"@example.com"));
        assert!(is_valid("x@a.b-c.com"));
        assert!(!is_valid("a..b@example.com"));
        assert!(!is_valid(".a@example.com"));
        assert!(!is_valid("a@-example.com"));
        assert!(!is_valid("a@example.c"));
        assert!(!is_valid("a@example.com-"));
        assert!(!is_valid("a@[300.0.0.1]"));
        assert!(!is_valid("a@b@"));
        assert!(!is_valid("iago@example.com\n"));
        let long_local = "a".repeat(310);
        assert!(!is_valid(&format!("{long_local}@example.com")));
        assert!(is_valid(&format!("{}@example.com", "a".repeat(308))));
    }
}
