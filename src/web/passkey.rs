//! Passkeys on the pages (web.md §9). So far the one script those pages load, from a path of
//! its own under `script-src 'self'; connect-src 'self'`; the pages without passkeys keep
//! their policy without script.

/// `static/passkey.js`, served as `text/javascript`.
pub const SCRIPT: &str = include_str!("../../static/passkey.js");

#[cfg(test)]
mod tests {
    use super::*;

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
