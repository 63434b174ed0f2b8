//! The `rate_limit_event` table. An attempt is decided under transaction-scoped advisory
//! locks on its buckets (always the address's before the username's, so two attempts never
//! wait on each other in a circle): every instance counts against the same events, and two
//! attempts on one bucket are decided one after the other.

use postgres::GenericClient;

use super::Postgres;
use super::pool::Db;
use crate::store::{Admission, Attempt, Bucket, Limits, Reservation, StoreResult};

/// The newest `limit` event times of the bucket within its window, newest first.
fn recent<C: GenericClient>(
    db: &mut Db<'_, C>,
    bucket: &Bucket,
    now: f64,
) -> StoreResult<Vec<f64>> {
    let rows = db.query(
        "SELECT at FROM rate_limit_event WHERE bucket = $1 AND at >= $2 ORDER BY at DESC LIMIT $3",
        &[
            &bucket.key,
            &(now - bucket.rule.window),
            &i64::from(bucket.rule.limit),
        ],
    )?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Adds an event, keeping only the newest `limit` of the bucket and none out of its window.
fn record<C: GenericClient>(db: &mut Db<'_, C>, bucket: &Bucket, now: f64) -> StoreResult<i64> {
    let id: i64 = db
        .query_one(
            "INSERT INTO rate_limit_event (bucket, at) VALUES ($1, $2) RETURNING id",
            &[&bucket.key, &now],
        )?
        .try_get(0)?;
    db.execute(
        "DELETE FROM rate_limit_event WHERE bucket = $1 AND (at < $2 OR id NOT IN
           (SELECT id FROM rate_limit_event WHERE bucket = $1 ORDER BY at DESC LIMIT $3))",
        &[
            &bucket.key,
            &(now - bucket.rule.window),
            &i64::from(bucket.rule.limit),
        ],
    )?;
    Ok(id)
}

pub(super) fn clear<C: GenericClient>(db: &mut Db<'_, C>, bucket: &str) -> StoreResult<()> {
    db.execute("DELETE FROM rate_limit_event WHERE bucket = $1", &[&bucket])?;
    Ok(())
}

pub(super) fn release<C: GenericClient>(
    db: &mut Db<'_, C>,
    reservation: Reservation,
) -> StoreResult<()> {
    db.execute(
        "DELETE FROM rate_limit_event WHERE id = $1",
        &[&reservation.0],
    )?;
    Ok(())
}

/// The refusal a full bucket gives, if either is full: the address first.
fn refusal<C: GenericClient>(
    db: &mut Db<'_, C>,
    attempt: &Attempt,
) -> StoreResult<Option<Admission>> {
    if let Some(address) = &attempt.address
        && let Some(retry_after) = address
            .rule
            .full_for(&recent(db, address, attempt.now)?, attempt.now)
    {
        return Ok(Some(Admission::AddressFull { retry_after }));
    }
    if let Some(username) = &attempt.username
        && let Some(retry_after) = username
            .rule
            .full_for(&recent(db, username, attempt.now)?, attempt.now)
    {
        return Ok(Some(Admission::UsernameFull { retry_after }));
    }
    Ok(None)
}

impl Limits for Postgres {
    fn admit(&self, attempt: &Attempt) -> StoreResult<Admission> {
        if attempt.address.is_none() && attempt.username.is_none() {
            return Ok(Admission::Admitted {
                in_window: None,
                reservation: None,
            });
        }
        let mut conn = self.conn()?;
        // A full bucket is refused on a plain read, without a lock: an attacker hammering a
        // locked username or a blocked address costs no more than a query.
        if let Some(refused) = refusal(&mut conn.db(), attempt)? {
            return Ok(refused);
        }
        conn.transaction(|db| {
            let key = |bucket: &Option<Bucket>| bucket.as_ref().map(|b| b.key.clone());
            // pg_advisory_xact_lock is strict: an absent bucket takes no lock.
            db.query_one(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0)),
                        pg_advisory_xact_lock(hashtextextended($2, 0))",
                &[&key(&attempt.address), &key(&attempt.username)],
            )?;
            // Again under the locks: another attempt may have filled one meanwhile.
            if let Some(refused) = refusal(db, attempt)? {
                return Ok(refused);
            }
            let in_window = match &attempt.username {
                Some(bucket) => {
                    let before = recent(db, bucket, attempt.now)?.len() as u32;
                    record(db, bucket, attempt.now)?;
                    Some((before + 1).min(bucket.rule.limit))
                }
                None => None,
            };
            let reservation = match &attempt.address {
                Some(bucket) => Some(Reservation(record(db, bucket, attempt.now)?)),
                None => None,
            };
            Ok(Admission::Admitted {
                in_window,
                reservation,
            })
        })
    }

    fn count_if_room(&self, buckets: &[Bucket], now: f64) -> StoreResult<bool> {
        let mut keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        // In one order for every caller (admit's address then username is this order too),
        // so two deciders never wait on each other in a circle.
        keys.sort_unstable();
        keys.dedup();
        self.conn()?.transaction(|db| {
            db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                 FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
                &[&keys],
            )?;
            for bucket in buckets {
                if bucket
                    .rule
                    .full_for(&recent(db, bucket, now)?, now)
                    .is_some()
                {
                    return Ok(false);
                }
            }
            for bucket in buckets {
                record(db, bucket, now)?;
            }
            Ok(true)
        })
    }

    fn release(&self, reservation: Reservation) -> StoreResult<()> {
        release(&mut self.conn()?.db(), reservation)
    }
}
