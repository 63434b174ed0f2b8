//! The `recovery_code` table (migration 9): single-use codes of the second factor (web.md
//! §4.1), as digests. Using one is one DELETE, so two requests never both accept a code.

use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{AuditEntry, RecoveryCodes, StoreResult};

/// Deletes every recovery code of the user.
pub(super) fn delete(conn: &mut dyn Conn, user_id: i64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM recovery_code WHERE user_id = $1"),
        params![user_id],
    )?)
}

impl<B: Backend> RecoveryCodes for B {
    fn replace_recovery_codes(
        &self,
        user_id: i64,
        hashes: &[String],
        now: f64,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            delete(conn, user_id)?;
            for hash in hashes {
                conn.execute(
                    sql!(
                        "INSERT INTO recovery_code (code_hash, user_id, created_at)
                         VALUES ($1, $2, $3)"
                    ),
                    params![hash, user_id, now],
                )?;
            }
            super::audit_log::insert(conn, audit)
        })
    }

    fn take_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool> {
        self.write(|conn| {
            let taken = conn.execute(
                sql!("DELETE FROM recovery_code WHERE code_hash = $1 AND user_id = $2"),
                params![hash, user_id],
            )?;
            Ok(taken > 0)
        })
    }

    fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64> {
        self.read(|conn| {
            Ok(conn.one(
                sql!("SELECT count(*) FROM recovery_code WHERE user_id = $1"),
                params![user_id],
                |r| r.int(0),
            )?)
        })
    }
}
