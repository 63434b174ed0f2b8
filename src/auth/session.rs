//! Browser sessions (web.md §7): a row on the server per signed-in browser, found by the
//! digest of a 256-bit id that only the browser's cookie holds. A session ends after
//! [`DEFAULT_IDLE`] without use or [`DEFAULT_LIFETIME`] in all (both configurable), when its
//! person signs out, and when their password changes or they are deactivated.

use std::time::Duration;

use crate::auth::token;
use crate::store::{Realm, SessionLimits, Store, StoreResult, User};

/// Django's cookie name.
pub const COOKIE: &str = "sessionid";

/// Half an hour idle: the account page shows an API key, so a forgotten tab closes soon.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Twelve hours at most, a working day, whatever the use.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(12 * 3600);

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            idle: DEFAULT_IDLE.as_secs_f64(),
            lifetime: DEFAULT_LIFETIME.as_secs_f64(),
        }
    }
}

/// A new session for `user`; the value is for the cookie only.
pub fn start(store: &Store, user: &User, now: f64) -> StoreResult<String> {
    let (id, digest) = token::fresh();
    store.create_session(&digest, user.id, now)?;
    Ok(id)
}

/// The signed-in person of a cookie's session, if it is live and they may still sign in.
pub fn current(
    store: &Store,
    id: &str,
    now: f64,
    limits: SessionLimits,
) -> StoreResult<Option<(User, Realm)>> {
    if !token::is_well_formed(id) {
        return Ok(None);
    }
    let Some(user) = store.touch_session(&token::digest(id), now, limits)? else {
        return Ok(None);
    };
    let Some(realm) = store.realm_by_id(user.realm_id)? else {
        return Ok(None);
    };
    Ok((user.is_active && !realm.deactivated).then_some((user, realm)))
}

/// When the session of a cookie began: its sign-in's time.
pub fn started_at(store: &Store, id: &str) -> StoreResult<Option<f64>> {
    if !token::is_well_formed(id) {
        return Ok(None);
    }
    store.session_started_at(&token::digest(id))
}

/// Signing out.
pub fn end(store: &Store, id: &str) -> StoreResult<()> {
    store.end_session(&token::digest(id))
}
