//! Outgoing mail: `serve --smtp-url` parsed as web.md §8 says, and one synchronous SMTP
//! transport (lettre, TLS through rustls) that sends a plain-text message with an HTML
//! alternative. Callers send from their own thread, never from a request's.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use percent_encoding::percent_decode_str;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: STARTTLS, required; the relay must offer it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://…?tls=none`: plain text, only to a relay on loopback.
    Plain,
}

/// `smtp://[user@]host[:port][?tls=none]` or `smtps://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
}

impl FromStr for SmtpUrl {
    type Err = String;

    // lettre's own `from_url` reads a bare smtp:// as plain text and refuses tls=none, so the
    // URL is taken apart here and the transport built from its parts (web.md §8).
    fn from_str(url: &str) -> Result<SmtpUrl, String> {
        let shown = crate::text::url_without_secrets(url);
        let complaint = |why: &str| format!("invalid SMTP URL {shown:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| complaint("expected smtp://[user@]host[:port] or smtps://…"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err(complaint("a path means nothing here"));
        }
        let mut security = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => Security::StartTls,
            "smtps" => Security::Tls,
            _ => return Err(complaint("the scheme must be smtp or smtps")),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair {
                "tls=none" if security == Security::StartTls => security = Security::Plain,
                "tls=none" => return Err(complaint("smtps:// is TLS; tls=none contradicts it")),
                _ if pair.starts_with("tls=") => {
                    return Err(complaint("the only tls= value is none"));
                }
                _ => return Err(complaint("the only query parameter is tls=none")),
            }
        }
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (Some(user), hostport),
            None => (None, authority),
        };
        let user = match user {
            Some(user) if user.contains(':') => {
                return Err(complaint(
                    "the password does not go in the URL: set ZULIP_AUTH_SMTP_PASSWORD or --smtp-password-file",
                ));
            }
            Some("") => return Err(complaint("the user name is empty")),
            Some(user) => Some(
                percent_decode_str(user)
                    .decode_utf8()
                    .map_err(|_| complaint("the user name is not UTF-8"))?
                    .into_owned(),
            ),
            None => None,
        };
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| complaint("bad host or port"))?;
        let port = port.unwrap_or(match security {
            Security::Tls => 465,
            Security::StartTls | Security::Plain => 587,
        });
        if security == Security::Plain && !is_loopback(&host) {
            return Err(complaint(
                "tls=none sends mail (and any password) in clear text, so only to a relay on loopback",
            ));
        }
        Ok(SmtpUrl {
            security,
            host,
            port,
            user,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        (
            host,
            after
                .strip_prefix(':')
                .or(Some(after).filter(|a| a.is_empty()))?,
        )
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, port),
            None => (text, ""),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b));
    if !host_ok {
        return None;
    }
    let port = match port {
        "" => None,
        digits => Some(digits.parse().ok().filter(|&p: &u16| p != 0)?),
    };
    Some((host.to_ascii_lowercase(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Everything `serve` needs to send mail.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub url: SmtpUrl,
    pub from: Mailbox,
    /// From ZULIP_AUTH_SMTP_PASSWORD or a file; never from the command line.
    pub password: Option<String>,
}

impl MailSettings {
    pub fn new(url: SmtpUrl, from: &str, password: Option<String>) -> Result<MailSettings, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("invalid --mail-from {from:?}: {e}"))?;
        match (&url.user, &password) {
            (Some(user), None) => Err(format!(
                "the SMTP URL names the user {user:?} but no password is set: set ZULIP_AUTH_SMTP_PASSWORD or --smtp-password-file"
            )),
            (None, Some(_)) => Err(
                "an SMTP password is set but the SMTP URL names no user (smtp://USER@host)".into(),
            ),
            _ => Ok(MailSettings {
                url,
                from,
                password,
            }),
        }
    }
}

/// One message: plain text with an HTML alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A relay connection is never held for longer than this without progress.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// The configured relay.
pub struct Postman {
    transport: SmtpTransport,
    from: Mailbox,
}

impl Postman {
    pub fn new(settings: &MailSettings) -> Result<Postman, String> {
        let url = &settings.url;
        let tls = || {
            TlsParameters::new(url.host.clone())
                .map_err(|e| format!("cannot set up TLS to {}: {e}", url.host))
        };
        let tls = match url.security {
            Security::StartTls => Tls::Required(tls()?),
            Security::Tls => Tls::Wrapper(tls()?),
            Security::Plain => Tls::None,
        };
        let mut builder = SmtpTransport::builder_dangerous(&url.host)
            .port(url.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(password)) = (&url.user, &settings.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Postman {
            transport: builder.build(),
            from: settings.from.clone(),
        })
    }

    /// Sends one message; the error says why not, for the log.
    pub fn send(&self, mail: &Mail) -> Result<(), String> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("cannot address {:?}: {e}", mail.to))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(&message)
            .map(|_| ())
            .map_err(|e| format!("the SMTP relay did not take the message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpUrl, String> {
        url.parse()
    }

    #[test]
    fn schemes_ports_and_users() {
        assert_eq!(
            parse("smtp://mail.example.com"),
            Ok(SmtpUrl {
                security: Security::StartTls,
                host: "mail.example.com".into(),
                port: 587,
                user: None
            })
        );
        assert_eq!(
            parse("smtps://zulip%40example.com@Mail.Example.com:2465/"),
            Ok(SmtpUrl {
                security: Security::Tls,
                host: "mail.example.com".into(),
                port: 2465,
                user: Some("zulip@example.com".into())
            })
        );
        assert_eq!(parse("smtps://mail.example.com").unwrap().port, 465);
        let plain = parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((plain.security, plain.port), (Security::Plain, 2525));
        assert_eq!(parse("smtp://[::1]:25?tls=none").unwrap().host, "::1");
        assert_eq!(parse("smtp://localhost?tls=none").unwrap().port, 587);
    }

    #[test]
    fn refusals() {
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://mail.example.com?tls=none",
            "smtp://127.0.0.1?tls=starttls",
            "smtp://127.0.0.1?tls=",
            "smtps://127.0.0.1?tls=none",
            "smtp://127.0.0.1?port=25",
            "smtp://user:secret@mail.example.com",
            "smtp://@mail.example.com",
            "smtp://mail.example.com:0",
            "smtp://mail.example.com:99999",
            "smtp://mail.example.com:x",
            "smtp://mail.example.com/path",
            "smtp://",
            "smtp://[::1",
            "smtp://bad_host",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("smtp://u:p@h")
                .unwrap_err()
                .contains("ZULIP_AUTH_SMTP_PASSWORD"),
            "says where the password goes"
        );
    }

    #[test]
    fn a_user_needs_a_password_and_a_password_a_user() {
        let with_user = parse("smtp://zulip@mail.example.com").unwrap();
        let without = parse("smtp://mail.example.com").unwrap();
        let from = "Zulip <noreply@example.com>";
        assert!(MailSettings::new(with_user.clone(), from, None).is_err());
        assert!(MailSettings::new(with_user, from, Some("s".into())).is_ok());
        assert!(MailSettings::new(without.clone(), from, Some("s".into())).is_err());
        assert!(MailSettings::new(without.clone(), "not an address", None).is_err());
        assert!(MailSettings::new(without, from, None).is_ok());
    }
}
