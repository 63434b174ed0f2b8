//! The `recovery_code` table (migration 9): single-use codes, as digests. Using one is one
//! statement, so two instances never both accept a code.

use super::Postgres;
use crate::store::{AuditEntry, RecoveryCodes, StoreResult};

impl RecoveryCodes for Postgres {
    fn replace_recovery_codes(
        &self,
        user_id: i64,
        hashes: &[String],
        now: f64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|db| {
            db.execute("DELETE FROM recovery_code WHERE user_id = $1", &[&user_id])?;
            for hash in hashes {
                db.execute(
                    "INSERT INTO recovery_code (code_hash, user_id, created_at) VALUES ($1, $2, $3)",
                    &[hash, &user_id, &now],
                )?;
            }
            self.insert_audit(db, audit)
        })
    }

    fn take_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool> {
        let taken = self.conn()?.db().execute(
            "DELETE FROM recovery_code WHERE code_hash = $1 AND user_id = $2",
            &[&hash, &user_id],
        )?;
        Ok(taken > 0)
    }

    fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64> {
        let row = self.conn()?.db().query_one(
            "SELECT count(*) FROM recovery_code WHERE user_id = $1",
            &[&user_id],
        )?;
        Ok(row.try_get(0)?)
    }
}
