//! The `totp_device` and `web_login_step` tables (web.md §3, §4). The replay guard and the
//! taking of a step are single statements: of two instances given one code, or one step
//! token, at once, the row lock lets exactly one through.

use super::Postgres;
use super::users::user_select;
use crate::store::{AuditEntry, LoginStep, SecondFactors, StoreResult, TotpDevice, User, row};

impl SecondFactors for Postgres {
    fn totp_device(&self, user_id: i64) -> StoreResult<Option<TotpDevice>> {
        let row = self.conn()?.db().query_opt(
            "SELECT secret, last_step FROM totp_device WHERE user_id = $1",
            &[&user_id],
        )?;
        row.map(|r| -> StoreResult<TotpDevice> {
            Ok(TotpDevice {
                secret: r.try_get(0)?,
                last_step: r.try_get(1)?,
            })
        })
        .transpose()
    }

    fn set_totp_device(
        &self,
        user_id: i64,
        secret: &str,
        last_step: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|db| {
            db.execute(
                "INSERT INTO totp_device (user_id, secret, last_step, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret,
                   last_step = EXCLUDED.last_step, created_at = EXCLUDED.created_at",
                &[&user_id, &secret, &last_step, &audit.at],
            )?;
            self.insert_audit(db, audit)
        })
    }

    fn delete_totp_device(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|db| {
            let deleted = db.execute("DELETE FROM totp_device WHERE user_id = $1", &[&user_id])?;
            if deleted > 0 {
                self.insert_audit(db, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn accept_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool> {
        // A second instance's UPDATE of the same row waits for the first to commit, then
        // checks the condition again against the step the first recorded.
        let changed = self.conn()?.db().execute(
            "UPDATE totp_device SET last_step = $2
             WHERE user_id = $1 AND (last_step IS NULL OR last_step < $2)",
            &[&user_id, &step],
        )?;
        Ok(changed == 1)
    }

    fn create_login_step(&self, token_hash: &str, step: &LoginStep) -> StoreResult<()> {
        self.conn()?.db().execute(
            "INSERT INTO web_login_step (token_hash, user_id, username, verified_hash,
               rehash, enrol_secret, finishes_login, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &token_hash,
                &step.user_id,
                &step.username,
                &step.verified_hash,
                &step.rehash,
                &step.enrol_secret,
                &step.finishes_login,
                &step.expires_at,
            ],
        )?;
        Ok(())
    }

    fn login_step(&self, token_hash: &str, now: f64) -> StoreResult<Option<(LoginStep, User)>> {
        let row = self.conn()?.db().query_opt(
            user_select!(
                ", s.username, s.verified_hash, s.rehash, s.enrol_secret, s.finishes_login, ",
                "s.expires_at FROM web_login_step s JOIN \"user\" u ON u.id = s.user_id ",
                "WHERE s.token_hash = $1 AND s.expires_at > $2"
            ),
            &[&token_hash, &now],
        )?;
        row.as_ref().map(row::login_step).transpose()
    }

    fn take_login_step(&self, token_hash: &str) -> StoreResult<bool> {
        let deleted = self.conn()?.db().execute(
            "DELETE FROM web_login_step WHERE token_hash = $1",
            &[&token_hash],
        )?;
        Ok(deleted > 0)
    }

    fn prune_login_steps(&self, now: f64) -> StoreResult<usize> {
        let deleted = self
            .conn()?
            .db()
            .execute("DELETE FROM web_login_step WHERE expires_at <= $1", &[&now])?;
        Ok(deleted as usize)
    }
}
