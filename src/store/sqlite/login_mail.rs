//! The `login_mail_off` table (`schema.sql`, migration 9): users who turned login mail off.

use super::Sqlite;
use crate::store::{AuditEntry, LoginMail, StoreResult};

impl LoginMail for Sqlite {
    fn login_mail_off(&self, user_id: i64) -> StoreResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM login_mail_off WHERE user_id = ?1)")?
            .query_row([user_id], |r| r.get(0))?)
    }

    fn set_login_mail(&self, user_id: i64, on: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            let sql = if on {
                "DELETE FROM login_mail_off WHERE user_id = ?1"
            } else {
                "INSERT OR IGNORE INTO login_mail_off (user_id) VALUES (?1)"
            };
            conn.prepare_cached(sql)?.execute([user_id])?;
            super::audit::insert(conn, audit)
        })
    }
}
