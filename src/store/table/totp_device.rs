//! The `totp_device` table (web.md §4): a user's TOTP key and its replay guard. The guard is
//! one statement: of two instances given one code at once, the row lock lets one through.

use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{AuditEntry, StoreResult, TotpDevice, TotpDevices};

/// Deletes the user's key, if any; the number of rows deleted.
pub(super) fn delete(conn: &mut dyn Conn, user_id: i64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM totp_device WHERE user_id = $1"),
        params![user_id],
    )?)
}

impl<B: Backend> TotpDevices for B {
    fn totp_device(&self, user_id: i64) -> StoreResult<Option<TotpDevice>> {
        self.read(|conn| {
            Ok(conn.opt(
                sql!("SELECT secret, last_step FROM totp_device WHERE user_id = $1"),
                params![user_id],
                |r| {
                    Ok(TotpDevice {
                        secret: r.text(0)?,
                        last_step: r.maybe_int(1)?,
                    })
                },
            )?)
        })
    }

    fn set_totp_device(
        &self,
        user_id: i64,
        secret: &str,
        last_step: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO totp_device (user_id, secret, last_step, created_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret,
                       last_step = excluded.last_step, created_at = excluded.created_at"
                ),
                params![user_id, secret, last_step, audit.at],
            )?;
            super::audit_log::insert(conn, audit)
        })
    }

    fn delete_totp_device(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let deleted = delete(conn, user_id)?;
            if deleted > 0 {
                super::audit_log::insert(conn, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn accept_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        // A second instance's UPDATE of the same row waits for the first to commit, then
        // checks the condition again against the step the first recorded.
        self.read(|conn| {
            let changed = conn.execute(
                sql!(
                    "UPDATE totp_device SET last_step = $2
                     WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)"
                ),
                params![user_id, step],
            )?;
            Ok(changed == 1)
        })
    }
}
