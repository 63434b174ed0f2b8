//! The `rate_limit_event` table: one row per counted event, per bucket.

use rusqlite::{Connection, params};

use super::Sqlite;
use crate::store::{Admission, Attempt, Bucket, Limits, Reservation, StoreResult};

/// The newest `limit` event times of the bucket within its window, newest first.
fn recent(conn: &Connection, bucket: &Bucket, now: f64) -> rusqlite::Result<Vec<f64>> {
    conn.prepare_cached(
        "SELECT at FROM rate_limit_event WHERE bucket = ?1 AND at >= ?2 ORDER BY at DESC LIMIT ?3",
    )?
    .query_map(
        params![bucket.key, now - bucket.rule.window, bucket.rule.limit],
        |r| r.get(0),
    )?
    .collect()
}

/// Adds an event, keeping only the newest `limit` of the bucket and none out of its window.
fn record(conn: &Connection, bucket: &Bucket, now: f64) -> rusqlite::Result<i64> {
    conn.prepare_cached("INSERT INTO rate_limit_event (bucket, at) VALUES (?1, ?2)")?
        .execute(params![bucket.key, now])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached(
        "DELETE FROM rate_limit_event WHERE bucket = ?1 AND (at < ?2 OR id NOT IN
           (SELECT id FROM rate_limit_event WHERE bucket = ?1 ORDER BY at DESC LIMIT ?3))",
    )?
    .execute(params![
        bucket.key,
        now - bucket.rule.window,
        bucket.rule.limit
    ])?;
    Ok(id)
}

pub(super) fn clear(conn: &Connection, bucket: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM rate_limit_event WHERE bucket = ?1")?
        .execute([bucket])?;
    Ok(())
}

pub(super) fn release(conn: &Connection, reservation: Reservation) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM rate_limit_event WHERE id = ?1")?
        .execute([reservation.0])?;
    Ok(())
}

/// The refusal a full bucket gives, if either is full: the address first. `recent` reads a
/// bucket's events as [`recent`] does.
fn refusal(
    attempt: &Attempt,
    mut recent: impl FnMut(&Bucket) -> rusqlite::Result<Vec<f64>>,
) -> rusqlite::Result<Option<Admission>> {
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

impl Limits for Sqlite {
    fn admit(&self, attempt: &Attempt) -> StoreResult<Admission> {
        if attempt.address.is_none() && attempt.username.is_none() {
            return Ok(Admission::Admitted {
                in_window: None,
                reservation: None,
            });
        }
        // A full bucket is refused on a read of the cache, without the write lock: an
        // attacker hammering a locked username or a blocked address costs no query.
        let now = attempt.now;
        let refused = {
            let mut cache = self.cache()?;
            refusal(attempt, |bucket| {
                cache.recent(bucket, now, || recent(&self.conn, bucket, now))
            })?
        };
        if let Some(refused) = refused {
            return Ok(refused);
        }
        self.immediate(|conn| {
            // Again under the lock: another worker may have filled one meanwhile.
            if let Some(refused) = refusal(attempt, |bucket| recent(conn, bucket, now))? {
                return Ok(refused);
            }
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
        })
    }

    fn count_if_room(&self, buckets: &[Bucket], now: f64) -> StoreResult<bool> {
        self.immediate(|conn| {
            for bucket in buckets {
                if bucket
                    .rule
                    .full_for(&recent(conn, bucket, now)?, now)
                    .is_some()
                {
                    return Ok(false);
                }
            }
            for bucket in buckets {
                record(conn, bucket, now)?;
            }
            Ok(true)
        })
    }

    fn release(&self, reservation: Reservation) -> StoreResult<()> {
        Ok(release(&self.conn, reservation)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Rule;

    fn bucket(key: &str, limit: u32) -> Bucket {
        Bucket {
            key: key.to_owned(),
            rule: Rule {
                limit,
                window: 100.0,
            },
        }
    }

    #[test]
    fn the_address_decides_first_and_a_refusal_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Sqlite::open(&dir.path().join("db")).unwrap();
        let attempt = |now| Attempt {
            address: Some(bucket("addr:a", 2)),
            username: Some(bucket("user:u", 3)),
            now,
        };
        let first = store.admit(&attempt(1.0)).unwrap();
        let Admission::Admitted {
            in_window: Some(1),
            reservation: Some(held),
        } = first
        else {
            panic!("{first:?}")
        };
        store.release(held).unwrap();
        assert!(matches!(
            store.admit(&attempt(2.0)).unwrap(),
            Admission::Admitted {
                in_window: Some(2),
                ..
            }
        ));
        assert!(matches!(
            store.admit(&attempt(3.0)).unwrap(),
            Admission::Admitted {
                in_window: Some(3),
                ..
            }
        ));
        // Two failures held: the address is full, and the username bucket is not touched.
        assert_eq!(
            store.admit(&attempt(4.0)).unwrap(),
            Admission::AddressFull { retry_after: 98.0 }
        );
        let username_only = Attempt {
            address: None,
            ..attempt(5.0)
        };
        assert_eq!(
            store.admit(&username_only).unwrap(),
            Admission::UsernameFull { retry_after: 96.0 }
        );
    }
}
