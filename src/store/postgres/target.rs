//! Where the PostgreSQL store is and how to reach it: a `postgres://` URL, its password from
//! the environment or a password file (never the URL, which may sit in argv), TLS as the URL's
//! `sslmode` asks, and the timeouts that bound a request while the database is away.

use std::fmt;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use percent_encoding::percent_decode_str;
use postgres::Config;
use postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::pool::{CONNECT_TIMEOUT, MAX_CONNECTIONS, Pool};
use crate::store::realm_cache::RealmCache;
use crate::store::{StoreError, StoreResult, instance_name};

/// Returns a [`StoreError::Refused`] with a formatted message.
macro_rules! refused {
    ($($arg:tt)*) => {
        Err(StoreError::Refused(format!($($arg)*)))
    };
}

/// No statement of ours runs long; one that does is waiting on something broken.
const STATEMENT_TIMEOUT_MS: u32 = 3000;

/// A parsed `--db postgres://user@host[:port]/dbname[?sslmode=..&sslrootcert=..&passfile=..]`.
#[derive(Clone)]
pub struct Target {
    config: Config,
    tls: MakeRustlsConnect,
    /// The URL without secrets, for logs and messages.
    shown: String,
    /// The process's pool, made at first use and shared by every clone.
    pool: Arc<OnceLock<Pool>>,
    /// The instance's realm rows ([`realm_cache`](crate::store::realm_cache)), shared by
    /// every clone like the pool.
    realms: Arc<Mutex<RealmCache>>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The query parameters we read ourselves, before tokio-postgres (which knows only
/// `disable`, `prefer` and `require`) sees the rest.
#[derive(Default)]
struct OwnParams {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    passfile: Option<String>,
}

fn split_own_params(url: &str) -> StoreResult<(String, OwnParams)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), OwnParams::default()));
    };
    let mut own = OwnParams::default();
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| {
                StoreError::Refused(format!("invalid UTF-8 in database URL parameter {key}"))
            })?
            .into_owned();
        match key {
            "sslmode" => own.sslmode = Some(decoded),
            "sslrootcert" => own.sslrootcert = Some(decoded),
            "passfile" => own.passfile = Some(decoded),
            "password" => return refused!("{}", PASSWORD_IN_URL),
            _ => rest.push(pair),
        }
    }
    let base = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((base, own))
}

const PASSWORD_IN_URL: &str = "the database URL must not carry a password (it may be seen in the process list): use PGPASSWORD, ~/.pgpass, PGPASSFILE or ?passfile=FILE";

impl FromStr for Target {
    type Err = StoreError;

    fn from_str(url: &str) -> StoreResult<Target> {
        let (base, own) = split_own_params(url)?;
        let mut config = Config::from_str(&base).map_err(|e| {
            let shown = crate::text::url_without_secrets(&base);
            StoreError::Refused(format!("invalid database URL {shown:?}: {e}"))
        })?;
        if config.get_password().is_some() {
            return refused!("{}", PASSWORD_IN_URL);
        }
        if config.get_user().is_none() {
            match std::env::var("PGUSER") {
                Ok(user) => config.user(&user),
                Err(_) => {
                    return refused!(
                        "the database URL {base:?} names no user (postgres://USER@HOST/DBNAME)"
                    );
                }
            };
        }
        if config.get_dbname().is_none() {
            return refused!(
                "the database URL {base:?} names no database (postgres://USER@HOST/DBNAME)"
            );
        }
        let mode = own.sslmode.as_deref().unwrap_or("prefer");
        config.ssl_mode(match mode {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            // rustls always checks the certificate and the host name, so the verify modes are
            // `require` here, and `require` is stricter than libpq's.
            "require" | "verify-ca" | "verify-full" => SslMode::Require,
            other => {
                return refused!(
                    "unknown sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"
                );
            }
        });
        let tls = MakeRustlsConnect::new(tls_config(own.sslrootcert.as_deref())?);
        let shown = shown(&config);
        if let Some(password) = password(&config, own.passfile.as_deref())? {
            config.password(password);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_user_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        let options = format!(
            // Commits are not flushed one by one, as SQLite's synchronous=NORMAL; see
            // `Postgres::durably` for those that are.
            "{} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c idle_in_transaction_session_timeout=10000 -c synchronous_commit=off",
            config.get_options().unwrap_or("")
        );
        config.options(options.trim_start());
        Ok(Target {
            config,
            tls,
            shown,
            pool: Arc::default(),
            realms: Arc::default(),
        })
    }
}

fn refused_file(path: &Path, err: &std::io::Error) -> StoreError {
    StoreError::Refused(format!("password file {}: {err}", path.display()))
}

/// `postgres://user@host:port/dbname`, the parts that identify the database.
fn shown(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

impl Target {
    /// The connection settings, with the name PostgreSQL shows for our sessions.
    pub fn config(&self, application_name: &str) -> Config {
        let mut config = self.config.clone();
        config.application_name(application_name);
        config
    }

    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// The instance's realm cache.
    pub fn realms(&self) -> Arc<Mutex<RealmCache>> {
        Arc::clone(&self.realms)
    }

    /// The process's pool of connections to this database; PostgreSQL shows them under the
    /// instance's name.
    pub fn pool(&self) -> Pool {
        self.pool
            .get_or_init(|| {
                super::pool::pool(self.config(instance_name()), self.tls(), MAX_CONNECTIONS)
            })
            .clone()
    }
}

/// Trusts `root_file`'s certificates (PEM) when given, else the system's.
fn tls_config(root_file: Option<&str>) -> StoreResult<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match root_file {
        Some(path) => {
            let bad =
                |e: &dyn fmt::Display| StoreError::Refused(format!("sslrootcert {path}: {e}"));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
        }
        // A machine without a CA bundle can still use sslmode=disable or sslrootcert.
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Refused(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// As libpq looks it up: `PGPASSWORD`, else the first matching line of the password file
/// (`?passfile=`, `PGPASSFILE`, or `~/.pgpass`). `None`: connect without one (trust, peer).
fn password(config: &Config, passfile: Option<&str>) -> StoreResult<Option<String>> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Ok(Some(password));
    }
    let explicit = passfile
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from));
    let path = match (&explicit, std::env::var_os("HOME")) {
        (Some(path), _) => path.clone(),
        (None, Some(home)) => Path::new(&home).join(".pgpass"),
        (None, None) => return Ok(None),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound && explicit.is_none() => return Ok(None),
        Err(e) => return Err(refused_file(&path, &e)),
    };
    let mode = std::fs::metadata(&path)
        .map_err(|e| refused_file(&path, &e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return refused!(
            "password file {} is readable by others; chmod 0600 it",
            path.display()
        );
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let wanted = [
        host.as_str(),
        port.as_str(),
        config.get_dbname().unwrap_or(""),
        config.get_user().unwrap_or(""),
    ];
    Ok(text.lines().find_map(|line| pgpass_match(line, &wanted)))
}

/// The password of a `.pgpass` line (`host:port:db:user:password`, `*` matches anything,
/// `\` escapes `:` and `\`) when its first four fields match `wanted`.
fn pgpass_match(line: &str, wanted: &[&str; 4]) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    let password = fields.pop().filter(|_| fields.len() == 4)?;
    fields
        .iter()
        .zip(wanted)
        .all(|(field, want)| field == "*" || field == want)
        .then_some(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_as_libpq_does() {
        let wanted = ["db.example.com", "5432", "zulip_auth", "auth"];
        assert_eq!(
            pgpass_match("db.example.com:5432:zulip_auth:auth:s3cret", &wanted).as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            pgpass_match("*:*:*:*:a\\:b\\\\c:d", &wanted).as_deref(),
            Some("a:b\\c:d")
        );
        assert_eq!(pgpass_match("other:5432:*:auth:x", &wanted), None);
        assert_eq!(pgpass_match("#*:*:*:*:x", &wanted), None);
        assert_eq!(pgpass_match("*:*:*:x", &wanted), None);
    }

    #[test]
    fn urls_keep_secrets_out_and_read_our_parameters() {
        for bad in [
            "postgres://auth:secret@localhost/zulip_auth",
            "postgres://auth@localhost/zulip_auth?password=secret",
            "postgres://auth@localhost/zulip_auth?sslmode=allow",
            "postgres://auth@localhost",
        ] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
        let target: Target =
            "postgres://auth@127.0.0.1:5433/zulip_auth?sslmode=verify-full&connect_timeout=9"
                .parse()
                .unwrap();
        assert_eq!(
            target.to_string(),
            "postgres://auth@127.0.0.1:5433/zulip_auth"
        );
        let config = target.config("test");
        assert_eq!(config.get_ssl_mode(), SslMode::Require);
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert!(config.get_options().unwrap().contains("statement_timeout"));
    }
}
