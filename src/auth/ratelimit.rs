//! Rate limits on password attempts (wire.md §8), kept in the store so that a restart does not
//! reset them and every worker sees the same counts.
//!
//! - Per client address (ours): failures only, against one password tried across many
//!   accounts; an IPv6 client is one /64. Checked first: a blocked address is refused before
//!   any username bucket is touched, and nothing is recorded for it. A place is held in the
//!   bucket while the password is verified, so concurrent failures never exceed the limit.
//!   A success does not clear it.
//! - Per username, Zulip's rule, keyed by the username ASCII case-folded: every attempt that
//!   reaches step 5 counts, a success clears the bucket, and the attempt after the limit is
//!   refused even with the right password.
//!
//! A live bucket is never evicted to save space, since flooding new usernames must not
//! flush a victim's count; only events older than the window are pruned.
//!
//! A place held for an attempt that the store then failed to decide is no failure. When the
//! store cannot take it back at once (it is down), the place is owed and given back before
//! the process's next admission, so an outage never fills an address's bucket.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use crate::clock;
use crate::store::limits::username_key;
use crate::store::{Admission, Attempt, Bucket, Limits, Reservation, StoreResult};

pub use crate::store::Rule;

/// A rule, or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleSetting(pub Option<Rule>);

impl FromStr for RuleSetting {
    type Err = String;

    /// `off`, or `LIMIT/WINDOW` with the window a duration (`5/1800s`, `30/10m`).
    fn from_str(text: &str) -> Result<RuleSetting, String> {
        if text == "off" {
            return Ok(RuleSetting(None));
        }
        let complaint = || {
            format!(
                "invalid rate {text:?}: expected LIMIT/WINDOW such as 5/1800s or 30/10m, or off"
            )
        };
        let (limit, window) = text.split_once('/').ok_or_else(complaint)?;
        let limit: u32 = limit.parse().map_err(|_| complaint())?;
        let window = clock::parse_duration(window).map_err(|_| complaint())?;
        if limit == 0 || window.is_zero() {
            return Err(complaint());
        }
        Ok(RuleSetting(Some(Rule {
            limit,
            window: window.as_secs_f64(),
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

/// What the limiters say about one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gate {
    /// Refused: retry after this many seconds. `quota` is the username bucket's, or `None`
    /// when the address was refused before any username bucket was consulted.
    Refused {
        retry_after: f64,
        quota: Option<Quota>,
    },
    /// Go on and verify; `quota` is `None` when the username limit is off.
    Admitted {
        quota: Option<Quota>,
        reservation: Option<Reservation>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateLimits {
    pub per_username: Option<Rule>,
    pub per_address: Option<Rule>,
}

/// The address bucket's key: the address, or for IPv6 its /64, which one client usually
/// holds whole. Requests whose address is unknown (on the Unix socket, without a forwarding
/// header that parses) share one bucket: the limit fails closed (wire.md §8.1).
pub(crate) fn address_key(address: Option<IpAddr>) -> String {
    match address.map(|a| a.to_canonical()) {
        None => "addr:unknown".to_owned(),
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("addr:{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// Places the store could not take back when their attempts failed, with when; see the
/// module doc. A process serves one database, so they are that database's.
static OWED: Mutex<Vec<(Reservation, f64)>> = Mutex::new(Vec::new());

/// Gives back a place held for an attempt that was not a failure: now, or else before the
/// next admission.
pub fn give_back(store: &dyn Limits, held: Reservation) {
    if store.release(held).is_err() {
        OWED.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((held, clock::now()));
    }
}

/// Gives back the owed places the store takes now, and keeps the others owed for at most
/// half of `window`: by the time its event leaves the window, a place no longer counts,
/// and its id may have been reused by a newer event.
fn settle_owed(store: &dyn Limits, window: Option<f64>, now: f64) {
    let owed = std::mem::take(&mut *OWED.lock().unwrap_or_else(PoisonError::into_inner));
    if owed.is_empty() {
        return;
    }
    let unsettled = owed.into_iter().filter(|&(held, since)| {
        window.is_some_and(|window| now - since < window / 2.0) && store.release(held).is_err()
    });
    OWED.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(unsettled);
}

impl RateLimits {
    /// Step 5 (wire.md §8, §8.1): the address's limit, then the username's, decided atomically.
    pub fn admit(
        &self,
        store: &dyn Limits,
        username: &str,
        client: Option<IpAddr>,
        now: f64,
    ) -> StoreResult<Gate> {
        settle_owed(store, self.per_address.map(|rule| rule.window), now);
        let admission = store.admit(&self.attempt(username, client, now))?;
        Ok(self.gate(admission, now))
    }

    /// Step 5 at a look, without a write: the refusal [`RateLimits::admit`] would give now,
    /// as it gives it (from a read of the full bucket); `None` when both buckets have room,
    /// which only `admit` decides for good, and while places are owed: giving them back is
    /// a write, which waits for the write lock (`admit` does it), and may empty a bucket
    /// that reads full.
    pub fn refusal(
        &self,
        store: &dyn Limits,
        username: &str,
        client: Option<IpAddr>,
        now: f64,
    ) -> StoreResult<Option<Gate>> {
        if !OWED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
        {
            return Ok(None);
        }
        let full = store.full_bucket(&self.attempt(username, client, now))?;
        Ok(full.map(|admission| self.gate(admission, now)))
    }

    fn attempt(&self, username: &str, client: Option<IpAddr>, now: f64) -> Attempt {
        Attempt {
            address: self.per_address.map(|rule| Bucket {
                key: address_key(client),
                rule,
            }),
            username: self.per_username.map(|rule| Bucket {
                key: username_key(username),
                rule,
            }),
            now,
        }
    }

    /// What the store's decision tells the attempt.
    fn gate(&self, admission: Admission, now: f64) -> Gate {
        match admission {
            Admission::AddressFull { retry_after } => Gate::Refused {
                retry_after,
                quota: None,
            },
            Admission::UsernameFull { retry_after } => Gate::Refused {
                retry_after,
                quota: self.per_username.map(|rule| Quota {
                    limit: rule.limit,
                    remaining: 0,
                    reset: (now + retry_after).floor() as u64,
                }),
            },
            Admission::Admitted {
                in_window,
                reservation,
            } => Gate::Admitted {
                quota: self.per_username.zip(in_window).map(|(rule, n)| Quota {
                    limit: rule.limit,
                    remaining: rule.limit - n,
                    reset: (now + rule.window).floor() as u64,
                }),
                reservation,
            },
        }
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
    use crate::store::Store;

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
        assert_eq!(
            "5/1d".parse::<RuleSetting>().unwrap().0.unwrap().window,
            86_400.0
        );
        assert_eq!("off".parse::<RuleSetting>().unwrap().0, None);
        for bad in [
            "", "5", "5/", "0/10s", "5/0s", "x/10s", "5/10", "5/10w", "-1/10s",
        ] {
            assert!(bad.parse::<RuleSetting>().is_err(), "{bad}");
        }
    }

    fn remaining(gate: Gate) -> (Option<u32>, Option<f64>) {
        match gate {
            Gate::Admitted { quota, .. } => (quota.map(|q| q.remaining), None),
            Gate::Refused { retry_after, quota } => (quota.map(|q| q.remaining), Some(retry_after)),
        }
    }

    /// wire.md §8's worked sequence.
    #[test]
    fn worked_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let limits = limits("5/1800s");
        let t0 = 1_767_225_600.0;
        let at = |username: &str, t: f64| limits.admit(&*store, username, None, t).unwrap();
        for (n, left) in (1..=5).zip([4, 3, 2, 1, 0]) {
            let gate = at("iago", t0 + f64::from(n));
            assert_eq!(remaining(gate), (Some(left), None));
            let Gate::Admitted { quota: Some(q), .. } = gate else {
                panic!()
            };
            assert_eq!(q.reset, (t0 + f64::from(n) + 1800.0) as u64);
        }
        let refused = at("iago", t0 + 6.0);
        assert_eq!(remaining(refused), (Some(0), Some(1795.0)));
        let Gate::Refused { quota: Some(q), .. } = refused else {
            panic!()
        };
        assert_eq!(q.reset, (t0 + 1801.0) as u64);
        // Every ASCII spelling of the username is the same bucket; others are others.
        assert_eq!(remaining(at("IAGO", t0 + 6.0)).1, Some(1795.0));
        assert_eq!(remaining(at("othello", t0 + 6.0)).0, Some(4));
        assert_eq!(remaining(at("iago", t0 + 1802.0)), (Some(0), None));
    }

    #[test]
    fn off_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(
            RateLimits::default()
                .admit(&*store, "x", None, 1.0)
                .unwrap(),
            Gate::Admitted {
                quota: None,
                reservation: None
            }
        );
    }

    /// A store whose write lock is held (by an operator's `sqlite3`, say): every write fails,
    /// as after its busy timeout; reads answer that the address bucket is full.
    struct Locked {
        releases: std::cell::Cell<u32>,
    }

    impl Limits for Locked {
        fn admit(&self, _: &Attempt) -> StoreResult<Admission> {
            Err(crate::store::StoreError::Unavailable("locked".into()))
        }
        fn full_bucket(&self, _: &Attempt) -> StoreResult<Option<Admission>> {
            Ok(Some(Admission::AddressFull { retry_after: 1.0 }))
        }
        fn count_if_room(&self, _: &[Bucket], _: f64) -> StoreResult<Option<f64>> {
            Err(crate::store::StoreError::Unavailable("locked".into()))
        }
        fn release(&self, _: Reservation) -> StoreResult<()> {
            self.releases.set(self.releases.get() + 1);
            Err(crate::store::StoreError::Unavailable("locked".into()))
        }
        fn clear_bucket(&self, _: &str, _: &crate::store::AuditEntry) -> StoreResult<()> {
            Err(crate::store::StoreError::Unavailable("locked".into()))
        }
    }

    /// The look of a front thread writes nothing, not even the places owed since the store
    /// last refused a write: each would wait out the busy timeout on the front thread while
    /// the lock is held. With places owed it passes the attempt on, since giving them back
    /// may empty the bucket it reads full; `admit`, on a hashing thread, gives them back.
    #[test]
    fn a_look_gives_back_no_owed_place() {
        let store = Locked {
            releases: std::cell::Cell::new(0),
        };
        let limits = RateLimits {
            per_username: None,
            per_address: Some(Rule {
                limit: 1,
                window: 1800.0,
            }),
        };
        give_back(&store, Reservation(7));
        let looked = limits.refusal(&store, "iago", None, clock::now()).unwrap();
        assert_eq!(store.releases.get(), 1, "tried once, by give_back alone");
        // Other tests may settle the owed place meanwhile: then the full bucket refuses.
        assert!(
            looked.is_none()
                || OWED
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty(),
            "{looked:?}"
        );
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let key = |a: &str| address_key(Some(a.parse().unwrap()));
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "addr:2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff::1"), key("2001:db8:1:2::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.7"), "addr:192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "addr:192.0.2.7");
    }
}
