//! Pruning, once for every table that grows: what no rule can see any more goes.

use crate::store::sql::{Backend, Conn, Sql, params};
use crate::store::{Prune, Pruning, StoreResult};

/// The most rows of a table that grows with every request (rate-limit events, audit rows)
/// one call deletes, in one statement: a million at once held the write lock for seconds,
/// past the busy timeout of the logins waiting for it.
const BATCH: i64 = 10_000;

impl<B: Backend> Pruning for B {
    fn prune(&self, prune: &Prune) -> StoreResult<u64> {
        self.read(|conn| {
            Ok(
                batch(conn, &super::rate_limit_event::PRUNE, prune.events_before)?
                    + batch(conn, &super::audit_log::PRUNE, prune.audit_before)?
                    + super::web_login_step::prune(conn, prune.now)?
                    + super::web_session::prune(conn, prune.now, prune.sessions)?
                    + super::password_reset::prune(conn, prune.now)?
                    + super::api_key::prune(conn, prune.now)?
                    + super::idp::prune(conn, prune.now)?
                    + super::passkey_ceremony::prune(conn, prune.now)?,
            )
        })
    }
}

/// One batch of a growing table's pruning: `delete` with `$1` the time before which its rows
/// go, and `$2` [`BATCH`].
fn batch(conn: &mut dyn Conn, delete: &'static Sql, before: f64) -> StoreResult<u64> {
    Ok(conn.execute(delete, params![before, BATCH])?)
}
