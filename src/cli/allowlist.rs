//! Under systemd, a warning at start-up that names a configured address elsewhere which the
//! unit's allow-list blocks (`IPAddressDeny=any`, `IPAddressAllow=localhost`): the SMTP relay,
//! a PostgreSQL server, a realm's LDAP directory. systemd's filter fails a connection to it at
//! once with EPERM, which a down or unreachable host never gives, so the process can tell,
//! and says so instead of leaving reset mail or a directory silently unreachable.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use log::warn;

use crate::store::Database;

/// A host the server will connect to, and what it is.
#[derive(Debug, PartialEq)]
pub struct Remote {
    what: String,
    host: String,
    port: u16,
}

impl Remote {
    pub fn new(what: &str, host: &str, port: u16) -> Remote {
        Remote {
            what: what.to_owned(),
            host: host.to_owned(),
            port,
        }
    }
}

/// Whether the process runs as a systemd service, whose unit may carry an allow-list.
pub fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some()
}

/// Probes each remote, and then the LDAP directories of `db`'s realms, on a thread of its own
/// (a slow host must not hold up the start), warning for each one the allow-list blocks.
pub fn warn_blocked(remotes: Vec<Remote>, db: Database) {
    let probe = move || {
        for remote in &remotes {
            probe(remote);
        }
        // The realms are read once the server has migrated the database; a failure here is
        // the server's to report.
        std::thread::sleep(Duration::from_secs(1));
        let Ok(store) = db.open_existing() else {
            return;
        };
        for (realm, _) in store.realms().unwrap_or_default() {
            if let Some(remote) = realm.ldap_backend().and_then(|l| ldap_remote(l.url())) {
                probe(&remote);
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("allowlist".into())
        .spawn(probe)
    {
        warn!("cannot check the unit's allow-list: {e}");
    }
}

/// Warns if the allow-list blocks `remote`.
pub fn probe(remote: &Remote) {
    let Ok(addresses) = (remote.host.as_str(), remote.port).to_socket_addrs() else {
        return;
    };
    for address in addresses.filter(|a| !a.ip().is_loopback()) {
        if blocked(address) {
            warn!(
                "the {} {}:{} ({}) is blocked by the unit's IP allow-list \
                 (IPAddressAllow=localhost): widen it with a drop-in (README, \"Run it as a service\")",
                remote.what,
                remote.host,
                remote.port,
                address.ip()
            );
            return;
        }
    }
}

fn blocked(address: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&address, Duration::from_secs(3)) {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// The host of a `postgres://USER@HOST[:PORT]/DBNAME` database; none for a socket directory.
pub fn postgres_remote(url: &str) -> Option<Remote> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host_port_remote("PostgreSQL server", host_port, 5432)
}

/// The host of an `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]` directory.
fn ldap_remote(url: &str) -> Option<Remote> {
    let (rest, port) = match url.strip_prefix("ldaps://") {
        Some(rest) => (rest, 636),
        None => (url.strip_prefix("ldap://")?, 389),
    };
    host_port_remote("LDAP directory", rest.split('/').next()?, port)
}

fn host_port_remote(what: &str, host_port: &str, default_port: u16) -> Option<Remote> {
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, port.parse().ok()?),
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Remote::new(what, host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_urls() {
        let pg = |url| postgres_remote(url).map(|r| (r.host, r.port));
        assert_eq!(
            pg("postgres://za@db.example.com/za"),
            Some(("db.example.com".into(), 5432))
        );
        assert_eq!(
            pg("postgresql://za@10.0.0.5:6432/za?sslmode=require"),
            Some(("10.0.0.5".into(), 6432))
        );
        assert_eq!(
            pg("postgres://za@[2001:db8::1]:5433/za"),
            Some(("2001:db8::1".into(), 5433))
        );
        assert_eq!(pg("postgres://za@/za?host=/run/postgresql"), None);
        assert_eq!(pg("/var/lib/zulip-auth/zulip-auth.sqlite3"), None);
        let ldap = |url| ldap_remote(url).map(|r| (r.host, r.port));
        assert_eq!(
            ldap("ldap://ldap.example.com"),
            Some(("ldap.example.com".into(), 389))
        );
        assert_eq!(
            ldap("ldaps://ldap.example.com:1636"),
            Some(("ldap.example.com".into(), 1636))
        );
    }

    #[test]
    fn only_a_refusal_by_the_filter_counts_as_blocked() {
        // Nothing listens on a port just freed: ECONNREFUSED, not EPERM.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        assert!(!blocked(address));
    }
}
