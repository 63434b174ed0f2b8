//! Health, schema version, integrity, backups and pruning.

use std::path::Path;

use super::{Look, Postgres, migrate};
use crate::store::sqlite::Sqlite;
use crate::store::{Maintenance, StoreError, StoreResult, copy};

impl Maintenance for Postgres {
    /// Whether a login could succeed now, without writing a row: a connection within 3 s
    /// (checked with a round trip), the indexes a login reads answer, and the server
    /// accepts writes (a standby in recovery does not).
    fn health(&self) -> StoreResult<()> {
        let row = self.conn()?.db().query_one(
            "SELECT pg_is_in_recovery(),
                    (SELECT count(*) FROM realm WHERE subdomain = '')
                  + (SELECT count(*) FROM \"user\" WHERE realm_id = 0 AND ascii_lower(delivery_email) = '')
                  + (SELECT count(*) FROM rate_limit_event WHERE bucket = '' AND at >= 0)",
            &[],
        )?;
        if row.try_get(0)? {
            return Err(StoreError::Unavailable(
                "the PostgreSQL server is a standby in recovery: it accepts no writes".into(),
            ));
        }
        Ok(())
    }

    fn schema_version(&self) -> StoreResult<i64> {
        migrate::version(self.conn()?.client())
    }

    /// PostgreSQL checks its own pages; what can drift here is the schema.
    fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        let version = self.schema_version()?;
        let newest = migrate::newest();
        Ok((version != newest)
            .then(|| format!("schema version {version}, expected {newest}"))
            .into_iter()
            .collect())
    }

    /// A SQLite database with every table, from one snapshot: `zulip-auth --db BACKUP`
    /// reads it, and `db copy` brings it back. (pg_dump is PostgreSQL's own way.)
    fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        copy::copy(self, &Sqlite::open(dest)?, true)?;
        Ok(())
    }

    fn is_local(&self) -> bool {
        false
    }

    fn begin_request(&self) {
        self.look.set(Look::InRequest(None));
    }

    fn end_request(&self) {
        self.look.set(Look::EveryUse);
    }

    fn size_on_disk(&self) -> StoreResult<u64> {
        let size: i64 = self
            .conn()?
            .db()
            .query_one("SELECT pg_database_size(current_database())", &[])?
            .try_get(0)?;
        Ok(u64::try_from(size).unwrap_or(0))
    }

    /// Without `full`: VACUUM, which takes no lock that blocks reads or writes; the space
    /// of deleted rows is reused by new ones, and empty pages at a table's end go back to
    /// the file system. With `full`: VACUUM FULL, which rewrites each table under its
    /// exclusive lock and gives all of it back.
    fn vacuum(&self, full: bool) -> StoreResult<()> {
        let statement = if full {
            "VACUUM (FULL, ANALYZE)"
        } else {
            "VACUUM (ANALYZE)"
        };
        // VACUUM runs outside a transaction, so the request path's statement timeout is
        // lifted for the session and set back after, whatever the outcome.
        let mut conn = self.conn()?;
        let client = conn.client();
        client.batch_execute("SET statement_timeout = 0")?;
        let vacuumed = client.batch_execute(statement);
        client.batch_execute("RESET statement_timeout")?;
        vacuumed?;
        Ok(())
    }
}
