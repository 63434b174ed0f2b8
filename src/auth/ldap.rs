//! Password checks against an LDAP directory, as Zulip's `ZulipLDAPAuthBackend` does them:
//! bind as the service account, find the user's entry by a filter, then bind as that entry
//! with the submitted password. The Zulip email comes from an attribute or from the username
//! plus a domain.
//!
//! ldap3's synchronous connection runs its own single-threaded tokio runtime inside this
//! module; the request path stays plain threads. A whole login against the directory (the
//! connection, StartTLS, both binds and the search) shares one deadline, so a directory that
//! is down or frozen costs a login at most [`LOGIN_BUDGET`], not a thread.

#[cfg(feature = "ldap")]
use std::sync::Arc;
#[cfg(feature = "ldap")]
use std::time::{Duration, Instant};

#[cfg(feature = "ldap")]
use ldap3::{LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry, ldap_escape};

use unicode_normalization::UnicodeNormalization;

use crate::store::LdapSettings;

/// The most one login waits for the directory, all steps together.
#[cfg(feature = "ldap")]
pub const LOGIN_BUDGET: Duration = Duration::from_secs(5);
/// What LDAP answers a bind with a wrong password (RFC 4511 invalidCredentials).
#[cfg(feature = "ldap")]
const INVALID_CREDENTIALS: u32 = 49;

/// What the directory said about a username and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The password is right; this is the user's Zulip email and, if configured, full name.
    Authenticated {
        email: String,
        full_name: Option<String>,
    },
    /// No entry, or several, matches the username.
    UnknownUser,
    /// The entry exists; the password is not its password.
    WrongPassword,
    /// The directory could not be asked (down, timed out, TLS failed, bad service bind).
    Unavailable(String),
}

/// The LDAP username for what was typed: with `append_domain`, an email in that domain
/// stands for its local part, as Zulip's `django_to_ldap_username` does.
pub fn ldap_username<'a>(settings: &LdapSettings, typed: &'a str) -> &'a str {
    settings
        .append_domain
        .as_deref()
        .and_then(|domain| typed.strip_suffix(domain)?.strip_suffix('@'))
        .unwrap_or(typed)
}

/// What the directory compares of a typed username, for counting attempts (wire.md §8): the
/// LDAP username prepared roughly as LDAP's string matching prepares it (RFC 4518):
/// compatibility-normalized (NFKC), case-folded, and without the characters it ignores or
/// folds away (spaces, controls, soft hyphens, zero-width and other format characters). Two
/// spellings that the directory matches alike are one name here; dropping every space may
/// also join names the directory tells apart, which only makes them share a limit.
pub fn compared_name(settings: &LdapSettings, typed: &str) -> String {
    let prepared: String = typed
        .nfkc()
        .filter(|&c| !ignored_in_matching(c))
        .flat_map(char::to_lowercase)
        .collect();
    let domain = settings.append_domain.as_deref().map(str::to_lowercase);
    match domain.and_then(|domain| prepared.strip_suffix(domain.as_str())?.strip_suffix('@')) {
        Some(name) => name.to_owned(),
        None => prepared,
    }
}

/// Characters that RFC 4518 maps to nothing or to an insignificant space.
fn ignored_in_matching(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{06DD}' | '\u{070F}' | '\u{1806}'
            | '\u{180B}'..='\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2063}' | '\u{206A}'..='\u{206F}' | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFC}' | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}')
}

/// Whether the directory holds the password of `email`, as Zulip's `email_belongs_to_ldap`:
/// with an appended domain, the addresses in that domain; without one, Zulip searches the
/// directory by email, and here every address counts as the directory's, so that no reset
/// link or local password is ever made for an account the directory may own.
pub fn manages_email(settings: &LdapSettings, email: &str) -> bool {
    match &settings.append_domain {
        Some(domain) => email
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        None => true,
    }
}

pub fn authenticate(settings: &LdapSettings, typed: &str, password: &str) -> Outcome {
    // An empty password would be an anonymous bind, which succeeds.
    if password.is_empty() {
        return Outcome::WrongPassword;
    }
    #[cfg(feature = "ldap")]
    return try_authenticate(settings, typed, password).unwrap_or_else(|e| {
        Outcome::Unavailable(match e {
            LdapError::Timeout { .. } => {
                format!("no answer within {} s", LOGIN_BUDGET.as_secs())
            }
            e => e.to_string(),
        })
    });
    #[cfg(not(feature = "ldap"))]
    return Outcome::Unavailable(format!(
        "this zulip-auth was built without the ldap feature, so {} cannot be asked",
        settings.url()
    ));
}

#[cfg(feature = "ldap")]
fn try_authenticate(
    settings: &LdapSettings,
    typed: &str,
    password: &str,
) -> Result<Outcome, LdapError> {
    let deadline = Deadline(Instant::now() + LOGIN_BUDGET);
    let mut conn = connect(settings, &deadline)?;
    if let Some(bind_dn) = &settings.bind_dn {
        conn.with_timeout(deadline.left())
            .simple_bind(bind_dn, settings.bind_password.as_deref().unwrap_or(""))?
            .success()?;
    }
    let username = ldap_username(settings, typed);
    let filter = settings
        .user_filter()
        .replace("%(user)s", &ldap_escape(username));
    let attrs: Vec<&str> = [
        settings.email_attr.as_deref(),
        settings.full_name_attr.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (entries, _) = conn
        .with_timeout(deadline.left())
        .search(settings.user_search(), Scope::Subtree, &filter, attrs)?
        .success()?;
    let [entry] = &entries[..] else {
        // A bind as no one, refused as a known user's wrong password is: the same round trips
        // either way, so the answer's timing does not tell whether the directory knows the name.
        let nobody = format!("cn=zulip-auth-no-such-entry,{}", settings.user_search());
        let _ = conn
            .with_timeout(deadline.left())
            .simple_bind(&nobody, password);
        let _ = conn.unbind();
        return Ok(Outcome::UnknownUser);
    };
    let entry = SearchEntry::construct(entry.clone());
    let bound = conn
        .with_timeout(deadline.left())
        .simple_bind(&entry.dn, password)?;
    let _ = conn.unbind();
    if bound.rc == INVALID_CREDENTIALS {
        return Ok(Outcome::WrongPassword);
    }
    bound.success()?;
    let first = |attr: &Option<String>| {
        attr.as_ref()
            .and_then(|a| entry.attrs.get(a))
            .and_then(|values| values.first().cloned())
    };
    let email = match (&settings.email_attr, &settings.append_domain) {
        (Some(_), _) => match first(&settings.email_attr) {
            Some(email) => email,
            None => return Ok(Outcome::UnknownUser),
        },
        (None, Some(domain)) => format!("{username}@{domain}"),
        (None, None) => username.to_owned(),
    };
    Ok(Outcome::Authenticated {
        email,
        // The name reaches terminals and clients as it is; a directory's control characters must not.
        full_name: first(&settings.full_name_attr).map(|name| crate::text::strip_invisibles(&name)),
    })
}

/// When a login stops waiting for the directory.
#[cfg(feature = "ldap")]
struct Deadline(Instant);

#[cfg(feature = "ldap")]
impl Deadline {
    /// The time left for the next step; none left makes ldap3 time out at once.
    fn left(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

#[cfg(feature = "ldap")]
/// `ldaps://` as it is; `ldap://` with StartTLS when the directory offers it, or only with
/// it when `starttls_required`.
fn connect(settings: &LdapSettings, deadline: &Deadline) -> Result<LdapConn, LdapError> {
    let base = LdapConnSettings::new();
    let base = match &settings.ca_file {
        Some(path) => base.set_config(Arc::new(tls_config(path)?)),
        None => base,
    };
    let within_deadline = |base: LdapConnSettings| {
        LdapConn::with_settings(base.set_conn_timeout(deadline.left()), settings.url())
    };
    if !settings.url().starts_with("ldap://") {
        return within_deadline(base);
    }
    match within_deadline(base.clone().set_starttls(true)) {
        Ok(conn) => Ok(conn),
        Err(e) if settings.starttls_required() => Err(e),
        // A directory that did not answer StartTLS in time will not answer in plain text.
        Err(e @ LdapError::Timeout { .. }) => Err(e),
        Err(_) => within_deadline(base),
    }
}

#[cfg(feature = "ldap")]
/// Trusts only the certificates of `path` (PEM).
fn tls_config(path: &str) -> Result<rustls::ClientConfig, LdapError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let io = |e: String| LdapError::Io {
        source: std::io::Error::other(e),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| io(format!("{path}: {e}")))? {
        let cert = cert.map_err(|e| io(format!("{path}: {e}")))?;
        roots.add(cert).map_err(|e| io(format!("{path}: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(append_domain: Option<&str>) -> LdapSettings {
        LdapSettings {
            url: Some("ldap://127.0.0.1:1".into()),
            append_domain: append_domain.map(str::to_owned),
            ..LdapSettings::default()
        }
    }

    #[test]
    fn spellings_the_directory_matches_alike_are_one_name() {
        let s = settings(Some("Zulip.com"));
        for typed in [
            "hamlet",
            " hamlet",
            "  ham let ",
            "HAMLET",
            "hamlet@zulip.com",
            "Hamlet@ZULIP.com",
            "ham\u{00AD}let",
            "ham\u{200B}let\u{FEFF}",
            "\u{00A0}hamlet\t",
            "\u{FF48}amlet",
        ] {
            assert_eq!(compared_name(&s, typed), "hamlet", "{typed:?}");
        }
        assert_eq!(compared_name(&s, "hamlet@other.org"), "hamlet@other.org");
        assert_eq!(
            compared_name(&settings(None), "Hamlet@zulip.com"),
            "hamlet@zulip.com"
        );
    }

    #[test]
    fn usernames_from_emails_in_the_appended_domain() {
        let s = settings(Some("zulip.com"));
        assert_eq!(ldap_username(&s, "hamlet@zulip.com"), "hamlet");
        assert_eq!(ldap_username(&s, "hamlet"), "hamlet");
        assert_eq!(ldap_username(&s, "hamlet@other.org"), "hamlet@other.org");
        assert_eq!(
            ldap_username(&settings(None), "hamlet@zulip.com"),
            "hamlet@zulip.com"
        );
    }

    #[test]
    fn a_directory_that_is_down_is_unavailable_not_rejected() {
        let outcome = authenticate(&settings(None), "hamlet", "secret");
        assert!(matches!(outcome, Outcome::Unavailable(_)), "{outcome:?}");
        assert_eq!(
            authenticate(&settings(None), "hamlet", ""),
            Outcome::WrongPassword
        );
    }
}
