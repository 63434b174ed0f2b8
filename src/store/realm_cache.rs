//! Realm rows remembered between requests, on both engines, so that the cheap requests
//! (`server_settings`, a key check) need not read the realm table.
//!
//! The rows hold while the realm version is unchanged: one row of `realm_version` (migration
//! 12), which triggers bump in the transaction of any change to `realm`, whoever makes it
//! (another worker, another instance, an admin command in another process, `db copy`, an
//! operator's SQL). Each use reads the version first, one indexed read, and a different
//! version drops every row, so a change applies to the very next request on every instance
//! (wire.md §2). `LISTEN`/`NOTIFY` could not promise that: it is asynchronous.
//!
//! SQLite keeps one cache per connection (one per thread), PostgreSQL one per instance,
//! shared by its threads ([`Target`](super::postgres::Target)). Nothing is cached inside a
//! transaction: those read the table itself.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::sql::{Backend, Conn, RealmKey, Sql};
use super::{Realm, StoreResult};

/// More rows than this are dropped all at once: a bound on memory, whatever requests ask
/// (a subdomain that names no realm is remembered too).
const MAX_ENTRIES: usize = 1024;

static VERSION: Sql = Sql::new("SELECT version FROM realm_version");

/// The realm version as a column of another statement, for [`cached_at`].
macro_rules! version_column {
    () => {
        "(SELECT version FROM realm_version)"
    };
}
pub(crate) use version_column;

#[derive(Default)]
pub struct RealmCache {
    /// The realm version the rows were read under.
    version: Option<i64>,
    by_subdomain: HashMap<String, Option<Realm>>,
    by_id: HashMap<i64, Option<Realm>>,
}

impl RealmCache {
    /// The row remembered for `key` under `version`, if any: `Some(None)` is a realm known
    /// not to exist.
    fn get(&mut self, version: i64, key: RealmKey<'_>) -> Option<Option<Realm>> {
        if self.version != Some(version) {
            *self = RealmCache {
                version: Some(version),
                ..RealmCache::default()
            };
            return None;
        }
        match key {
            RealmKey::Subdomain(subdomain) => self.by_subdomain.get(subdomain).cloned(),
            RealmKey::Id(id) => self.by_id.get(&id).cloned(),
        }
    }

    /// Remembers `realm`, read after `version` was: a row at least as new as the version.
    fn put(&mut self, version: i64, key: RealmKey<'_>, realm: Option<Realm>) {
        if self.version != Some(version) {
            return;
        }
        if self.by_subdomain.len() + self.by_id.len() >= MAX_ENTRIES {
            self.by_subdomain.clear();
            self.by_id.clear();
        }
        match key {
            RealmKey::Subdomain(subdomain) => {
                self.by_subdomain.insert(subdomain.to_owned(), realm);
            }
            RealmKey::Id(id) => {
                self.by_id.insert(id, realm);
            }
        }
    }
}

/// The realm for `key`: remembered if the version is unchanged, else `read`.
pub fn cached<B: Backend>(
    backend: &B,
    key: RealmKey<'_>,
    read: impl FnOnce() -> StoreResult<Option<Realm>>,
) -> StoreResult<Option<Realm>> {
    let version = backend.read(|conn: &mut dyn Conn| Ok(conn.one(&VERSION, &[], |r| r.int(0))?))?;
    cached_at(backend, version, key, read)
}

/// [`cached`], with the version read already by the request's statement that found what the
/// realm is wanted for ([`version_column!`]): a key check is then one statement in all. `read`
/// runs outside the cache's lock, which is never held across a round trip.
pub fn cached_at<B: Backend>(
    backend: &B,
    version: i64,
    key: RealmKey<'_>,
    read: impl FnOnce() -> StoreResult<Option<Realm>>,
) -> StoreResult<Option<Realm>> {
    let cache = backend.realm_cache();
    if let Some(realm) = lock(cache).get(version, key) {
        return Ok(realm);
    }
    let realm = read()?;
    lock(cache).put(version, key, realm.clone());
    Ok(realm)
}

fn lock(cache: &Mutex<RealmCache>) -> MutexGuard<'_, RealmCache> {
    // A panic elsewhere while it was held leaves plain maps: still usable.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}
