//! Rate-limit buckets as every engine keeps them: the rule, the one decision both engines
//! make inside their own transaction, and what an attempt is told.

/// At most `limit` events per `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub limit: u32,
    pub window: f64,
}

impl Rule {
    /// Seconds until the oldest of the newest `limit` events leaves the window, if the
    /// bucket is full (`events` newest first).
    pub fn full_for(self, events: &[f64], now: f64) -> Option<f64> {
        let oldest = *events.get(self.limit as usize - 1)?;
        (oldest + self.window >= now).then_some(oldest + self.window - now)
    }
}

/// One bucket and the rule it is held to.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub key: String,
    pub rule: Rule,
}

/// A login attempt about to be verified (wire.md §5.2 step 5): the client address's bucket
/// of failures, then the username's bucket of attempts. Either may be off.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub address: Option<Bucket>,
    pub username: Option<Bucket>,
    pub now: f64,
}

/// A place held in the address bucket while a password is verified, so that concurrent
/// failures from one address never exceed its limit. A failure keeps it (it is the failure's
/// event); anything else releases it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation(pub i64);

/// The engine's decision on an [`Attempt`], made atomically.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// The address is over its limit: nothing was recorded anywhere.
    AddressFull { retry_after: f64 },
    /// The username's bucket is full: nothing was recorded anywhere.
    UsernameFull { retry_after: f64 },
    /// Both had room: the attempt is recorded in the username bucket (`in_window` events
    /// now, this one included) and holds a place in the address bucket.
    Admitted {
        in_window: Option<u32>,
        reservation: Option<Reservation>,
    },
}

/// The username bucket's key: the username as the account lookup compares it (ASCII
/// case-folded), so that no spelling of an account gets a fresh bucket (wire.md §8).
pub fn username_key(username: &str) -> String {
    format!("user:{}", username.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_only_when_the_oldest_counted_event_is_in_the_window() {
        let rule = Rule {
            limit: 2,
            window: 10.0,
        };
        assert_eq!(rule.full_for(&[5.0], 6.0), None);
        assert_eq!(rule.full_for(&[5.0, 4.0], 6.0), Some(8.0));
        assert_eq!(rule.full_for(&[5.0, 4.0], 15.0), None);
    }

    #[test]
    fn username_keys_fold_ascii_case_only() {
        assert_eq!(username_key("Iago@Example.COM"), "user:iago@example.com");
        assert_eq!(username_key("ÉMILE@x.org"), "user:Émile@x.org");
    }
}
