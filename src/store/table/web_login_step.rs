//! The `web_login_step` table (web.md §3): a browser between its password and its code.
//! Taking a step is one statement, so of two requests with one step token one gets it.

use crate::store::row::{self, select_user};
use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{LoginStep, LoginSteps, StoreResult, User};

/// Drops every step of the user's: inside a deletion.
pub(super) fn delete(conn: &mut dyn Conn, user_id: i64) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM web_login_step WHERE user_id = $1"),
        params![user_id],
    )?;
    Ok(())
}

/// Drops steps whose time ran out by `now`.
pub(super) fn prune(conn: &mut dyn Conn, now: f64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM web_login_step WHERE expires_at <= $1"),
        params![now],
    )?)
}

impl<B: Backend> LoginSteps for B {
    fn create_login_step(&self, token_hash: &str, step: &LoginStep) -> StoreResult<()> {
        self.read(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO web_login_step (token_hash, user_id, username, verified_hash,
                       rehash, enrol_secret, finishes_login, expires_at, method)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                params![
                    token_hash,
                    step.user_id,
                    &step.username,
                    &step.verified_hash,
                    &step.rehash,
                    &step.enrol_secret,
                    step.finishes_login,
                    step.expires_at,
                    &step.method,
                ],
            )?;
            Ok(())
        })
    }

    fn login_step(&self, token_hash: &str, now: f64) -> StoreResult<Option<(LoginStep, User)>> {
        let live = sql!(select_user!(
            ", s.username, s.verified_hash, s.rehash, s.enrol_secret, s.finishes_login, ",
            "s.expires_at, s.method FROM web_login_step s JOIN \"user\" u ON u.id = s.user_id ",
            "WHERE s.token_hash = $1 AND s.expires_at > $2"
        ));
        self.read(|conn| Ok(conn.opt(live, params![token_hash, now], row::login_step)?))
    }

    fn take_login_step(&self, token_hash: &str) -> StoreResult<bool> {
        self.read(|conn| {
            let deleted = conn.execute(
                sql!("DELETE FROM web_login_step WHERE token_hash = $1"),
                params![token_hash],
            )?;
            Ok(deleted > 0)
        })
    }
}
