//! How long the audit trail is kept, and what outlives that: each user's newest password
//! change and newest deactivation, whatever their age, so that "when did this user last
//! change their password, when were they deactivated" can always be answered (README, Audit
//! retention). The store drops what this module says ([`AuditRetention`]), batch by batch.

use std::thread;
use std::time::{Duration, Instant};

use crate::clock;
use crate::store::{AuditEvent, AuditRetention, Store, StoreResult};

/// The events whose newest row per user is kept past the retention.
pub const KEEP_NEWEST: &[AuditEvent] = &[AuditEvent::PasswordChanged, AuditEvent::UserDeactivated];

/// Many times longer than a waiting statement's sleep between two tries for the write lock
/// (1 ms, the SQLite engine's busy handler), so a login waiting for the lock takes it
/// between two batches; short, so a first pruning of millions of rows in small batches
/// still ends within minutes.
pub const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// How often a walk starts again from the oldest row: a kept row that stopped being its
/// user's newest (a newer password change since) goes at most this long after it could.
const REWALK: Duration = Duration::from_secs(24 * 3600);

/// The audit trail's pruning, walked oldest first and resumed where the last round ended,
/// so that the rows kept past the retention (a million users' password changes) are not
/// read again every round: once a day, it starts again from the oldest row.
pub struct AuditWalk {
    after: f64,
    began: Instant,
}

impl Default for AuditWalk {
    fn default() -> AuditWalk {
        AuditWalk {
            after: f64::MIN,
            began: Instant::now(),
        }
    }
}

impl AuditWalk {
    /// Drops every audit row past `kept` that the walk has not passed yet, batch after
    /// batch with [`BATCH_PAUSE`] after each, so that no batch holds the write lock long;
    /// how many rows went.
    pub fn round(&mut self, store: &Store, kept: Duration) -> StoreResult<u64> {
        if self.began.elapsed() > REWALK {
            *self = AuditWalk::default();
        }
        let retention = AuditRetention {
            before: clock::now() - kept.as_secs_f64(),
            keep_newest: KEEP_NEWEST,
        };
        let mut deleted = 0;
        loop {
            let batch = store.prune_audit(&retention, self.after)?;
            deleted += batch.deleted;
            let Some(next) = batch.next else {
                return Ok(deleted);
            };
            self.after = next;
            thread::sleep(BATCH_PAUSE);
        }
    }
}
