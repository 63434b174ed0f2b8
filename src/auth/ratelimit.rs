//! Rate limits on password attempts (SPEC §8), kept in SQLite so that a restart does not
//! reset them and every worker sees the same counts.
//!
//! - Per username, Zulip's rule: every attempt that reaches step 5 counts, a success clears
//!   the bucket, and the attempt after the limit is refused even with the right password.
//! - Per client address (ours): failures only, against one password tried across many
//!   accounts. A success does not clear it.
//!
//! A live bucket is never evicted to save space, since flooding new usernames must not
//! flush a victim's count; only events older than the window are pruned.

use std::net::IpAddr;
use std::str::FromStr;

use crate::store::Store;

/// `N/Ws`: at most `limit` events per `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub limit: u32,
    pub window: f64,
}

/// A rule, or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleSetting(pub Option<Rule>);

impl FromStr for RuleSetting {
    type Err = String;

    /// `off`, or `LIMIT/WINDOW` with the window in `s`, `m` or `h` (`5/1800s`, `30/10m`).
    fn from_str(text: &str) -> Result<RuleSetting, String> {
        if text == "off" {
            return Ok(RuleSetting(None));
        }
        let complaint =
            || format!("invalid rate {text:?}: expected LIMIT/WINDOW such as 5/1800s, or off");
        let (limit, window) = text.split_once('/').ok_or_else(complaint)?;
        let limit: u32 = limit.parse().map_err(|_| complaint())?;
        let (number, unit) = window.split_at(window.len().saturating_sub(1));
        let seconds = match unit {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(complaint()),
        };
        let window = number.parse::<u32>().map_err(|_| complaint())?;
        if limit == 0 || window == 0 {
            return Err(complaint());
        }
        Ok(RuleSetting(Some(Rule {
            limit,
            window: f64::from(window) * seconds,
        })))
    }
}

/// The username bucket after an attempt: what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Epoch seconds when the bucket is certain to have room again.
    pub reset: u64,
    /// Set when the attempt was refused: seconds until it may be retried.
    pub retry_after: Option<f64>,
}

impl Quota {
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("X-RateLimit-Limit", self.limit.to_string()),
            ("X-RateLimit-Remaining", self.remaining.to_string()),
            ("X-RateLimit-Reset", self.reset.to_string()),
        ]
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub per_username: Option<Rule>,
    pub per_address: Option<Rule>,
}

fn user_bucket(username: &str) -> String {
    format!("user:{username}")
}

fn address_bucket(address: IpAddr) -> String {
    format!("addr:{address}")
}

/// Seconds until the oldest of the newest `limit` events leaves the window, if the bucket
/// is full (`events` newest first).
fn full_for(rule: Rule, events: &[f64], now: f64) -> Option<f64> {
    let oldest = *events.get(rule.limit as usize - 1)?;
    (oldest + rule.window >= now).then_some(oldest + rule.window - now)
}

impl RateLimits {
    /// Step 5 for the username: refuses a full bucket, else records the attempt. `None`
    /// when the limit is off, and then no headers are sent.
    pub fn attempt(
        &self,
        store: &Store,
        username: &str,
        now: f64,
    ) -> rusqlite::Result<Option<Quota>> {
        let Some(rule) = self.per_username else {
            return Ok(None);
        };
        let bucket = user_bucket(username);
        let since = now - rule.window;
        let refusal = |retry_after: f64| Quota {
            limit: rule.limit,
            remaining: 0,
            reset: (now + retry_after).floor() as u64,
            retry_after: Some(retry_after),
        };
        // A full bucket is refused on a plain read, without the write lock: an attacker
        // hammering a locked username costs no more than a query.
        let events = store.recent_events(&bucket, rule.limit, since)?;
        if let Some(retry_after) = full_for(rule, &events, now) {
            return Ok(Some(refusal(retry_after)));
        }
        store.immediate(|store| {
            // Again under the lock: another worker may have filled it meanwhile.
            let events = store.recent_events(&bucket, rule.limit, since)?;
            if let Some(retry_after) = full_for(rule, &events, now) {
                return Ok(Some(refusal(retry_after)));
            }
            store.record_event(&bucket, now, rule.limit, since)?;
            let in_window = (events.len() as u32 + 1).min(rule.limit);
            Ok(Some(Quota {
                limit: rule.limit,
                remaining: rule.limit - in_window,
                reset: (now + rule.window).floor() as u64,
                retry_after: None,
            }))
        })
    }

    /// A success clears the username's bucket.
    pub fn clear(&self, store: &Store, username: &str) -> rusqlite::Result<()> {
        store.clear_bucket(&user_bucket(username))
    }

    /// Seconds until this address may try again, when it is over its failure limit.
    pub fn address_blocked(
        &self,
        store: &Store,
        address: Option<IpAddr>,
        now: f64,
    ) -> rusqlite::Result<Option<f64>> {
        let (Some(rule), Some(address)) = (self.per_address, address) else {
            return Ok(None);
        };
        let events =
            store.recent_events(&address_bucket(address), rule.limit, now - rule.window)?;
        Ok(full_for(rule, &events, now))
    }

    /// Counts an E11 against the client's address.
    pub fn address_failure(
        &self,
        store: &Store,
        address: Option<IpAddr>,
        now: f64,
    ) -> rusqlite::Result<()> {
        let (Some(rule), Some(address)) = (self.per_address, address) else {
            return Ok(());
        };
        store.immediate(|store| {
            store.record_event(&address_bucket(address), now, rule.limit, now - rule.window)
        })
    }

    /// The longest window in force: events older than this are dead everywhere.
    pub fn longest_window(&self) -> Option<f64> {
        [self.per_username, self.per_address]
            .into_iter()
            .flatten()
            .map(|rule| rule.window)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rule: &str) -> RateLimits {
        RateLimits {
            per_username: rule.parse::<RuleSetting>().unwrap().0,
            per_address: None,
        }
    }

    #[test]
    fn parses_rules() {
        assert_eq!(
            "5/1800s".parse::<RuleSetting>().unwrap().0,
            Some(Rule {
                limit: 5,
                window: 1800.0
            })
        );
        assert_eq!(
            "30/10m".parse::<RuleSetting>().unwrap().0.unwrap().window,
            600.0
        );
        assert_eq!("off".parse::<RuleSetting>().unwrap().0, None);
        for bad in [
            "", "5", "5/", "0/10s", "5/0s", "x/10s", "5/10", "5/10d", "-1/10s",
        ] {
            assert!(bad.parse::<RuleSetting>().is_err(), "{bad}");
        }
    }

    /// SPEC §8's worked sequence.
    #[test]
    fn worked_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let limits = limits("5/1800s");
        let t0 = 1_767_225_600.0;
        for (n, remaining) in (1..=5).zip([4, 3, 2, 1, 0]) {
            let quota = limits
                .attempt(&store, "iago", t0 + f64::from(n))
                .unwrap()
                .unwrap();
            assert_eq!((quota.remaining, quota.retry_after), (remaining, None));
            assert_eq!(quota.reset, (t0 + f64::from(n) + 1800.0) as u64);
        }
        let refused = limits.attempt(&store, "iago", t0 + 6.0).unwrap().unwrap();
        assert_eq!((refused.remaining, refused.retry_after), (0, Some(1795.0)));
        assert_eq!(refused.reset, (t0 + 1801.0) as u64);
        // Other usernames, including other spellings, are other buckets.
        assert_eq!(
            limits
                .attempt(&store, "IAGO", t0 + 6.0)
                .unwrap()
                .unwrap()
                .remaining,
            4
        );
        let seventh = limits
            .attempt(&store, "iago", t0 + 1802.0)
            .unwrap()
            .unwrap();
        assert_eq!((seventh.remaining, seventh.retry_after), (0, None));
        limits.clear(&store, "iago").unwrap();
        assert_eq!(
            limits
                .attempt(&store, "iago", t0 + 1803.0)
                .unwrap()
                .unwrap()
                .remaining,
            4
        );
    }

    #[test]
    fn off_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(
            RateLimits::default().attempt(&store, "x", 1.0).unwrap(),
            None
        );
    }
}
