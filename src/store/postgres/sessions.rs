//! The `password_reset` and `web_session` tables (migration 6): reset links and browser
//! sessions, found by the digests of their secrets. Each is one statement, so two instances
//! using one link or one session at once are ordered by its row lock.

use postgres::GenericClient;

use super::Postgres;
use super::pool::Db;
use super::users::user_select;
use crate::store::{ResetLinks, SessionLimits, Sessions, StoreResult, User, row};

/// Ends every session and the reset link of a user: inside the transaction of a password
/// change or a deactivation.
pub(super) fn end_all<C: GenericClient>(db: &mut Db<'_, C>, user_id: i64) -> StoreResult<()> {
    db.execute("DELETE FROM web_session WHERE user_id = $1", &[&user_id])?;
    db.execute("DELETE FROM password_reset WHERE user_id = $1", &[&user_id])?;
    Ok(())
}

impl ResetLinks for Postgres {
    fn replace_reset_link(
        &self,
        user_id: i64,
        token_hash: &str,
        now: f64,
        expires_at: f64,
    ) -> StoreResult<()> {
        // An upsert on the user, not a delete and an insert: two instances mailing one
        // user at once leave one link, the later, instead of a unique violation.
        self.durably(|db| {
            db.execute(
                "INSERT INTO password_reset (token_hash, user_id, created_at, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE SET token_hash = EXCLUDED.token_hash,
                   created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at",
                &[&token_hash, &user_id, &now, &expires_at],
            )?;
            Ok(())
        })
    }

    fn reset_link_user(&self, token_hash: &str, now: f64) -> StoreResult<Option<User>> {
        let row = self.conn()?.db().query_opt(
            user_select!(
                "FROM password_reset p JOIN \"user\" u ON u.id = p.user_id ",
                "WHERE p.token_hash = $1 AND p.expires_at > $2"
            ),
            &[&token_hash, &now],
        )?;
        row.as_ref().map(row::user).transpose()
    }
}

impl Sessions for Postgres {
    fn create_session(&self, id_hash: &str, user_id: i64, now: f64) -> StoreResult<()> {
        self.conn()?.db().execute(
            "INSERT INTO web_session (id_hash, user_id, created_at, last_seen_at)
             VALUES ($1, $2, $3, $3)",
            &[&id_hash, &user_id, &now],
        )?;
        Ok(())
    }

    fn touch_session(
        &self,
        id_hash: &str,
        now: f64,
        limits: SessionLimits,
    ) -> StoreResult<Option<User>> {
        let row = self.conn()?.db().query_opt(
            concat!(
                "WITH s AS (UPDATE web_session SET last_seen_at = $2 ",
                "WHERE id_hash = $1 AND last_seen_at > $2::float8 - $3::float8 ",
                "AND created_at > $2::float8 - $4::float8 ",
                "RETURNING user_id) ",
                user_select!("FROM s JOIN \"user\" u ON u.id = s.user_id")
            ),
            &[&id_hash, &now, &limits.idle, &limits.lifetime],
        )?;
        row.as_ref().map(row::user).transpose()
    }

    fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        self.conn()?
            .db()
            .execute("DELETE FROM web_session WHERE id_hash = $1", &[&id_hash])?;
        Ok(())
    }

    fn prune_sessions(&self, now: f64, limits: SessionLimits) -> StoreResult<usize> {
        let mut conn = self.conn()?;
        let mut db = conn.db();
        let sessions = db.execute(
            "DELETE FROM web_session
             WHERE last_seen_at <= $1::float8 - $2::float8 OR created_at <= $1::float8 - $3::float8",
            &[&now, &limits.idle, &limits.lifetime],
        )?;
        let links = db.execute("DELETE FROM password_reset WHERE expires_at <= $1", &[&now])?;
        Ok((sessions + links) as usize)
    }
}
