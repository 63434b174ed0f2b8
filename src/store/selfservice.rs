//! The self-service tables (`schema.sql` migration 5): reset links and browser sessions, and
//! the password change that ends both. Secrets arrive here only as their digests.

use rusqlite::{OptionalExtension, params};

use super::{Store, USER_COLUMNS, user_from_row};
use crate::store::User;

/// How long a session lives: idle at most `idle` seconds, and at most `lifetime` in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionLimits {
    pub idle: f64,
    pub lifetime: f64,
}

impl Store {
    pub fn user_by_id(&self, user_id: i64) -> rusqlite::Result<Option<User>> {
        self.conn
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM user WHERE id = ?1"))?
            .query_row([user_id], user_from_row)
            .optional()
    }

    /// Makes `token_hash` the user's only reset link, valid until `expires_at`.
    pub fn replace_reset_token(
        &self,
        user_id: i64,
        token_hash: &str,
        now: f64,
        expires_at: f64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM password_reset WHERE user_id = ?1")?
            .execute([user_id])?;
        self.conn
            .prepare_cached(
                "INSERT INTO password_reset (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token_hash, user_id, now, expires_at])?;
        Ok(())
    }

    /// The user a live reset link belongs to.
    pub fn reset_token_user(&self, token_hash: &str, now: f64) -> rusqlite::Result<Option<i64>> {
        self.conn
            .prepare_cached(
                "SELECT user_id FROM password_reset WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![token_hash, now], |r| r.get(0))
            .optional()
    }

    /// A person's new password: the hash replaced, their reset link and every session but
    /// `keep_session` (the one that made the change, if any) ended. The caller clears the
    /// username's rate-limit buckets and audits, in the same transaction.
    pub fn change_password(
        &self,
        user_id: i64,
        hash: &str,
        keep_session: Option<&str>,
    ) -> rusqlite::Result<()> {
        self.set_password_hash(user_id, hash)?;
        self.conn
            .prepare_cached("DELETE FROM password_reset WHERE user_id = ?1")?
            .execute([user_id])?;
        self.conn
            .prepare_cached(
                "DELETE FROM web_session WHERE user_id = ?1 AND id_hash IS NOT ?2",
            )?
            .execute(params![user_id, keep_session])?;
        Ok(())
    }

    /// Ends every session and reset link of a user (deactivation).
    pub fn end_user_sessions(&self, user_id: i64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM web_session WHERE user_id = ?1")?
            .execute([user_id])?;
        self.conn
            .prepare_cached("DELETE FROM password_reset WHERE user_id = ?1")?
            .execute([user_id])?;
        Ok(())
    }

    pub fn create_session(&self, id_hash: &str, user_id: i64, now: f64) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO web_session (id_hash, user_id, created_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![id_hash, user_id, now])?;
        Ok(())
    }

    /// The user of a live session, whose idle clock restarts now.
    pub fn touch_session(
        &self,
        id_hash: &str,
        now: f64,
        limits: SessionLimits,
    ) -> rusqlite::Result<Option<i64>> {
        let user_id = self
            .conn
            .prepare_cached(
                "UPDATE web_session SET last_seen_at = ?2
                 WHERE id_hash = ?1 AND last_seen_at > ?2 - ?3 AND created_at > ?2 - ?4
                 RETURNING user_id",
            )?
            .query_row(params![id_hash, now, limits.idle, limits.lifetime], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(user_id)
    }

    pub fn end_session(&self, id_hash: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM web_session WHERE id_hash = ?1")?
            .execute([id_hash])?;
        Ok(())
    }

    /// Drops sessions and reset links that can no longer be used.
    pub fn prune_self_service(&self, now: f64, limits: SessionLimits) -> rusqlite::Result<usize> {
        let sessions = self.conn.execute(
            "DELETE FROM web_session WHERE last_seen_at <= ?1 - ?2 OR created_at <= ?1 - ?3",
            params![now, limits.idle, limits.lifetime],
        )?;
        let links = self
            .conn
            .execute("DELETE FROM password_reset WHERE expires_at <= ?1", [now])?;
        Ok(sessions + links)
    }
}
