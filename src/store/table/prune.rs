//! Pruning, once for every table that grows: what no rule can see any more goes.

use crate::store::sql::{Backend, Conn, Sql, params};
use crate::store::{AuditPruned, AuditRetention, Prune, Pruning, StoreResult};

/// The most rate-limit events one call deletes, in one statement: a million at once held
/// the write lock for seconds, past the busy timeout of the logins waiting for it.
const BATCH: i64 = 10_000;

/// The most audit rows one call reads (and deletes, but those kept), in one statement, so
/// that a batch holds SQLite's write lock for a few milliseconds (issue 25: no login
/// delayed by more than 50 ms). Old rows are spread over the users, so each row deleted
/// writes about one page of its own (its entry in `audit_log_user`): 2,000 rows wrote 7.6
/// MiB to the journal and held the lock 25 to 120 ms at 200,000 users, past the page cache;
/// 250 rows write under 1 MiB.
const AUDIT_BATCH: i64 = 250;

impl<B: Backend> Pruning for B {
    fn prune(&self, prune: &Prune) -> StoreResult<u64> {
        self.read(|conn| {
            Ok(
                batch(conn, &super::rate_limit_event::PRUNE, prune.events_before)?
                    + super::web_login_step::prune(conn, prune.now)?
                    + super::web_session::prune(conn, prune.now, prune.sessions)?
                    + super::password_reset::prune(conn, prune.now)?
                    + super::api_key::prune(conn, prune.now)?
                    + super::idp::prune(conn, prune.now)?
                    + super::passkey_ceremony::prune(conn, prune.now)?,
            )
        })
    }

    fn prune_audit(&self, retention: &AuditRetention, after: f64) -> StoreResult<AuditPruned> {
        let kept: String = retention
            .keep_newest
            .iter()
            .map(|event| format!("{},", event.as_str()))
            .collect();
        let kept = format!(",{kept}");
        self.read(|conn| {
            let window = conn.one(
                &super::audit_log::PRUNE_WINDOW,
                params![after, retention.before, AUDIT_BATCH],
                |r| r.maybe_real(0),
            )?;
            let Some(end) = window else {
                return Ok(AuditPruned {
                    deleted: 0,
                    next: None,
                });
            };
            let deleted = conn.execute(&super::audit_log::PRUNE, params![after, end, &kept])?;
            Ok(AuditPruned {
                deleted,
                next: Some(end),
            })
        })
        .and_then(|pruned| {
            self.settle()?;
            Ok(pruned)
        })
    }
}

/// One batch of a growing table's pruning: `delete` with `$1` the time before which its rows
/// go, and `$2` [`BATCH`].
fn batch(conn: &mut dyn Conn, delete: &'static Sql, before: f64) -> StoreResult<u64> {
    Ok(conn.execute(delete, params![before, BATCH])?)
}
