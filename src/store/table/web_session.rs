//! The `web_session` table (migration 6): browser sessions, found by the digests of their
//! ids. Each use is one statement, so two requests on one session are ordered by its row.

use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{SessionLimits, Sessions, StoreResult, User};

/// Drops sessions that are idle or old at `now`.
pub(super) fn prune(conn: &mut dyn Conn, now: f64, limits: SessionLimits) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM web_session WHERE last_seen_at <= $1 OR created_at <= $2"),
        params![now - limits.idle, now - limits.lifetime],
    )?)
}

impl<B: Backend> Sessions for B {
    fn create_session(&self, id_hash: &str, user_id: i64, now: f64) -> StoreResult<()> {
        self.read(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO web_session (id_hash, user_id, created_at, last_seen_at)
                     VALUES ($1, $2, $3, $3)"
                ),
                params![id_hash, user_id, now],
            )?;
            Ok(())
        })
    }

    fn touch_session(
        &self,
        id_hash: &str,
        now: f64,
        limits: SessionLimits,
    ) -> StoreResult<Option<User>> {
        self.read(|conn| {
            let user_id = conn.opt(
                sql!(
                    "UPDATE web_session SET last_seen_at = $2
                     WHERE id_hash = $1 AND last_seen_at > $3 AND created_at > $4
                     RETURNING user_id"
                ),
                params![id_hash, now, now - limits.idle, now - limits.lifetime],
                |r| r.int(0),
            )?;
            match user_id {
                Some(id) => super::user::by_id(conn, id),
                None => Ok(None),
            }
        })
    }

    fn session_started_at(&self, id_hash: &str) -> StoreResult<Option<f64>> {
        self.read(|conn| {
            Ok(conn.opt(
                sql!("SELECT created_at FROM web_session WHERE id_hash = $1"),
                params![id_hash],
                |r| r.real(0),
            )?)
        })
    }

    fn end_session(&self, id_hash: &str) -> StoreResult<()> {
        self.read(|conn| {
            conn.execute(
                sql!("DELETE FROM web_session WHERE id_hash = $1"),
                params![id_hash],
            )?;
            Ok(())
        })
    }
}
