//! Where realms live: the external URL, Zulip's Host → subdomain rule, parsed more strictly
//! than Zulip does (wire.md §4.1), and realm URLs (§4.2).

/// `--external-url scheme://host[:port]`: the root realm's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalUrl {
    scheme: String,
    /// Lowercased host, without the port.
    host: String,
    /// `:port`, or empty.
    port: String,
}

impl ExternalUrl {
    pub fn parse(url: &str) -> Result<ExternalUrl, String> {
        let complaint = || format!("invalid external URL {url:?}: expected scheme://host[:port]");
        let (scheme, rest) = url.split_once("://").ok_or_else(complaint)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(complaint());
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || !port.is_empty() => {
                if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(complaint());
                }
                (host, format!(":{port}"))
            }
            _ => (authority, String::new()),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b));
        if !host_ok {
            return Err(complaint());
        }
        Ok(ExternalUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The subdomain a request's `Host` header names (wire.md §4.1).
    pub fn subdomain_of(&self, request_host: &str) -> String {
        let host = request_host.to_ascii_lowercase();
        let host = strip_port(&host);
        match host.strip_suffix(&self.host) {
            Some(prefix) => match prefix.strip_suffix('.') {
                Some(sub) if !sub.is_empty() => sub.to_owned(),
                _ => String::new(),
            },
            None => String::new(),
        }
    }

    /// The realm's URL, without a trailing slash.
    pub fn realm_url(&self, subdomain: &str) -> String {
        if subdomain.is_empty() {
            format!("{}://{}{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{subdomain}.{}{}", self.scheme, self.host, self.port)
        }
    }
}

/// wire.md §4.1 step 0: the request's Host as a name (labels of letters, digits and `-`,
/// which covers IPv4 addresses) or a bracketed IPv6 address, with an optional port of
/// 1 to 65535; one trailing dot of a name is dropped. `None` for anything else (a second
/// or non-numeric port, userinfo, a path, an empty label), because mapping such a Host to
/// the root realm would let one realm's key pass another realm's check. `""` stays `""`.
pub fn normalize_host(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some(String::new());
    }
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (address, after) = rest.split_once(']')?;
            address.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (&host[..address.len() + 2], port)
        }
        None => {
            let (name, port) = match host.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            };
            let name = name.strip_suffix('.').unwrap_or(name);
            let label_ok = |label: &str| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if !name.split('.').all(label_ok) {
                return None;
            }
            (name, port)
        }
    };
    match port {
        None => Some(name.to_owned()),
        Some(port) => {
            let valid = (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != 0);
            valid.then(|| [name, ":", port].concat())
        }
    }
}

/// Drops an optional `:digits` suffix.
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// How a request's Host maps to a realm and its URL, with or without an external URL.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub external_url: Option<ExternalUrl>,
}

impl Site {
    /// Without an external URL every Host belongs to the root realm (wire.md §2).
    pub fn subdomain_of(&self, request_host: &str) -> String {
        match &self.external_url {
            Some(url) => url.subdomain_of(request_host),
            None => String::new(),
        }
    }

    /// Without an external URL the realm URL is `http://` plus the request's Host, so that
    /// servers on port 0 give reachable URLs.
    pub fn realm_url(&self, subdomain: &str, request_host: &str) -> String {
        match &self.external_url {
            Some(url) => url.realm_url(subdomain),
            None => format!("http://{request_host}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_host_examples() {
        let url = ExternalUrl::parse("http://chat.example.com:9991").unwrap();
        assert_eq!(url.subdomain_of("chat.example.com:9991"), "");
        assert_eq!(url.subdomain_of("example.org"), "");
        assert_eq!(url.subdomain_of("zulip.chat.example.com:9991"), "zulip");
        assert_eq!(url.subdomain_of("a.b.chat.example.com"), "a.b");
        assert_eq!(url.subdomain_of("ZULIP.Chat.Example.com"), "zulip");
        assert_eq!(url.subdomain_of("xchat.example.com"), "");
        assert_eq!(url.subdomain_of(""), "");
        assert_eq!(url.realm_url(""), "http://chat.example.com:9991");
        assert_eq!(url.realm_url("lear"), "http://lear.chat.example.com:9991");
    }

    #[test]
    fn strict_host_parsing() {
        for (host, normal) in [
            ("", ""),
            ("chat.example.com", "chat.example.com"),
            ("lear.chat.example.com.", "lear.chat.example.com"),
            ("lear.chat.example.com.:9991", "lear.chat.example.com:9991"),
            ("Lear.Chat.Example.com:65535", "Lear.Chat.Example.com:65535"),
            ("127.0.0.1:4242", "127.0.0.1:4242"),
            ("[::1]", "[::1]"),
            ("[::1]:80", "[::1]:80"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(normalize_host(host).as_deref(), Some(normal), "{host:?}");
        }
        for host in [
            "lear.chat.example.com:abc",
            "lear.chat.example.com:80:80",
            "lear.chat.example.com/x",
            "lear.chat.example.com@evil",
            "evil@lear.chat.example.com",
            "lear..chat.example.com",
            ".chat.example.com",
            "chat.example.com..",
            "chat.example.com:",
            "chat.example.com:0",
            "chat.example.com:65536",
            "chat.example.com:123456",
            "chat_example.com",
            "chat example.com",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[zz]",
            ".",
            ":80",
        ] {
            assert_eq!(normalize_host(host), None, "{host:?}");
        }
    }

    #[test]
    fn external_url_validation() {
        assert!(ExternalUrl::parse("https://chat.example.com/").is_ok());
        assert!(ExternalUrl::parse("chat.example.com").is_err());
        assert!(ExternalUrl::parse("ftp://chat.example.com").is_err());
        assert!(ExternalUrl::parse("http://chat.example.com:x").is_err());
        assert!(ExternalUrl::parse("http://chat.example.com/path").is_err());
    }

    #[test]
    fn without_external_url_everything_is_root() {
        let site = Site::default();
        assert_eq!(site.subdomain_of("lear.localhost:9991"), "");
        assert_eq!(
            site.realm_url("", "127.0.0.1:4242"),
            "http://127.0.0.1:4242"
        );
    }
}
