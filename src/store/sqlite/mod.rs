//! The SQLite engine: one connection per thread, in WAL mode, the schema of `schema.sql`.
//! Each file implements one of the seam's traits; this one opens connections and runs
//! transactions. Realm rows and rate-limit buckets are cached per connection until the
//! database changes ([`cache`]).

mod audit;
mod cache;
mod device_keys;
mod keys;
mod limits;
mod login;
mod login_mail;
mod maintenance;
mod migrations;
mod realms;
mod recovery;
mod sessions;
mod tables;
mod users;
mod web;

use std::cell::{RefCell, RefMut};
use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::{StoreError, StoreResult};
use cache::Cache;

/// How long a statement waits for another connection's write lock before the database
/// counts as unavailable (wire.md §3.6 answers within 5 s).
const BUSY_TIMEOUT: Duration = Duration::from_secs(4);

/// A failure of SQLite is the store being unavailable, whatever its kind: the caller can
/// only report it, and the transaction it ended has been rolled back.
impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Unavailable(err.to_string())
    }
}

/// Rows read into the model by [`row`](super::row).
impl super::row::Row for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, index: usize) -> rusqlite::Result<i64> {
        self.get(index)
    }
    fn real(&self, index: usize) -> rusqlite::Result<f64> {
        self.get(index)
    }
    fn maybe_int(&self, index: usize) -> rusqlite::Result<Option<i64>> {
        self.get(index)
    }
    fn maybe_real(&self, index: usize) -> rusqlite::Result<Option<f64>> {
        self.get(index)
    }
    fn flag(&self, index: usize) -> rusqlite::Result<bool> {
        self.get(index)
    }
    fn maybe_flag(&self, index: usize) -> rusqlite::Result<Option<bool>> {
        self.get(index)
    }
    fn text(&self, index: usize) -> rusqlite::Result<String> {
        self.get(index)
    }
    fn maybe_text(&self, index: usize) -> rusqlite::Result<Option<String>> {
        self.get(index)
    }
    fn out_of_range(&self, index: usize, value: i64) -> rusqlite::Error {
        let kind = rusqlite::types::FromSqlError::OutOfRange(value);
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            kind.into(),
        )
    }
}

/// Whether `err` is a UNIQUE or other constraint violation.
fn is_constraint(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if e.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub struct Sqlite {
    conn: Connection,
    /// The file as opened, so that health can tell it was deleted or replaced since.
    file: FileIdentity,
    cache: RefCell<Cache>,
}

/// Where a database file is, and which file it was when it was opened.
struct FileIdentity {
    path: PathBuf,
    device: u64,
    inode: u64,
}

impl Sqlite {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Sqlite> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| cannot_open(path, &e.to_string()))?;
        Sqlite::connect(path)
    }

    /// Opens an existing database: a missing or empty file is refused, naming the path.
    pub fn open_existing(path: &Path) -> StoreResult<Sqlite> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > 0 => Sqlite::connect(path),
            Ok(_) => Err(StoreError::Refused(format!(
                "{} is empty, not a zulip-auth database",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Refused(
                format!("no database at {}", path.display()),
            )),
            Err(e) => Err(cannot_open(path, &e.to_string())),
        }
    }

    /// Opens the database for a request thread: commits are not synced to disk one by one
    /// (WAL with `synchronous=NORMAL`), so rate-limit events and audit rows cost no fsync.
    /// They survive a crash or a restart of the process; a power loss may drop the last
    /// moments of them. Keys are never written so: see [`Sqlite::durably`].
    pub fn open_for_requests(path: &Path) -> StoreResult<Sqlite> {
        let store = Sqlite::open(path)?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(store)
    }

    fn connect(path: &Path) -> StoreResult<Sqlite> {
        let conn = Connection::open(path).map_err(|e| cannot_open(path, &e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| cannot_open(path, &e.to_string()))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Without the query planner stability guarantee, SQLite re-parses and re-plans a
        // statement whenever its `LIMIT ?` is bound to another value, as the rate limiter's
        // are on every call (one rule per bucket): that cost more than the rest of a login
        // refused by the limiter.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let meta = std::fs::metadata(path).map_err(|e| cannot_open(path, &e.to_string()))?;
        let file = FileIdentity {
            path: path.to_owned(),
            device: meta.dev(),
            inode: meta.ino(),
        };
        let mut store = Sqlite {
            conn,
            file,
            cache: RefCell::default(),
        };
        migrations::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// The connection's cache, emptied first if the database changed since it was filled.
    fn cache(&self) -> StoreResult<RefMut<'_, Cache>> {
        let mut cache = self.cache.borrow_mut();
        cache.check(&self.conn)?;
        Ok(cache)
    }

    /// [`Sqlite::immediate`], synced to disk before it returns (`synchronous=FULL`), which
    /// also syncs every commit before it: for what a client or an operator relies on.
    fn durably<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let previous: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = self.immediate(f);
        self.conn.pragma_update(None, "synchronous", previous)?;
        result
    }

    /// Runs `f` in an immediate (write-locking) transaction, so a read-then-write such as
    /// the rate limiter's is atomic across workers and processes.
    fn immediate<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        if !self.conn.is_autocommit() {
            // A panic unwound through an earlier transaction: drop what it left.
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = f(&self.conn).and_then(|value| {
            self.conn.execute_batch("COMMIT")?;
            Ok(value)
        });
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }
}

fn cannot_open(path: &Path, reason: &str) -> StoreError {
    StoreError::Unavailable(format!("cannot open database {}: {reason}", path.display()))
}

/// A fresh database with one user, for the engine's own unit tests.
#[cfg(test)]
pub(crate) fn store_with_user() -> (tempfile::TempDir, Sqlite, i64) {
    use crate::store::{NewUser, Realms, Role, Users};
    let dir = tempfile::tempdir().unwrap();
    let store = Sqlite::open(&dir.path().join("db")).unwrap();
    let root = store.realm_by_subdomain("").unwrap().unwrap();
    let user = NewUser {
        email: "iago@example.com".into(),
        full_name: "Iago".into(),
        role: Role::Admin,
        password: None,
        is_active: true,
        api_key: None,
    };
    let id = store.create_users(root.id, &[user], "test").unwrap()[0];
    (dir, store, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::store::{
        Audit, AuditEntry, AuditEvent, AuditFilter, FinishLogin, LoginEnd, Logins, Maintenance,
        NewUser, Realms, Role, Users,
    };

    #[test]
    fn new_database_has_the_root_realm_and_reopens_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let store = Sqlite::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let root = store.realm_by_subdomain("").unwrap().unwrap();
        assert!(!root.deactivated && root.password_auth_enabled);
        drop(store);
        let store = Sqlite::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            migrations::migrations().count() as i64
        );
    }

    #[test]
    fn open_existing_refuses_missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        assert!(matches!(
            Sqlite::open_existing(&path),
            Err(StoreError::Refused(_))
        ));
        assert!(!path.exists(), "nothing was created");
        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            Sqlite::open_existing(&path),
            Err(StoreError::Refused(_))
        ));
        std::fs::remove_file(&path).unwrap();
        drop(Sqlite::open(&path).unwrap());
        assert!(Sqlite::open_existing(&path).is_ok());
    }

    #[test]
    fn request_stores_sync_only_durable_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open_for_requests(&dir.path().join("db")).unwrap();
        let synchronous = |c: &Connection| -> i64 {
            c.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(&store.conn), 1, "NORMAL");
        let inside = store.durably(|c| Ok(synchronous(c)));
        assert_eq!(inside.unwrap(), 2, "FULL");
        assert_eq!(synchronous(&store.conn), 1, "restored");
    }

    fn iago(password: Option<&str>) -> NewUser {
        NewUser {
            email: "Iago@Example.com".into(),
            full_name: "Iago".into(),
            role: Role::Admin,
            password: password.map(str::to_owned),
            is_active: true,
            api_key: None,
        }
    }

    #[test]
    fn lookup_ignores_case_and_keys_are_stored_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        let root = store.realm_by_subdomain("").unwrap().unwrap();
        let [id] = store.create_users(root.id, &[iago(None)], "test").unwrap()[..] else {
            panic!()
        };
        let user = store
            .user_by_email(root.id, "iago@EXAMPLE.COM")
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.delivery_email.as_str(), user.role),
            ("Iago@Example.com", Role::Admin)
        );
        let again = NewUser {
            email: "iago@example.com".into(),
            ..iago(None)
        };
        assert!(matches!(
            store.create_users(root.id, &[again], "test"),
            Err(StoreError::Refused(_))
        ));
        let audit = AuditEntry::new(AuditEvent::KeyRotated, Some(root.id), Some(id));
        store
            .replace_api_key(id, "A".repeat(32).as_str(), &audit)
            .unwrap();
        assert_eq!(
            store.user_by_api_key(&"A".repeat(32)).unwrap().unwrap().id,
            id
        );
        let other = NewUser {
            email: "hamlet@example.com".into(),
            ..iago(None)
        };
        let [other] = store.create_users(root.id, &[other], "test").unwrap()[..] else {
            panic!()
        };
        assert_eq!(
            store.replace_api_key(other, &"A".repeat(32), &audit),
            Err(StoreError::KeyInUse)
        );
    }

    #[test]
    fn a_login_finishes_only_over_what_was_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        let root = store.realm_by_subdomain("").unwrap().unwrap();
        let [id] = store
            .create_users(root.id, &[iago(Some("old-hash"))], "t")
            .unwrap()[..]
        else {
            panic!()
        };
        let audit = AuditEntry::new(AuditEvent::LoginSuccess, Some(root.id), Some(id));
        fn finish<'a>(
            id: i64,
            verified: &'a str,
            key: &'a str,
            audit: &'a AuditEntry,
        ) -> FinishLogin<'a> {
            FinishLogin {
                user_id: id,
                verified_hash: Some(verified),
                rehash: Some("new-hash"),
                new_key: key,
                device: None,
                clear_bucket: None,
                release: None,
                audit,
            }
        }
        let changed = store
            .finish_login(&finish(id, "stale-hash", &"K".repeat(32), &audit))
            .unwrap();
        assert_eq!(changed, LoginEnd::PasswordChanged);
        let LoginEnd::Done {
            user,
            api_key,
            minted,
        } = store
            .finish_login(&finish(id, "old-hash", &"K".repeat(32), &audit))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((api_key.as_str(), minted), ("K".repeat(32).as_str(), true));
        assert_eq!(user.id, id);
        let stored = store
            .user_by_email(root.id, "iago@example.com")
            .unwrap()
            .unwrap();
        assert_eq!(stored.password.as_deref(), Some("new-hash"));
        // The first key sticks; a second login is handed it, not the one it brought.
        let LoginEnd::Done {
            api_key, minted, ..
        } = store
            .finish_login(&finish(id, "new-hash", &"L".repeat(32), &audit))
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((api_key, minted), ("K".repeat(32), false));
        let rows = store.audit_rows(&AuditFilter::default()).unwrap();
        let events: Vec<&str> = rows.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(
            events,
            [
                "user_created",
                "login_success",
                "key_minted",
                "login_success"
            ]
        );
    }

    #[test]
    fn pruning_drops_only_what_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        let at = |at| AuditEntry {
            at,
            ..AuditEntry::new(AuditEvent::RealmChanged, Some(1), None)
        };
        store.audit(&at(100.0)).unwrap();
        store.audit(&at(200.0)).unwrap();
        store
            .conn
            .execute_batch(
                "INSERT INTO rate_limit_event (bucket, at) VALUES ('a', 100), ('b', 200)",
            )
            .unwrap();
        assert_eq!(store.prune(150.0, 150.0).unwrap(), (1, 1));
        assert_eq!(store.audit_rows(&AuditFilter::default()).unwrap().len(), 1);
    }
}
