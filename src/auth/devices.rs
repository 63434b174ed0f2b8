//! Keys per device (wire.md §9.5): which logins make a key of their own, the limits, the
//! check of a presented key, and the names the list shows. The store keeps the rows.

use crate::auth::key;
use crate::auth::token;
use crate::clock;
use crate::store::{AuditEntry, KeyHolder, NewDeviceKey, Realm, Store, StoreResult, User};
use crate::text;

/// A user keeps at most this many device keys: a login beyond it revokes the least
/// recently used.
pub const MAX_LIVE_KEYS: i64 = 100;
/// A key's last use is written at most this often (seconds), so a busy client writes
/// almost nothing.
const TOUCH_INTERVAL: f64 = 600.0;
/// Longer User-Agent strings are cut before they are stored.
const MAX_USER_AGENT: usize = 256;
/// The id the list gives the user's own key (device keys are numbered from 1).
pub const OWN_KEY_ID: i64 = 0;

/// The digest a device's key is stored and found by.
pub fn digest(api_key: &str) -> String {
    token::digest(api_key)
}

/// A User-Agent as stored: invisible characters dropped, trimmed, cut to a bound; `None`
/// when nothing is left.
pub fn stored_user_agent(user_agent: Option<&str>) -> Option<String> {
    text::stored_name(user_agent?, MAX_USER_AGENT)
}

/// The user presenting `api_key` (their own key or a device's), their realm and the device
/// key's row; a device key's first use is recorded, and later ones when the recorded one is
/// old.
pub fn holder(store: &Store, api_key: &str) -> StoreResult<Option<KeyHolder>> {
    let Some(found) = store.key_holder(api_key, &digest(api_key))? else {
        return Ok(None);
    };
    if let Some(device) = &found.device {
        let now = clock::now();
        if device
            .last_used_at
            .is_none_or(|at| now - at >= TOUCH_INTERVAL)
        {
            store.touch_device_key(device.id, now)?;
        }
    }
    Ok(Some(found))
}

/// One entry of `GET /api/v1/users/me/api_keys`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Listed {
    pub id: i64,
    pub name: String,
    pub method: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub current: bool,
}

/// The user's keys as the list shows them, newest first: the device keys, then the user's
/// own key if they have one. `current` is the device key in use, or `None` for the own key.
pub fn list(store: &Store, user: &User, current: Option<i64>) -> StoreResult<Vec<Listed>> {
    let mut listed: Vec<Listed> = store
        .device_keys(user.id)?
        .into_iter()
        .map(|k| Listed {
            id: k.id,
            name: k
                .name
                .clone()
                .unwrap_or_else(|| device_name(k.user_agent.as_deref())),
            created: k.created_at as i64,
            last_used: k.last_used_at.map(|t| t as i64),
            current: current == Some(k.id),
            method: k.method,
        })
        .collect();
    if user.api_key.is_some() {
        listed.push(Listed {
            id: OWN_KEY_ID,
            name: "Your API key".to_owned(),
            method: "account".to_owned(),
            created: clock::parse_iso8601(&user.date_joined).unwrap_or(0),
            last_used: None,
            current: current.is_none(),
        });
    }
    Ok(listed)
}

/// Revokes one of the user's keys: a device's, or the user's own (the next login mints
/// another). False when the user has no key with this id.
pub fn revoke(store: &Store, user: &User, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
    if id == OWN_KEY_ID {
        store.revoke_own_key(user.id, audit)
    } else {
        store.revoke_device_key(user.id, id, audit)
    }
}

/// A key for a new device, named by the user on the account page (method `account`):
/// shown once, then kept only as its digest.
pub fn create(
    store: &Store,
    user: &User,
    name: &str,
    user_agent: Option<&str>,
    audit: &AuditEntry,
) -> StoreResult<String> {
    let user_agent = stored_user_agent(user_agent);
    let name = text::stored_name(name, text::MAX_NAME);
    key::with_fresh_key(|new_key| {
        let key = NewDeviceKey {
            key_hash: &digest(new_key),
            method: "account",
            user_agent: user_agent.as_deref(),
            name: name.as_deref(),
            now: audit.at,
            max_live: MAX_LIVE_KEYS,
        };
        store.create_device_key(user.id, &key, audit)?;
        Ok(new_key.to_owned())
    })
}

/// Whether logins into `realm` make a key per device.
pub fn per_device(realm: &Realm) -> bool {
    realm.api_keys_per_device
}

/// A readable label that starts with the User-Agent's product token and names the system
/// when it can ("ZulipFlutter on Android"); browsers by their own name.
pub fn device_name(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.filter(|ua| !ua.is_empty()) else {
        return "Unknown device".to_owned();
    };
    let product = ua
        .split(['/', ' ', '('])
        .next()
        .filter(|p| !p.is_empty())
        .unwrap_or("Unknown");
    let product = if product == "Mozilla" {
        [
            ("Edg/", "Edge"),
            ("Firefox/", "Firefox"),
            ("Chrome/", "Chrome"),
            ("Safari/", "Safari"),
        ]
        .into_iter()
        .find(|(token, _)| ua.contains(token))
        .map_or(product, |(_, name)| name)
    } else {
        product
    };
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iOS"),
        ("iOS", "iOS"),
        ("Windows", "Windows"),
        ("Mac OS", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(token, _)| ua.contains(token));
    match system {
        Some((_, system)) => format!("{product} on {system}"),
        None => product.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_start_with_the_product_token() {
        assert_eq!(
            device_name(Some("ZulipFlutter/30.0.256 (Android 14)")),
            "ZulipFlutter on Android"
        );
        assert_eq!(
            device_name(Some("ZulipPython/0.9.0 (Linux; ...)")),
            "ZulipPython on Linux"
        );
        assert_eq!(device_name(Some("curl/8.5.0")), "curl");
        assert_eq!(
            device_name(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"
            )),
            "Chrome on Linux"
        );
        assert_eq!(device_name(None), "Unknown device");
    }

    #[test]
    fn stored_user_agents_lose_control_characters() {
        assert_eq!(
            stored_user_agent(Some(" a\u{7}b\r\n ")).as_deref(),
            Some("ab")
        );
        assert_eq!(stored_user_agent(Some("\n")), None);
        assert_eq!(
            stored_user_agent(Some(&"x".repeat(999))).unwrap().len(),
            256
        );
    }
}
