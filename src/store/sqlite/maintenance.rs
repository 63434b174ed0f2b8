//! Health, integrity, backups and pruning.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Sqlite;
use crate::store::{Maintenance, StoreError, StoreResult};

/// Below this much free space for the database's directory, a login's writes may fail.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

impl Maintenance for Sqlite {
    /// Whether a login could succeed now: the file is the one opened, the indexes a login
    /// reads answer, the write lock can be taken (and is given back at once: no row is
    /// written), and the disk has room. Each step is bounded by the busy timeout.
    fn health(&self) -> StoreResult<()> {
        let unavailable = |why: &str| Err(StoreError::Unavailable(why.to_owned()));
        let file = &self.file;
        match std::fs::metadata(&file.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == (file.device, file.inode) => {}
            Ok(_) => return unavailable("the database file was replaced since it was opened"),
            Err(_) => return unavailable("the database file is gone"),
        }
        self.conn
            .prepare_cached(
                "SELECT (SELECT count(*) FROM realm WHERE subdomain = '')
                      + (SELECT count(*) FROM user WHERE realm_id = 0 AND delivery_email = '')
                      + (SELECT count(*) FROM rate_limit_event WHERE bucket = '' AND at >= 0)",
            )?
            .query_row([], |_| Ok(()))?;
        self.conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")?;
        if free_bytes(&file.path).is_some_and(|free| free < MIN_FREE_BYTES) {
            return unavailable("the disk holding the database is full");
        }
        Ok(())
    }

    fn schema_version(&self) -> StoreResult<i64> {
        Ok(super::migrations::schema_version(&self.conn)?)
    }

    fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(lines.into_iter().filter(|line| line != "ok").collect())
    }

    fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        self.conn.backup(
            rusqlite::MAIN_DB,
            dest,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        Ok(())
    }

    fn is_local(&self) -> bool {
        true
    }

    fn begin_request(&self) {
        self.cache.borrow_mut().begin_request();
    }

    fn end_request(&self) {
        self.cache.borrow_mut().end_request();
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        let pages: i64 = self
            .conn
            .pragma_query_value(None, "page_count", |r| r.get(0))?;
        let size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))?;
        Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
    }

    /// Without `full`: `PRAGMA incremental_vacuum` a few pages at a time, each step its own
    /// short write transaction with a pause after it, until no page is free. That needs
    /// `auto_vacuum = INCREMENTAL`, which every database made since schema 12 has; an older
    /// one gets it from one `full` vacuum (VACUUM rewrites the file and holds the write lock
    /// until it ends).
    fn vacuum(&self, full: bool) -> StoreResult<()> {
        if full {
            self.conn
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
            return Ok(());
        }
        let mode: i64 = self
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
        if mode != INCREMENTAL {
            return Err(StoreError::Refused(
                "this database was made without incremental vacuuming: run `zulip-auth db vacuum --full` once, with the server stopped".into(),
            ));
        }
        while self.free_pages()? > 0 {
            self.vacuum_step()?;
            std::thread::sleep(VACUUM_PAUSE);
        }
        Ok(())
    }
}

impl Sqlite {
    fn free_pages(&self) -> StoreResult<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "freelist_count", |r| r.get(0))?)
    }

    /// Gives back up to [`VACUUM_STEP`] free pages, in one write transaction. The pragma
    /// frees one page per step of its statement, so it is stepped to its end.
    fn vacuum_step(&self) -> StoreResult<()> {
        let mut step = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({VACUUM_STEP})"))?;
        let mut rows = step.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }
}

/// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
const INCREMENTAL: i64 = 2;
/// Pages one step of an incremental vacuum gives back (1 MiB of 4 KiB pages): a step holds
/// the write lock for a few milliseconds.
const VACUUM_STEP: u32 = 256;
/// As the pruner's pause between batches: a login waiting for the write lock takes it.
const VACUUM_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Free space for unprivileged writers on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` points to writable memory of
    // the size statvfs(3) fills in; it is read only after statvfs reported success.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25: a new database vacuums in steps of many pages, and the file shrinks by the
    /// deleted rows.
    #[test]
    fn an_incremental_vacuum_gives_deleted_rows_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        super::super::tests::old_audit_rows(&store, 20_000, 100);
        let full = store.size_on_disk().unwrap();
        store.conn.execute_batch("DELETE FROM audit_log").unwrap();
        assert_eq!(
            store.size_on_disk().unwrap(),
            full,
            "deleting frees no space"
        );
        // One step gives a step's worth of pages back (it gave one page, stepped once).
        let free = store.free_pages().unwrap();
        assert!(free > i64::from(VACUUM_STEP));
        store.vacuum_step().unwrap();
        assert_eq!(store.free_pages().unwrap(), free - i64::from(VACUUM_STEP));
        store.vacuum(false).unwrap();
        let vacuumed = store.size_on_disk().unwrap();
        assert!(vacuumed < full / 4, "{vacuumed} of {full}");
    }

    /// A database made without incremental vacuuming is told how to get it.
    #[test]
    fn an_old_database_needs_one_full_vacuum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (a)")
            .unwrap();
        let store = Sqlite::open(&path).unwrap();
        let refused = store.vacuum(false).unwrap_err().to_string();
        assert!(refused.contains("db vacuum --full"), "{refused}");
        store.vacuum(true).unwrap();
        store.vacuum(false).unwrap();
    }
}
