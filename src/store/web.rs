//! The web sign-in's tables (`schema.sql` migration 5): TOTP keys with their replay guard,
//! and the steps a browser takes between its password and its code. Step tokens arrive here
//! only as their digests.

use rusqlite::{OptionalExtension, params};

use super::{Store, USER_COLUMNS, User, user_from_row};

/// A user's TOTP key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpDevice {
    /// Base32; never logged (hence no `Debug`).
    pub secret: String,
    /// The newest accepted step, if any.
    pub last_step: Option<i64>,
}

/// What a step token stands for.
#[derive(Clone, PartialEq)]
pub struct LoginStep {
    pub user_id: i64,
    /// The username as typed at the password step: the rate-limit bucket of the codes.
    pub username: String,
    /// `None`: a code of the user's key. Some: a first code of this new key (base32).
    pub enrol_secret: Option<String>,
    /// Whether an accepted code finishes a sign-in (else a signed-in user enrols).
    pub finishes_login: bool,
    pub expires_at: f64,
}

impl Store {
    pub fn totp_device(&self, user_id: i64) -> rusqlite::Result<Option<TotpDevice>> {
        self.conn
            .prepare_cached("SELECT secret, last_step FROM totp_device WHERE user_id = ?1")?
            .query_row([user_id], |r| {
                Ok(TotpDevice {
                    secret: r.get(0)?,
                    last_step: r.get(1)?,
                })
            })
            .optional()
    }

    /// Gives the user this key (replacing any other), with `last_step` already used.
    pub fn set_totp_device(
        &self,
        user_id: i64,
        secret: &str,
        last_step: Option<i64>,
        now: f64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO totp_device (user_id, secret, last_step, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![user_id, secret, last_step, now])?;
        Ok(())
    }

    /// Removes the user's key; false if there was none.
    pub fn delete_totp_device(&self, user_id: i64) -> rusqlite::Result<bool> {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM totp_device WHERE user_id = ?1")?
            .execute([user_id])?;
        Ok(deleted > 0)
    }

    /// Records `step` as used, if it is later than the last used one: the replay guard, one
    /// conditional UPDATE, so two instances can never both accept one code.
    pub fn accept_totp_step(&self, user_id: i64, step: i64) -> rusqlite::Result<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE totp_device SET last_step = ?2
                 WHERE user_id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            )?
            .execute(params![user_id, step])?;
        Ok(changed == 1)
    }

    pub fn create_login_step(&self, token_hash: &str, step: &LoginStep) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO web_login_step
                   (token_hash, user_id, username, enrol_secret, finishes_login, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                token_hash,
                step.user_id,
                step.username,
                step.enrol_secret,
                step.finishes_login,
                step.expires_at
            ])?;
        Ok(())
    }

    /// The live step behind a token digest, with its user as they are now.
    pub fn login_step(
        &self,
        token_hash: &str,
        now: f64,
    ) -> rusqlite::Result<Option<(LoginStep, User)>> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        self.conn
            .prepare_cached(&format!(
                "SELECT {columns}, s.username, s.enrol_secret, s.finishes_login, s.expires_at
                 FROM web_login_step s JOIN user u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2"
            ))?
            .query_row(params![token_hash, now], |row| {
                let user = user_from_row(row)?;
                let step = LoginStep {
                    user_id: user.id,
                    username: row.get(9)?,
                    enrol_secret: row.get(10)?,
                    finishes_login: row.get(11)?,
                    expires_at: row.get(12)?,
                };
                Ok((step, user))
            })
            .optional()
    }

    pub fn delete_login_step(&self, token_hash: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM web_login_step WHERE token_hash = ?1")?
            .execute([token_hash])?;
        Ok(())
    }

    /// Drops steps that can no longer be taken.
    pub fn prune_login_steps(&self, now: f64) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM web_login_step WHERE expires_at <= ?1", [now])
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

    #[test]
    fn a_step_is_accepted_once_and_only_moving_forward() {
        let (_dir, store, id) = store_with_user();
        assert!(store.totp_device(id).unwrap().is_none());
        store.set_totp_device(id, "SECRET", None, 1.0).unwrap();
        assert!(store.accept_totp_step(id, 100).unwrap());
        assert!(!store.accept_totp_step(id, 100).unwrap());
        assert!(!store.accept_totp_step(id, 99).unwrap());
        assert!(store.accept_totp_step(id, 101).unwrap());
        assert_eq!(store.totp_device(id).unwrap().unwrap().last_step, Some(101));
        assert!(store.delete_totp_device(id).unwrap());
        assert!(!store.delete_totp_device(id).unwrap());
        assert!(!store.accept_totp_step(id, 200).unwrap());
    }

    #[test]
    fn steps_expire_and_are_pruned() {
        let (_dir, store, id) = store_with_user();
        let step = LoginStep {
            user_id: id,
            username: "IAGO@example.com".into(),
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
        assert_eq!(store.prune_login_steps(100.0).unwrap(), 1);
        store.create_login_step("digest", &step).unwrap();
        store.delete_login_step("digest").unwrap();
        assert!(store.login_step("digest", 0.0).unwrap().is_none());
    }
}
