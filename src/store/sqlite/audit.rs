//! The `audit_log` table.

use rusqlite::{Connection, params};

use super::Sqlite;
use crate::store::{Audit, AuditEntry, AuditFilter, AuditRow, StoreResult, instance_name};

pub(super) fn insert(conn: &Connection, entry: &AuditEntry) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, event, realm_id, user_id, reason, remote_addr, user_agent, detail, instance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        entry.at,
        entry.event.as_str(),
        entry.realm_id,
        entry.user_id,
        entry.reason,
        entry.remote_addr,
        entry.user_agent,
        entry.detail,
        instance_name()
    ])?;
    Ok(())
}

impl Audit for Sqlite {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        insert(&self.conn, entry)
    }

    fn audit_rows(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT a.at, a.event, r.subdomain, u.delivery_email, a.reason, a.remote_addr, a.user_agent, a.detail, a.instance
             FROM audit_log a LEFT JOIN realm r ON r.id = a.realm_id LEFT JOIN user u ON u.id = a.user_id
             WHERE a.at >= ?1 AND (?2 IS NULL OR a.realm_id = ?2) AND (?3 IS NULL OR a.user_id = ?3)
             ORDER BY a.at, a.id",
        )?;
        let rows = stmt
            .query_map(
                params![filter.since, filter.realm_id, filter.user_id],
                |r| {
                    Ok(AuditRow {
                        at: r.get(0)?,
                        event: r.get(1)?,
                        realm: r.get(2)?,
                        email: r.get(3)?,
                        reason: r.get(4)?,
                        remote_addr: r.get(5)?,
                        user_agent: r.get(6)?,
                        detail: r.get(7)?,
                        instance: r.get(8)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}
