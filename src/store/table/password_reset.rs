//! The `password_reset` table (migration 6): a user's one reset link, found by its token's
//! digest. Using a link takes it in the transaction that sets the password, so one link
//! changes a password once, whatever the requests racing on it (web.md §6).

use crate::store::row::{self, select_user};
use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{AuditEntry, ResetLinks, StoreResult, User};

/// Drops links that expired by `now`.
pub(super) fn prune(conn: &mut dyn Conn, now: f64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM password_reset WHERE expires_at <= $1"),
        params![now],
    )?)
}

impl<B: Backend> ResetLinks for B {
    fn replace_reset_link(
        &self,
        user_id: i64,
        token_hash: &str,
        now: f64,
        expires_at: f64,
    ) -> StoreResult<()> {
        // An upsert on the user, not a delete and an insert: two instances mailing one
        // user at once leave one link, the later, instead of a unique violation.
        self.durably(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO password_reset (token_hash, user_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash,
                       created_at = excluded.created_at, expires_at = excluded.expires_at"
                ),
                params![token_hash, user_id, now, expires_at],
            )?;
            Ok(())
        })
    }

    fn reset_link_user(&self, token_hash: &str, now: f64) -> StoreResult<Option<User>> {
        let holder = sql!(select_user!(
            "FROM password_reset p JOIN \"user\" u ON u.id = p.user_id ",
            "WHERE p.token_hash = $1 AND p.expires_at > $2"
        ));
        self.read(|conn| Ok(conn.opt(holder, params![token_hash, now], row::user)?))
    }

    fn reset_password(
        &self,
        token_hash: &str,
        now: f64,
        user_id: i64,
        hash: &str,
        clear_bucket: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.durably(|conn| {
            // The DELETE is the taking: of two transactions on one link, the second finds
            // no row (PostgreSQL re-checks it after the first commits; SQLite's write lock
            // runs them one after the other) and writes nothing.
            let taken = conn.execute(
                sql!(
                    "DELETE FROM password_reset
                     WHERE token_hash = $1 AND user_id = $2 AND expires_at > $3"
                ),
                params![token_hash, user_id, now],
            )?;
            if taken == 0 {
                return Ok(false);
            }
            super::password::set(conn, user_id, hash, clear_bucket, audit)?;
            Ok(true)
        })
    }
}
