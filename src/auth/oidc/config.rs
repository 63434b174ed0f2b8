//! The rules of a realm's identity provider's settings, as `idp add` and `idp set` configure
//! them: the record is the store's ([`Provider`], the `idp` table's row); nothing here reads
//! or writes it.

use std::fmt;

use openidconnect::url::{Host, Url};

/// An OpenID provider of a realm. `scopes` are separated by spaces, `openid` always among
/// them; `Debug` leaves the client secret out.
pub use crate::store::IdentityProvider as Provider;

/// What the sign-in page's button says when the operator names nothing else.
pub const DEFAULT_DISPLAY_NAME: &str = "OpenID Connect";
/// The scopes asked for when the operator names none.
pub const DEFAULT_SCOPES: &str = "openid email profile";

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The name is not 1 to 63 lowercase letters, digits and inner hyphens.
    Name,
    /// The issuer (or an endpoint the provider names) is not an absolute URL without query
    /// or fragment.
    NotAUrl(String),
    /// The issuer (or an endpoint) is plain http on a host that is not loopback.
    NotHttps(String),
    /// The icon is not an absolute http(s) URL.
    Icon,
    /// A scope with a space, a quote, a backslash or a control character, or none at all.
    Scopes,
    /// An empty client id or secret.
    EmptyClient,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name => f.write_str(
                "an identity provider's name is 1 to 63 lowercase letters, digits and hyphens, \
                 not starting or ending with a hyphen",
            ),
            Self::NotAUrl(url) => write!(
                f,
                "{url:?} is not an absolute URL without a query or a fragment"
            ),
            Self::NotHttps(url) => write!(
                f,
                "{url:?} must use https (plain http only on localhost or a loopback address)"
            ),
            Self::Icon => f.write_str("the display icon must be an absolute http(s) URL"),
            Self::Scopes => f.write_str(
                "scopes are words separated by spaces, without quotes, backslashes or control \
                 characters",
            ),
            Self::EmptyClient => {
                f.write_str("the client id and the client secret must not be empty")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl Provider {
    /// Whether every setting can be used: checked when the operator sets them.
    pub fn check(&self) -> Result<(), ConfigError> {
        check_name(&self.name)?;
        check_issuer(&self.issuer)?;
        if self.client_id.is_empty() || self.client_secret.is_empty() {
            return Err(ConfigError::EmptyClient);
        }
        if !self.scopes.split(' ').all(is_scope) || !self.scope_list().any(|s| s == "openid") {
            return Err(ConfigError::Scopes);
        }
        if let Some(icon) = &self.display_icon {
            let url = Url::parse(icon).map_err(|_| ConfigError::Icon)?;
            if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
                return Err(ConfigError::Icon);
            }
        }
        Ok(())
    }
}

impl Provider {
    /// The scopes, one by one.
    pub fn scope_list(&self) -> impl Iterator<Item = &str> {
        self.scopes.split(' ')
    }
}

/// A provider's name: a DNS label in lowercase.
pub fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(ConfigError::Name) }
}

/// `--scopes`: words separated by spaces (RFC 6749 §3.3), with `openid` first whether named
/// or not, as the store keeps them: separated by one space.
pub fn parse_scopes(text: &str) -> Result<String, ConfigError> {
    let mut scopes = vec!["openid".to_owned()];
    for scope in text.split(' ').filter(|s| !s.is_empty()) {
        if !is_scope(scope) {
            return Err(ConfigError::Scopes);
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    Ok(scopes.join(" "))
}

/// RFC 6749's scope-token: printable ASCII without space, `"` and `\`.
fn is_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// The issuer: an absolute URL without query or fragment (OpenID Connect Discovery §2), and
/// [secure](is_secure).
pub fn check_issuer(text: &str) -> Result<Url, ConfigError> {
    let not_a_url = || ConfigError::NotAUrl(text.to_owned());
    let url = Url::parse(text).map_err(|_| not_a_url())?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !matches!(url.scheme(), "https" | "http")
        || url.host().is_none()
    {
        return Err(not_a_url());
    }
    if !is_secure(&url) {
        return Err(ConfigError::NotHttps(text.to_owned()));
    }
    Ok(url)
}

/// Whether a URL of the provider (the issuer, or an endpoint discovery names) may be used:
/// https, or plain http on a loopback host, where tests and a provider on the same machine
/// live.
pub fn is_secure(url: &Url) -> bool {
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(host)) => is_loopback(&host),
        _ => false,
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn provider() -> Provider {
        Provider {
            id: 0,
            realm_id: 0,
            name: "keycloak".into(),
            issuer: "https://id.example.com/realms/zulip".into(),
            client_id: "zulip".into(),
            client_secret: "s3cret-value".into(),
            scopes: parse_scopes(DEFAULT_SCOPES).expect("scopes"),
            display_name: DEFAULT_DISPLAY_NAME.into(),
            display_icon: None,
            auto_signup: false,
        }
    }

    #[test]
    fn names() {
        for good in ["oidc", "keycloak-2", "a", &"x".repeat(63)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in ["", "-a", "a-", "Key", "a_b", "a.b", "é", &"x".repeat(64)] {
            assert_eq!(check_name(bad), Err(ConfigError::Name), "{bad}");
        }
    }

    #[test]
    fn issuers_are_https_except_on_loopback() {
        for good in [
            "https://id.example.com",
            "https://id.example.com/realms/zulip/",
            "http://localhost:3000",
            "http://LOCALHOST:3000/x",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:9000/",
        ] {
            assert!(check_issuer(good).is_ok(), "{good}");
        }
        for bad in [
            "http://id.example.com",
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://[::2]/",
        ] {
            assert_eq!(
                check_issuer(bad),
                Err(ConfigError::NotHttps(bad.into())),
                "{bad}"
            );
        }
        for bad in [
            "id.example.com",
            "ftp://id.example.com",
            "https://id.example.com/?a=1",
            "https://id.example.com/#x",
            "mailto:a@b",
            "",
        ] {
            assert_eq!(
                check_issuer(bad),
                Err(ConfigError::NotAUrl(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn scopes_always_start_with_openid() {
        let scopes = |t| parse_scopes(t);
        assert_eq!(
            scopes("email  profile openid email"),
            Ok("openid email profile".into())
        );
        assert_eq!(scopes(""), Ok("openid".into()));
        assert_eq!(scopes("a\"b"), Err(ConfigError::Scopes));
        assert_eq!(scopes("a\tb"), Err(ConfigError::Scopes));
    }

    #[test]
    fn a_provider_is_checked_whole_and_debug_hides_the_secret() {
        let mut p = provider();
        assert_eq!(p.check(), Ok(()));
        assert!(!format!("{p:?}").contains("s3cret"));
        p.display_icon = Some("/static/icon.png".into());
        assert_eq!(p.check(), Err(ConfigError::Icon));
        p.display_icon = Some("https://id.example.com/icon.png".into());
        assert_eq!(p.check(), Ok(()));
        p.client_secret.clear();
        assert_eq!(p.check(), Err(ConfigError::EmptyClient));
        let mut p = provider();
        p.issuer = "http://id.example.com".into();
        assert!(matches!(p.check(), Err(ConfigError::NotHttps(_))));
    }
}
