//! Health, schema version, integrity, backups and pruning.

use std::path::Path;

use super::{Postgres, migrate};
use crate::store::sqlite::Sqlite;
use crate::store::{Maintenance, StoreResult, copy};

impl Maintenance for Postgres {
    /// A connection from the pool (checked with a round trip) within 3 s, and a query.
    fn health(&self) -> StoreResult<()> {
        self.conn()?.db().query_one("SELECT 1", &[])?;
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

    fn prune(&self, events_before: f64, audit_before: f64) -> StoreResult<(usize, usize)> {
        let mut conn = self.conn()?;
        let mut db = conn.db();
        let events = db.execute(
            "DELETE FROM rate_limit_event WHERE at < $1",
            &[&events_before],
        )?;
        let audit = db.execute("DELETE FROM audit_log WHERE at < $1", &[&audit_before])?;
        Ok((events as usize, audit as usize))
    }
}
