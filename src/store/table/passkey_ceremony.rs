//! The `passkey_ceremony` table (migration 11): a passkey ceremony between its options and
//! the browser's answer (web.md §9). Taking one is one `DELETE … RETURNING`, so a ceremony
//! is finished at most once, by whichever instance the answer reaches.

use crate::store::passkey::Ceremony;
use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{PasskeyCeremonies, StoreResult};

/// Drops ceremonies whose time ran out by `now`.
pub(super) fn prune(conn: &mut dyn Conn, now: f64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM passkey_ceremony WHERE expires_at <= $1"),
        params![now],
    )?)
}

impl<B: Backend> PasskeyCeremonies for B {
    fn begin_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()> {
        self.read(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO passkey_ceremony (id_hash, state, expires_at)
                     VALUES ($1, $2, $3)"
                ),
                params![&ceremony.id_digest, &ceremony.state, ceremony.expires_at],
            )?;
            Ok(())
        })
    }

    fn take_ceremony(&self, id_digest: &str) -> StoreResult<Option<Ceremony>> {
        let take = sql!(
            "DELETE FROM passkey_ceremony WHERE id_hash = $1 RETURNING id_hash, state, expires_at"
        );
        self.read(|conn| {
            Ok(conn.opt(take, params![id_digest], |r| {
                Ok(Ceremony {
                    id_digest: r.text(0)?,
                    state: r.text(1)?,
                    expires_at: r.real(2)?,
                })
            })?)
        })
    }
}
