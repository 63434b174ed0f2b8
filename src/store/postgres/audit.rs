//! The `audit_log` table; every row names the instance that wrote it.

use postgres::GenericClient;

use super::Postgres;
use super::pool::Db;
use crate::store::{Audit, AuditEntry, AuditFilter, AuditRow, StoreResult, instance_name};

impl Postgres {
    pub(super) fn insert_audit<C: GenericClient>(
        &self,
        db: &mut Db<'_, C>,
        entry: &AuditEntry,
    ) -> StoreResult<()> {
        db.execute(
            "INSERT INTO audit_log (at, event, realm_id, user_id, reason, remote_addr, user_agent, detail, instance)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &entry.at,
                &entry.event.as_str(),
                &entry.realm_id,
                &entry.user_id,
                &entry.reason,
                &entry.remote_addr,
                &entry.user_agent,
                &entry.detail,
                &instance_name(),
            ],
        )?;
        Ok(())
    }
}

impl Audit for Postgres {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.insert_audit(&mut self.conn()?.db(), entry)
    }

    fn audit_rows(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let rows = self.conn()?.db().query(
            "SELECT a.at, a.event, r.subdomain, u.delivery_email, a.reason, a.remote_addr, a.user_agent, a.detail, a.instance
             FROM audit_log a LEFT JOIN realm r ON r.id = a.realm_id LEFT JOIN \"user\" u ON u.id = a.user_id
             WHERE a.at >= $1 AND ($2::bigint IS NULL OR a.realm_id = $2) AND ($3::bigint IS NULL OR a.user_id = $3)
             ORDER BY a.at, a.id",
            &[&filter.since, &filter.realm_id, &filter.user_id],
        )?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    at: r.try_get(0)?,
                    event: r.try_get(1)?,
                    realm: r.try_get(2)?,
                    email: r.try_get(3)?,
                    reason: r.try_get(4)?,
                    remote_addr: r.try_get(5)?,
                    user_agent: r.try_get(6)?,
                    detail: r.try_get(7)?,
                    instance: r.try_get(8)?,
                })
            })
            .collect()
    }
}
