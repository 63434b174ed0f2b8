//! The `totp_device` and `web_login_step` tables (web.md §3, §4).

use rusqlite::{OptionalExtension, params};

use super::Sqlite;
use crate::store::{AuditEntry, LoginStep, SecondFactors, StoreResult, TotpDevice, User, row};

impl SecondFactors for Sqlite {
    fn totp_device(&self, user_id: i64) -> StoreResult<Option<TotpDevice>> {
        Ok(self
            .conn
            .prepare_cached("SELECT secret, last_step FROM totp_device WHERE user_id = ?1")?
            .query_row([user_id], |r| {
                Ok(TotpDevice {
                    secret: r.get(0)?,
                    last_step: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn set_totp_device(
        &self,
        user_id: i64,
        secret: &str,
        last_step: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO totp_device (user_id, secret, last_step, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user_id, secret, last_step, audit.at])?;
            super::audit::insert(conn, audit)
        })
    }

    fn delete_totp_device(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM totp_device WHERE user_id = ?1")?
                .execute([user_id])?;
            if deleted > 0 {
                super::audit::insert(conn, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn accept_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE totp_device SET last_step = ?2
                 WHERE user_id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            )?
            .execute(params![user_id, step])?;
        Ok(changed == 1)
    }

    fn create_login_step(&self, token_hash: &str, step: &LoginStep) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO web_login_step (token_hash, user_id, username, verified_hash,
                   rehash, enrol_secret, finishes_login, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                token_hash,
                step.user_id,
                step.username,
                step.verified_hash,
                step.rehash,
                step.enrol_secret,
                step.finishes_login,
                step.expires_at
            ])?;
        Ok(())
    }

    fn login_step(&self, token_hash: &str, now: f64) -> StoreResult<Option<(LoginStep, User)>> {
        let found = self
            .conn
            .prepare_cached(&format!(
                "SELECT {}, s.username, s.verified_hash, s.rehash, s.enrol_secret,
                   s.finishes_login, s.expires_at
                 FROM web_login_step s JOIN user u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                super::users::COLUMNS
            ))?
            .query_row(params![token_hash, now], |found| row::login_step(found))
            .optional()?;
        Ok(found)
    }

    fn take_login_step(&self, token_hash: &str) -> StoreResult<bool> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM web_login_step WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(deleted > 0)
    }

    fn prune_login_steps(&self, now: f64) -> StoreResult<usize> {
        Ok(self
            .conn
            .execute("DELETE FROM web_login_step WHERE expires_at <= ?1", [now])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AuditEvent;

    use super::super::store_with_user;

    #[test]
    fn a_step_is_accepted_once_and_only_moving_forward() {
        let (_dir, store, id) = store_with_user();
        let audit = AuditEntry::new(AuditEvent::TotpEnrolled, None, Some(id));
        assert!(store.totp_device(id).unwrap().is_none());
        store.set_totp_device(id, "SECRET", None, &audit).unwrap();
        assert!(store.accept_totp_step(id, 100).unwrap());
        assert!(!store.accept_totp_step(id, 100).unwrap());
        assert!(!store.accept_totp_step(id, 99).unwrap());
        assert!(store.accept_totp_step(id, 101).unwrap());
        assert_eq!(store.totp_device(id).unwrap().unwrap().last_step, Some(101));
        assert!(store.delete_totp_device(id, &audit).unwrap());
        assert!(!store.delete_totp_device(id, &audit).unwrap());
        assert!(!store.accept_totp_step(id, 200).unwrap());
    }

    #[test]
    fn steps_expire_are_taken_once_and_are_pruned() {
        let (_dir, store, id) = store_with_user();
        let step = LoginStep {
            user_id: id,
            username: "IAGO@example.com".into(),
            verified_hash: Some("hash".into()),
            rehash: None,
            enrol_secret: Some("NEW".into()),
            finishes_login: true,
            expires_at: 100.0,
        };
        store.create_login_step("digest", &step).unwrap();
        let (found, user) = store.login_step("digest", 99.0).unwrap().unwrap();
        assert!(found == step);
        assert_eq!(user.delivery_email, "iago@example.com");
        assert!(store.login_step("digest", 100.0).unwrap().is_none());
        assert!(store.login_step("other", 0.0).unwrap().is_none());
        assert!(store.take_login_step("digest").unwrap());
        assert!(!store.take_login_step("digest").unwrap());
        store.create_login_step("digest", &step).unwrap();
        assert_eq!(store.prune_login_steps(100.0).unwrap(), 1);
    }
}
