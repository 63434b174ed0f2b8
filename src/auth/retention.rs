//! How long the audit trail is kept, and what outlives that: each user's newest password
//! change and newest deactivation, whatever their age, so that "when did this user last
//! change their password / get deactivated" can always be answered (README, Audit
//! retention). The store drops what this module says ([`AuditRetention`]), batch by batch.

use std::thread;
use std::time::Duration;

use crate::clock;
use crate::store::{AuditEvent, AuditRetention, Store, StoreResult};

/// The events whose newest row per user is kept past the retention.
pub const KEEP_NEWEST: &[AuditEvent] = &[AuditEvent::PasswordChanged, AuditEvent::UserDeactivated];

/// Longer than SQLite's longest sleep between two tries for a lock (100 ms), so a login
/// waiting for the write lock takes it between two batches.
pub const BATCH_PAUSE: Duration = Duration::from_millis(150);

/// What a retention of `kept` drops at `now`.
pub fn audit_retention(now: f64, kept: Duration) -> AuditRetention {
    AuditRetention {
        before: now - kept.as_secs_f64(),
        keep_newest: KEEP_NEWEST,
    }
}

/// Drops every audit row past `kept`, batch after batch with [`BATCH_PAUSE`] between them,
/// so that no batch holds the write lock long; how many rows went.
pub fn prune_audit(store: &Store, kept: Duration) -> StoreResult<u64> {
    let retention = audit_retention(clock::now(), kept);
    let (mut after, mut deleted) = (f64::MIN, 0);
    loop {
        let batch = store.prune_audit(&retention, after)?;
        deleted += batch.deleted;
        match batch.next {
            Some(next) => after = next,
            None => return Ok(deleted),
        }
        if batch.deleted > 0 {
            thread::sleep(BATCH_PAUSE);
        }
    }
}
