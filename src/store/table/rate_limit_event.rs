//! The `rate_limit_event` table: one row per counted event, per bucket. A decision reads
//! the buckets and records in one write transaction, under the engine's locks on them
//! ([`Conn::lock_buckets`]), so every worker and instance counts against the same events.

use crate::store::sql::{Backend, Conn, Sql, params, sql};
use crate::store::{Admission, Attempt, AuditEntry, Bucket, Limits, Reservation, StoreResult};

/// The newest `limit` event times of the bucket within its window, newest first.
fn recent(conn: &mut dyn Conn, bucket: &Bucket, now: f64) -> StoreResult<Vec<f64>> {
    Ok(conn.all(
        sql!(
            "SELECT at FROM rate_limit_event WHERE bucket = $1 AND at >= $2
             ORDER BY at DESC LIMIT $3"
        ),
        params![
            &bucket.key,
            now - bucket.rule.window,
            i64::from(bucket.rule.limit)
        ],
        |r| r.real(0),
    )?)
}

/// Adds an event, keeping only the newest `limit` of the bucket and none out of its window.
fn record(conn: &mut dyn Conn, bucket: &Bucket, now: f64) -> StoreResult<i64> {
    let id = conn.one(
        sql!("INSERT INTO rate_limit_event (bucket, at) VALUES ($1, $2) RETURNING id"),
        params![&bucket.key, now],
        |r| r.int(0),
    )?;
    conn.execute(
        sql!(
            "DELETE FROM rate_limit_event WHERE bucket = $1 AND (at < $2 OR id NOT IN
               (SELECT id FROM rate_limit_event WHERE bucket = $1 ORDER BY at DESC LIMIT $3))"
        ),
        params![
            &bucket.key,
            now - bucket.rule.window,
            i64::from(bucket.rule.limit)
        ],
    )?;
    Ok(id)
}

pub(super) fn clear(conn: &mut dyn Conn, bucket: &str) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM rate_limit_event WHERE bucket = $1"),
        params![bucket],
    )?;
    Ok(())
}

pub(super) fn release(conn: &mut dyn Conn, reservation: Reservation) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM rate_limit_event WHERE id = $1"),
        params![reservation.0],
    )?;
    Ok(())
}

/// Drops events before `before`: no window sees them any more.
/// A batch of pruning ([`super::prune`]): at most `$2` of the events before `$1`.
pub(super) static PRUNE: Sql = Sql::new(
    "DELETE FROM rate_limit_event WHERE id IN (SELECT id FROM rate_limit_event WHERE at < $1 LIMIT $2)",
);

/// The refusal a full bucket gives, if either is full: the address first. `recent` reads a
/// bucket's events as [`recent`] does.
fn refusal(
    attempt: &Attempt,
    mut recent: impl FnMut(&Bucket) -> StoreResult<Vec<f64>>,
) -> StoreResult<Option<Admission>> {
    if let Some(address) = &attempt.address
        && let Some(retry_after) = address.rule.full_for(&recent(address)?, attempt.now)
    {
        return Ok(Some(Admission::AddressFull { retry_after }));
    }
    if let Some(username) = &attempt.username
        && let Some(retry_after) = username.rule.full_for(&recent(username)?, attempt.now)
    {
        return Ok(Some(Admission::UsernameFull { retry_after }));
    }
    Ok(None)
}

/// Records an admitted attempt: in the username bucket, and as a place held in the
/// address bucket.
fn admitted(conn: &mut dyn Conn, attempt: &Attempt) -> StoreResult<Admission> {
    let in_window = match &attempt.username {
        Some(bucket) => {
            let before = recent(conn, bucket, attempt.now)?.len() as u32;
            record(conn, bucket, attempt.now)?;
            Some((before + 1).min(bucket.rule.limit))
        }
        None => None,
    };
    let reservation = match &attempt.address {
        Some(bucket) => Some(Reservation(record(conn, bucket, attempt.now)?)),
        None => None,
    };
    Ok(Admission::Admitted {
        in_window,
        reservation,
    })
}

impl<B: Backend> Limits for B {
    fn admit(&self, attempt: &Attempt) -> StoreResult<Admission> {
        let buckets: Vec<&str> = [&attempt.address, &attempt.username]
            .into_iter()
            .flatten()
            .map(|bucket| bucket.key.as_str())
            .collect();
        if buckets.is_empty() {
            return Ok(Admission::Admitted {
                in_window: None,
                reservation: None,
            });
        }
        if let Some(refused) = self.full_bucket(attempt)? {
            return Ok(refused);
        }
        let now = attempt.now;
        self.write(|conn| {
            conn.lock_buckets(&buckets)?;
            // Again under the lock: another attempt may have filled one meanwhile.
            if let Some(refused) = refusal(attempt, |bucket| recent(conn, bucket, now))? {
                return Ok(refused);
            }
            admitted(conn, attempt)
        })
    }

    /// A full bucket is refused on a read, without a lock (and on SQLite from the
    /// connection's cache): an attacker hammering a locked username or a blocked address
    /// costs at most a query.
    fn full_bucket(&self, attempt: &Attempt) -> StoreResult<Option<Admission>> {
        let now = attempt.now;
        refusal(attempt, |bucket| {
            self.cached_events(bucket, now, &mut || {
                self.read(|conn| recent(conn, bucket, now))
            })
        })
    }

    fn count_if_room(&self, buckets: &[Bucket], now: f64) -> StoreResult<Option<f64>> {
        let keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        self.write(|conn| {
            conn.lock_buckets(&keys)?;
            let mut full_for: Option<f64> = None;
            for bucket in buckets {
                if let Some(wait) = bucket.rule.full_for(&recent(conn, bucket, now)?, now) {
                    full_for = Some(full_for.map_or(wait, |longest| longest.max(wait)));
                }
            }
            if full_for.is_none() {
                for bucket in buckets {
                    record(conn, bucket, now)?;
                }
            }
            Ok(full_for)
        })
    }

    fn release(&self, reservation: Reservation) -> StoreResult<()> {
        self.read(|conn| release(conn, reservation))
    }

    fn clear_bucket(&self, bucket: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            clear(conn, bucket)?;
            super::audit_log::insert(conn, audit)
        })
    }
}
