//! The SQLite engine: one connection per thread, in WAL mode, the schema of `schema.sql`.
//! The tables' code is shared ([`table`](super::table)); this engine runs it on its
//! connection ([`conn`]) as a [`Backend`]: reads on their own, writes in immediate
//! (write-locking) transactions, synced ones for what a client relies on. Realm rows and
//! rate-limit buckets are cached per connection, realm rows while the realm version holds
//! ([`realm_cache`](super::realm_cache)), buckets and the realm version itself until the
//! database changes ([`cache`], looked at once per request).

mod cache;
mod conn;
mod maintenance;
mod migrations;
mod tables;

use std::cell::{RefCell, RefMut};
use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use super::realm_cache::RealmCache;
use super::sql::{Backend, Conn};
use super::{Bucket, StoreError, StoreResult};
use cache::Cache;
use conn::SqliteConn;

/// How long a statement waits for another connection's write lock before the database
/// counts as unavailable (wire.md §3.6 answers within 5 s).
const BUSY_TIMEOUT: Duration = Duration::from_secs(4);

/// How often a statement waiting for the write lock tries again. SQLite's own busy timeout
/// sleeps in growing steps up to 100 ms, so a login that met a pruning batch holding the
/// lock for 5 ms could sleep 100 ms more (issue 25: no login delayed past 50 ms).
const BUSY_POLL: Duration = Duration::from_millis(1);

/// Room for every statement of the tables, so none is prepared twice.
const STATEMENT_CACHE: usize = 64;

pub struct Sqlite {
    conn: Connection,
    /// The file as opened, so that health can tell it was deleted or replaced since.
    file: FileIdentity,
    cache: RefCell<Cache>,
    realms: Mutex<RealmCache>,
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
        create_private(path)?;
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
    /// moments of them. Keys are never written so: see [`Sqlite::synced`].
    pub fn open_for_requests(path: &Path) -> StoreResult<Sqlite> {
        let store = Sqlite::open(path)?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(store)
    }

    fn connect(path: &Path) -> StoreResult<Sqlite> {
        let mut conn = Connection::open(path).map_err(|e| cannot_open(path, &e.to_string()))?;
        let mut waiting_since = Instant::now();
        conn.busy_handler(Some(move |tries: i32| {
            if tries == 0 {
                waiting_since = Instant::now();
            }
            keep_waiting(waiting_since.elapsed())
                .map(thread::sleep)
                .is_some()
        }))?;
        // Before the first table of a new database, so that `db vacuum` can give space back
        // in small steps while the server runs; no change to an existing one.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| cannot_open(path, &e.to_string()))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Without the query planner stability guarantee, SQLite re-parses and re-plans a
        // statement whenever its `LIMIT ?` is bound to another value, as the rate limiter's
        // are on every call (one rule per bucket): that cost more than the rest of a login
        // refused by the limiter.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
            realms: Mutex::default(),
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
    fn synced<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
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
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut open = Uncommitted(Some(&self.conn));
        let value = f(&self.conn)?;
        self.conn.execute_batch("COMMIT")?;
        open.0 = None;
        Ok(value)
    }
}

/// A transaction rolled back when this is dropped before its commit: after an error, and
/// while a panic unwinds through it, so that no request leaves the write lock held (every
/// other writer would wait out its busy timeout) or reads what was never committed.
struct Uncommitted<'a>(Option<&'a Connection>);

impl Drop for Uncommitted<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// The busy handler's choice after `waited` for another connection's lock: how long to
/// sleep before the next try, or `None` (give up) once [`BUSY_TIMEOUT`] has passed.
fn keep_waiting(waited: Duration) -> Option<Duration> {
    (waited < BUSY_TIMEOUT).then_some(BUSY_POLL)
}

/// Creates the database file, empty and readable by its owner only, unless it exists.
///
/// Closing any descriptor of a file drops every POSIX lock the process holds on it, the
/// locks of SQLite's connections too (sqlite.org/howtocorrupt.html §2.2). A process whose
/// connections hold no lock looks gone to every other: an outside `sqlite3` that closes
/// believes it is the last, checkpoints and deletes the WAL under the server's feet, and
/// the server's next commit fails with a disk I/O error or is lost. So an existing file is
/// never opened here, and a new one is created under a lock that every [`Sqlite::open`]
/// takes, so that no connection of this process opens it before its descriptor is closed.
fn create_private(path: &Path) -> StoreResult<()> {
    static CREATING: Mutex<()> = Mutex::new(());
    let _creating = CREATING.lock().unwrap_or_else(PoisonError::into_inner);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(cannot_open(path, &e.to_string())),
    }
}

fn cannot_open(path: &Path, reason: &str) -> StoreError {
    StoreError::Unavailable(format!("cannot open database {}: {reason}", path.display()))
}

impl Backend for Sqlite {
    fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut SqliteConn(&self.conn))
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T> {
        self.immediate(|conn| f(&mut SqliteConn(conn)))
    }

    fn durably<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T> {
        self.synced(|conn| f(&mut SqliteConn(conn)))
    }

    fn settle(&self) -> StoreResult<()> {
        // PASSIVE: copies what no reader still needs, takes no lock a login waits for.
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn realm_cache(&self) -> &Mutex<RealmCache> {
        &self.realms
    }

    fn cached_realm_version(&self, read: &mut dyn FnMut() -> StoreResult<i64>) -> StoreResult<i64> {
        self.cache()?.realm_version(read)
    }

    fn cached_events(
        &self,
        bucket: &Bucket,
        now: f64,
        read: &mut dyn FnMut() -> StoreResult<Vec<f64>>,
    ) -> StoreResult<Vec<f64>> {
        self.cache()?.recent(bucket, now, read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::store::{Maintenance, Realms};

    /// A bug that panics in a write gives the write lock back at once: another connection
    /// writes without waiting, and nothing of the transaction stays.
    #[test]
    fn a_panic_in_a_transaction_rolls_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let (store, other) = (Sqlite::open(&path).unwrap(), Sqlite::open(&path).unwrap());
        static CREATE: crate::store::sql::Sql =
            crate::store::sql::Sql::new("CREATE TABLE left (x)");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write(|conn| -> StoreResult<()> {
                conn.execute(&CREATE, &[])?;
                panic!("a bug")
            })
        }));
        assert!(panicked.is_err());
        assert!(store.conn.is_autocommit());
        other
            .conn
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK")
            .unwrap();
        let left: i64 = other
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'left'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
    }

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
            crate::store::schema::newest(crate::store::schema::SQLITE)
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

    /// Issue 25: a statement waiting for the write lock tries again every millisecond until
    /// the busy timeout, where SQLite's own handler slept up to 100 ms between two tries.
    #[test]
    fn a_waiting_statement_polls_until_the_busy_timeout() {
        for waited in [0, 1, 50, 1000, 3999] {
            assert_eq!(
                keep_waiting(Duration::from_millis(waited)),
                Some(Duration::from_millis(1))
            );
        }
        assert_eq!(keep_waiting(BUSY_TIMEOUT), None);
        assert_eq!(keep_waiting(Duration::from_secs(60)), None);
    }

    /// A write that meets another connection's write lock waits for it, and goes on once
    /// it is released.
    #[test]
    fn a_write_waits_for_another_connections_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Sqlite::open_for_requests(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        thread::scope(|s| {
            let release = s.spawn(move || {
                thread::sleep(Duration::from_millis(30));
                other.execute_batch("COMMIT").unwrap();
            });
            store
                .immediate(|c| Ok(c.execute_batch("CREATE TABLE t (a)")?))
                .unwrap();
            release.join().unwrap();
        });
    }

    /// Writes `rows` audit rows at times 1, 2, 3... (with `detail` random bytes each, in
    /// hex), then empties the WAL into the database file.
    pub(super) fn old_audit_rows(store: &Sqlite, rows: u32, detail: u32) {
        store
            .conn
            .execute_batch(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO audit_log (at, event, detail)
                     SELECT i, 'login_success', hex(randomblob({detail})) FROM n;
                 PRAGMA wal_checkpoint(TRUNCATE);"
            ))
            .unwrap();
    }

    /// Issue 25: a pruning's batch leaves nothing in the WAL for the next commit (a
    /// login's) to copy into the database and sync: the pruner checkpoints it itself.
    #[test]
    fn a_pruning_batch_leaves_the_wal_checkpointed() {
        use crate::store::{AuditRetention, Pruning};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Sqlite::open_for_requests(&path).unwrap();
        old_audit_rows(&store, 2000, 50);
        // The WAL index: the frames written (the header's mxFrame), and how many of them
        // are in the database file (the checkpoint's nBackfill).
        let frames = || {
            let shm = std::fs::read(dir.path().join("db-shm")).unwrap();
            let word = |at: usize| u32::from_ne_bytes(shm[at..at + 4].try_into().unwrap());
            (word(16), word(96))
        };
        assert_eq!(frames(), (0, 0));
        let retention = AuditRetention {
            before: 1e9,
            keep_newest: &[],
        };
        let batch = store.prune_audit(&retention, f64::MIN).unwrap();
        assert!(batch.deleted > 0 && batch.next.is_some());
        let (written, copied) = frames();
        assert!(written > 0, "the batch wrote to the WAL");
        assert_eq!(copied, written, "and the pruner copied it all back");
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
        let inside = store.synced(|c| Ok(synchronous(c)));
        assert_eq!(inside.unwrap(), 2, "FULL");
        assert_eq!(synchronous(&store.conn), 1, "restored");
    }
}
