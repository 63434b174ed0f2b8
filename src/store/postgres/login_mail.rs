//! The `login_mail_off` table (migration 9): users who turned login mail off.

use super::Postgres;
use crate::store::{AuditEntry, LoginMail, StoreResult};

impl LoginMail for Postgres {
    fn login_mail_off(&self, user_id: i64) -> StoreResult<bool> {
        let row = self.conn()?.db().query_one(
            "SELECT EXISTS (SELECT 1 FROM login_mail_off WHERE user_id = $1)",
            &[&user_id],
        )?;
        Ok(row.try_get(0)?)
    }

    fn set_login_mail(&self, user_id: i64, on: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|db| {
            let sql = if on {
                "DELETE FROM login_mail_off WHERE user_id = $1"
            } else {
                "INSERT INTO login_mail_off (user_id) VALUES ($1) ON CONFLICT DO NOTHING"
            };
            db.execute(sql, &[&user_id])?;
            self.insert_audit(db, audit)
        })
    }
}
