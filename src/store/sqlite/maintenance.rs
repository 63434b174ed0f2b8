//! Health, integrity, backups and pruning.

use std::path::Path;

use super::Sqlite;
use crate::store::{Maintenance, StoreResult};

impl Maintenance for Sqlite {
    fn health(&self) -> StoreResult<()> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
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

    fn prune(&self, events_before: f64, audit_before: f64) -> StoreResult<(usize, usize)> {
        let events = self.conn.execute(
            "DELETE FROM rate_limit_event WHERE at < ?1",
            [events_before],
        )?;
        let audit = self
            .conn
            .execute("DELETE FROM audit_log WHERE at < ?1", [audit_before])?;
        Ok((events, audit))
    }
}
