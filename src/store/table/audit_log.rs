//! The `audit_log` table; every row names the instance that wrote it.

use crate::store::sql::{Backend, Conn, Sql, params, sql};
use crate::store::{Audit, AuditEntry, AuditFilter, AuditRow, StoreResult, instance_name};

pub(super) fn insert(conn: &mut dyn Conn, entry: &AuditEntry) -> StoreResult<()> {
    conn.execute(
        sql!(
            "INSERT INTO audit_log (at, event, realm_id, user_id, reason, remote_addr, user_agent, detail, instance)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        params![
            entry.at,
            entry.event.as_str(),
            entry.realm_id,
            entry.user_id,
            &entry.reason,
            &entry.remote_addr,
            &entry.user_agent,
            &entry.detail,
            instance_name(),
        ],
    )?;
    Ok(())
}

impl<B: Backend> Audit for B {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.read(|conn| insert(conn, entry))
    }

    fn audit_rows(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        self.read(|conn| {
            Ok(conn.all(
                sql!(
                    "SELECT a.at, a.event, r.subdomain, u.delivery_email, a.reason, a.remote_addr, a.user_agent, a.detail, a.instance
                     FROM audit_log a LEFT JOIN realm r ON r.id = a.realm_id LEFT JOIN \"user\" u ON u.id = a.user_id
                     WHERE a.at >= $1 AND (CAST($2 AS BIGINT) IS NULL OR a.realm_id = $2)
                       AND (CAST($3 AS BIGINT) IS NULL OR a.user_id = $3)
                     ORDER BY a.at, a.id"
                ),
                params![filter.since, filter.realm_id, filter.user_id],
                |r| {
                    Ok(AuditRow {
                        at: r.real(0)?,
                        event: r.text(1)?,
                        realm: r.maybe_text(2)?,
                        email: r.maybe_text(3)?,
                        reason: r.maybe_text(4)?,
                        remote_addr: r.maybe_text(5)?,
                        user_agent: r.maybe_text(6)?,
                        detail: r.maybe_text(7)?,
                        instance: r.maybe_text(8)?,
                    })
                },
            )?)
        })
    }
}

/// Drops rows written before `before`: past their retention.
/// A batch of pruning ([`super::prune`]): at most `$2` of the rows before `$1`.
pub(super) static PRUNE: Sql =
    Sql::new("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 LIMIT $2)");
