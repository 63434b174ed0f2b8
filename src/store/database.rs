//! Which engine keeps the store: `--db` names a SQLite file or a PostgreSQL database
//! (`postgres://USER@HOST[:PORT]/DBNAME`); and the name this process writes into the audit
//! trail, so that the rows of several instances on one database can be told apart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[cfg(not(feature = "postgres"))]
use super::StoreError;
#[cfg(feature = "postgres")]
use super::postgres::{Postgres, Target};
use super::sqlite::Sqlite;
use super::{Store, StoreResult};

/// Where the store is. A clone shares the PostgreSQL pool, so every thread of a server
/// draws on one.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(Box<Target>),
}

impl Database {
    /// `--db`: a `postgres://` or `postgresql://` URL, else a SQLite file's path.
    pub fn from_arg(db: PathBuf) -> StoreResult<Database> {
        let Some(url) = db.to_str().filter(|text| is_url(text)) else {
            return Ok(Database::Sqlite(db));
        };
        postgres_target(url)
    }

    pub fn open(&self) -> StoreResult<Store> {
        Ok(Store(match self {
            Database::Sqlite(path) => Box::new(Sqlite::open(path)?),
            #[cfg(feature = "postgres")]
            Database::Postgres(target) => Box::new(Postgres::open(target)?),
        }))
    }

    /// A SQLite file must exist already; a PostgreSQL database always does.
    pub fn open_existing(&self) -> StoreResult<Store> {
        Ok(Store(match self {
            Database::Sqlite(path) => Box::new(Sqlite::open_existing(path)?),
            #[cfg(feature = "postgres")]
            Database::Postgres(target) => Box::new(Postgres::open(target)?),
        }))
    }

    /// A store for a request thread, after [`Database::open`] migrated the database.
    pub fn open_for_requests(&self) -> StoreResult<Store> {
        Ok(Store(match self {
            Database::Sqlite(path) => Box::new(Sqlite::open_for_requests(path)?),
            #[cfg(feature = "postgres")]
            Database::Postgres(target) => Box::new(Postgres::open_for_requests(target)),
        }))
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

#[cfg(feature = "postgres")]
fn postgres_target(url: &str) -> StoreResult<Database> {
    Ok(Database::Postgres(Box::new(url.parse()?)))
}

#[cfg(not(feature = "postgres"))]
fn postgres_target(_url: &str) -> StoreResult<Database> {
    Err(StoreError::Refused(
        "this zulip-auth was built without the postgres feature".into(),
    ))
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Database {
        Database::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Database {
        Database::Sqlite(path.clone())
    }
}

impl From<&Database> for Database {
    fn from(db: &Database) -> Database {
        db.clone()
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "postgres")]
            Database::Postgres(target) => write!(f, "{target}"),
        }
    }
}

static INSTANCE_NAME: OnceLock<String> = OnceLock::new();

/// Sets the name [`instance_name`] returns; the first call wins.
pub fn set_instance_name(name: &str) {
    let _ = INSTANCE_NAME.set(name.to_owned());
}

/// This process's name in the audit trail (`--instance-name`), the host name by default.
pub fn instance_name() -> &'static str {
    INSTANCE_NAME.get_or_init(hostname)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if ok && !name.is_empty() => name.to_owned(),
        _ => "zulip-auth".to_owned(),
    }
}
