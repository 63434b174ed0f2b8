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
            .prepare_cached("DELETE FROM web_session WHERE user_id = ?1 AND id_hash IS NOT ?2")?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewUser;

    fn store_with_user() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let root = store.require_realm("").unwrap();
        let user = NewUser {
            email: "iago@example.com".into(),
            full_name: "Iago".into(),
            role: 200,
            password: None,
            is_active: true,
            api_key: None,
        };
        let id = store.create_user(&root, &user).unwrap();
        (dir, store, id)
    }

    const LIMITS: SessionLimits = SessionLimits {
        idle: 100.0,
        lifetime: 1000.0,
    };

    #[test]
    fn sessions_end_when_idle_or_old() {
        let (_dir, store, id) = store_with_user();
        store.create_session("s", id, 0.0).unwrap();
        // Each use restarts the idle clock, up to the absolute lifetime.
        for at in [
            90.0, 180.0, 270.0, 360.0, 450.0, 540.0, 630.0, 720.0, 810.0, 900.0, 990.0,
        ] {
            assert_eq!(
                store.touch_session("s", at, LIMITS).unwrap(),
                Some(id),
                "{at}"
            );
        }
        assert_eq!(store.touch_session("s", 1000.0, LIMITS).unwrap(), None);
        store.create_session("t", id, 0.0).unwrap();
        assert_eq!(
            store.touch_session("t", 100.0, LIMITS).unwrap(),
            None,
            "idle"
        );
        assert_eq!(store.touch_session("unknown", 1.0, LIMITS).unwrap(), None);
        assert_eq!(store.prune_self_service(1000.0, LIMITS).unwrap(), 2);
    }

    #[test]
    fn a_password_change_keeps_only_the_session_that_made_it() {
        let (_dir, store, id) = store_with_user();
        for s in ["a", "b", "c"] {
            store.create_session(s, id, 0.0).unwrap();
        }
        store.replace_reset_token(id, "r", 0.0, 10.0).unwrap();
        store.change_password(id, "hash", Some("b")).unwrap();
        let live = |s| store.touch_session(s, 1.0, LIMITS).unwrap().is_some();
        assert_eq!((live("a"), live("b"), live("c")), (false, true, false));
        assert_eq!(store.reset_token_user("r", 1.0).unwrap(), None);
        store.change_password(id, "hash", None).unwrap();
        assert!(!live("b"));
    }

    #[test]
    fn one_reset_link_per_user_until_it_expires() {
        let (_dir, store, id) = store_with_user();
        store.replace_reset_token(id, "old", 0.0, 10.0).unwrap();
        assert_eq!(store.reset_token_user("old", 5.0).unwrap(), Some(id));
        store.replace_reset_token(id, "new", 5.0, 15.0).unwrap();
        assert_eq!(store.reset_token_user("old", 6.0).unwrap(), None);
        assert_eq!(store.reset_token_user("new", 14.9).unwrap(), Some(id));
        assert_eq!(store.reset_token_user("new", 15.0).unwrap(), None);
        store.create_session("s", id, 0.0).unwrap();
        store.set_user_active(id, false).unwrap();
        assert_eq!(store.touch_session("s", 1.0, LIMITS).unwrap(), None);
        assert_eq!(store.reset_token_user("new", 6.0).unwrap(), None);
    }
}
