//! Host names as the server meets them: realm subdomains, email domains and Host headers all
//! check their labels here.

/// One DNS label: 1 to 63 ASCII letters, digits or hyphens, not starting or ending with a
/// hyphen. Case is the caller's concern.
pub fn is_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for good in ["a", "lear", "x-1", "A9", &"a".repeat(63)] {
            assert!(is_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a.b", "a_b", "é", &"a".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }
}
