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

/// The end of a batch of pruning ([`super::prune`]): the time of the `$3`th oldest row
/// written after `$1` and before `$2` (the retention), NULL when there is none.
pub(super) static PRUNE_WINDOW: Sql = Sql::new(
    "SELECT max(at) FROM (SELECT at FROM audit_log WHERE at > $1 AND at < $2 ORDER BY at LIMIT $3) AS w",
);

/// A batch of pruning: the rows written after `$1` and up to `$2` (a window's end), except
/// each user's newest row of the events listed in `$3` (`,event,event,`). The newest by
/// time, then by id; a row whose user is gone is nobody's newest.
pub(super) static PRUNE: Sql = Sql::dialects(
    "DELETE FROM audit_log WHERE at > $1 AND at <= $2 AND NOT (
         user_id IS NOT NULL AND instr($3, ',' || event || ',') > 0
         AND EXISTS (SELECT 1 FROM \"user\" u WHERE u.id = audit_log.user_id)
         AND NOT EXISTS (SELECT 1 FROM audit_log b
                         WHERE b.user_id = audit_log.user_id AND b.event = audit_log.event
                           AND (b.at > audit_log.at OR (b.at = audit_log.at AND b.id > audit_log.id))))",
    "DELETE FROM audit_log WHERE at > $1 AND at <= $2 AND NOT (
         user_id IS NOT NULL AND strpos($3, ',' || event || ',') > 0
         AND EXISTS (SELECT 1 FROM \"user\" u WHERE u.id = audit_log.user_id)
         AND NOT EXISTS (SELECT 1 FROM audit_log b
                         WHERE b.user_id = audit_log.user_id AND b.event = audit_log.event
                           AND (b.at > audit_log.at OR (b.at = audit_log.at AND b.id > audit_log.id))))",
);
