//! The `recovery_code` table (`schema.sql`, migration 9): single-use codes, as digests.

use rusqlite::params;

use super::Sqlite;
use crate::store::{AuditEntry, RecoveryCodes, StoreResult};

impl RecoveryCodes for Sqlite {
    fn replace_recovery_codes(
        &self,
        user_id: i64,
        hashes: &[String],
        now: f64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached("DELETE FROM recovery_code WHERE user_id = ?1")?
                .execute([user_id])?;
            for hash in hashes {
                conn.prepare_cached(
                    "INSERT INTO recovery_code (code_hash, user_id, created_at) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![hash, user_id, now])?;
            }
            super::audit::insert(conn, audit)
        })
    }

    fn take_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool> {
        let taken = self
            .conn
            .prepare_cached("DELETE FROM recovery_code WHERE code_hash = ?1 AND user_id = ?2")?
            .execute(params![hash, user_id])?;
        Ok(taken > 0)
    }

    fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) FROM recovery_code WHERE user_id = ?1")?
            .query_row([user_id], |r| r.get(0))?)
    }
}
