//! The `password_reset` and `web_session` tables (`schema.sql`, migration 6): reset links
//! and browser sessions, found by the digests of their secrets.

use rusqlite::{Connection, OptionalExtension, params};

use super::Sqlite;
use crate::store::{ResetLinks, SessionLimits, Sessions, StoreResult, User};

/// Ends every session and the reset link of a user: inside the transaction of a password
/// change or a deactivation.
pub(super) fn end_all(conn: &Connection, user_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM web_session WHERE user_id = ?1")?
        .execute([user_id])?;
    conn.prepare_cached("DELETE FROM password_reset WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}

impl ResetLinks for Sqlite {
    fn replace_reset_link(
        &self,
        user_id: i64,
        token_hash: &str,
        now: f64,
        expires_at: f64,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached("DELETE FROM password_reset WHERE user_id = ?1")?
                .execute([user_id])?;
            conn.prepare_cached(
                "INSERT INTO password_reset (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token_hash, user_id, now, expires_at])?;
            Ok(())
        })
    }

    fn reset_link_user(&self, token_hash: &str, now: f64) -> StoreResult<Option<User>> {
        let user_id: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT user_id FROM password_reset WHERE token_hash = ?1 AND expires_at > ?2",
            )?
            .query_row(params![token_hash, now], |r| r.get(0))
            .optional()?;
        match user_id {
            Some(id) => Ok(super::users::by_id(&self.conn, id)?),
            None => Ok(None),
        }
    }
}

impl Sessions for Sqlite {
    fn create_session(&self, id_hash: &str, user_id: i64, now: f64) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO web_session (id_hash, user_id, created_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![id_hash, user_id, now])?;
        Ok(())
    }

    fn touch_session(
        &self,
        id_hash: &str,
        now: f64,
        limits: SessionLimits,
    ) -> StoreResult<Option<User>> {
        let user_id: Option<i64> = self
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
        match user_id {
            Some(id) => Ok(super::users::by_id(&self.conn, id)?),
            None => Ok(None),
        }
    }

    fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM web_session WHERE id_hash = ?1")?
            .execute([id_hash])?;
        Ok(())
    }

    fn prune_sessions(&self, now: f64, limits: SessionLimits) -> StoreResult<usize> {
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
    use crate::store::{AuditEntry, AuditEvent, Users};

    use super::super::store_with_user;

    const LIMITS: SessionLimits = SessionLimits {
        idle: 100.0,
        lifetime: 1000.0,
    };

    fn live(store: &Sqlite, id_hash: &str, at: f64) -> bool {
        store.touch_session(id_hash, at, LIMITS).unwrap().is_some()
    }

    #[test]
    fn sessions_end_when_idle_or_old() {
        let (_dir, store, _) = store_with_user();
        store.create_session("s", 1, 0.0).unwrap();
        // Each use restarts the idle clock, up to the absolute lifetime.
        for step in 1..=11 {
            assert!(live(&store, "s", f64::from(step) * 90.0), "{step}");
        }
        assert!(!live(&store, "s", 1000.0));
        store.create_session("t", 1, 0.0).unwrap();
        assert!(!live(&store, "t", 100.0), "idle");
        assert!(!live(&store, "unknown", 1.0));
        assert_eq!(store.prune_sessions(1000.0, LIMITS).unwrap(), 2);
    }

    #[test]
    fn a_password_change_or_deactivation_ends_sessions_and_the_link() {
        let (_dir, store, id) = store_with_user();
        let audit = AuditEntry::new(AuditEvent::PasswordChanged, None, Some(id));
        for s in ["a", "b"] {
            store.create_session(s, id, 0.0).unwrap();
        }
        store.replace_reset_link(id, "r", 0.0, 10.0).unwrap();
        store.set_password(id, "hash", "user:x", &audit).unwrap();
        assert!(!live(&store, "a", 1.0) && !live(&store, "b", 1.0));
        assert_eq!(store.reset_link_user("r", 1.0).unwrap(), None);
        store.create_session("c", id, 0.0).unwrap();
        store.replace_reset_link(id, "r", 0.0, 10.0).unwrap();
        store.set_user_active(id, false, &audit).unwrap();
        assert!(!live(&store, "c", 1.0));
        assert_eq!(store.reset_link_user("r", 1.0).unwrap(), None);
    }

    #[test]
    fn one_reset_link_per_user_until_it_expires() {
        let (_dir, store, id) = store_with_user();
        store.replace_reset_link(id, "old", 0.0, 10.0).unwrap();
        assert_eq!(store.reset_link_user("old", 5.0).unwrap().unwrap().id, id);
        store.replace_reset_link(id, "new", 5.0, 15.0).unwrap();
        assert_eq!(store.reset_link_user("old", 6.0).unwrap(), None);
        assert!(store.reset_link_user("new", 14.9).unwrap().is_some());
        assert_eq!(store.reset_link_user("new", 15.0).unwrap(), None);
    }
}
