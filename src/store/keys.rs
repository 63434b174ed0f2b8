//! Keys per device (wire.md §9.5): the rows the store keeps of them. A device's key is
//! stored only as its digest; the user's own key stays in the user's row.

use super::model::{Realm, User};

/// A device's key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceKey {
    pub id: i64,
    pub user_id: i64,
    /// The login's method word (wire.md §9.5).
    pub method: String,
    pub user_agent: Option<String>,
    /// Given on the account page; else the list names it after the User-Agent.
    pub name: Option<String>,
    pub created_at: f64,
    /// `None`: never used.
    pub last_used_at: Option<f64>,
}

/// A device's key to store at the end of a login ([`super::FinishLogin::device`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewDeviceKey<'a> {
    pub key_hash: &'a str,
    pub method: &'a str,
    pub user_agent: Option<&'a str>,
    pub name: Option<&'a str>,
    pub now: f64,
    /// The user keeps at most this many live keys: the least recently used beyond it are
    /// revoked in the same transaction, each audited as `key_revoked`.
    pub max_live: i64,
}

/// Who holds a presented key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyHolder {
    pub user: User,
    /// The device key's row, or `None` for the user's own key.
    pub device: Option<DeviceKey>,
    /// The user's realm, read with them.
    pub realm: Realm,
}
