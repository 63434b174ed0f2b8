//! The mail for every new login (web.md §8.1): which logins are due one. A login's outcome
//! carries its notices as plain values; the page or endpoint that answered posts them to the
//! reset desk, whose thread sends them after the answer. This module decides.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::clock;
use crate::store::{Realm, User};

/// No mail for an account made this recently (seconds), as Zulip does: its first login is
/// the person who just made it.
const NEW_ACCOUNT: f64 = 60.0;
/// Logins from one device (the same user, User-Agent and address) within this many seconds
/// of one that was mailed fold into that mail.
pub const FOLD: f64 = 600.0;
/// Beyond this many remembered devices, the ones past [`FOLD`] are forgotten.
const REMEMBERED: usize = 4096;

/// Which mail a notice asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// A new login (web.md §8.1), if the switches and the folding let it through.
    Login,
    /// A recovery code stood in for the second factor (web.md §4.1): always told.
    RecoveryCode,
}

/// A successful login, as the mail tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginNotice {
    pub told: Told,
    pub realm_id: i64,
    pub user_id: i64,
    pub email: String,
    /// The method word of wire.md §9.5 (`password`, `ldap`, `web`, …).
    pub method: &'static str,
    pub user_agent: Option<String>,
    pub client: Option<IpAddr>,
    /// Epoch seconds.
    pub at: f64,
}

/// Whether `user` gets a mail for this login: the realm sends them, the user did not turn
/// them off, and the account is not brand new.
pub fn due(realm: &Realm, user: &User, opted_out: bool, notice: &LoginNotice) -> bool {
    let joined = clock::parse_iso8601(&user.date_joined).map_or(0.0, |t| t as f64);
    realm.login_mail && !opted_out && notice.at - joined >= NEW_ACCOUNT
}

/// The devices mailed lately, in one process: repeated logins from one device within
/// [`FOLD`] seconds get one mail (an instance that restarts, or another instance, may send
/// one more).
#[derive(Debug, Default)]
pub struct Folding {
    mailed: HashMap<(i64, Option<String>, Option<IpAddr>), f64>,
}

impl Folding {
    /// Whether this login folds into a recent mail; if not, it is remembered as mailed.
    pub fn folds(&mut self, notice: &LoginNotice) -> bool {
        let device = (notice.user_id, notice.user_agent.clone(), notice.client);
        if self
            .mailed
            .get(&device)
            .is_some_and(|&at| notice.at - at < FOLD)
        {
            return true;
        }
        if self.mailed.len() >= REMEMBERED {
            self.mailed.retain(|_, at| notice.at - *at < FOLD);
        }
        self.mailed.insert(device, notice.at);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(user_agent: &str, at: f64) -> LoginNotice {
        LoginNotice {
            told: Told::Login,
            realm_id: 1,
            user_id: 5,
            email: "iago@example.com".into(),
            method: "password",
            user_agent: Some(user_agent.to_owned()),
            client: Some(IpAddr::from([127, 0, 0, 1])),
            at,
        }
    }

    #[test]
    fn one_device_folds_for_ten_minutes_and_another_does_not() {
        let mut folding = Folding::default();
        assert!(!folding.folds(&notice("ZulipFlutter", 1000.0)));
        assert!(folding.folds(&notice("ZulipFlutter", 1000.0 + FOLD - 1.0)));
        assert!(!folding.folds(&notice("ZulipTerminal", 1001.0)));
        assert!(!folding.folds(&notice("ZulipFlutter", 1000.0 + FOLD)));
    }
}
