//! Realm rows and their OpenID providers remembered between requests, on both engines, so
//! that the cheap requests (`server_settings`, a key check, the sign-in page) need not read
//! the realm and idp tables.
//!
//! The rows hold while the realm version is unchanged: one row of `realm_version` (migration
//! 12), which triggers bump in the transaction of any change to `realm` (migration 12) or
//! `idp` (migration 13), whoever makes it (another worker, another instance, an admin
//! command in another process, `db copy`, an operator's SQL). Each use learns the version
//! first, and a different version drops every row, so a change applies to the very next
//! request on every instance (wire.md §2). On PostgreSQL that is one indexed read per
//! request; SQLite remembers the version itself until anything at all is committed, which
//! its look at `PRAGMA data_version` tells, once per request
//! ([`Backend::cached_realm_version`]).
//! `LISTEN`/`NOTIFY` could not promise the next request: it is asynchronous.
//!
//! SQLite keeps one cache per connection (one per thread), PostgreSQL one per instance,
//! shared by its threads ([`Target`](super::postgres::Target)). Nothing is cached inside a
//! transaction: those read the table itself. Users, keys and limits are never cached here.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::sql::{Backend, Conn, RealmKey, Sql};
use super::{IdentityProvider, Realm, StoreResult};

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
    rows: Rows,
}

/// What is remembered under one version.
#[derive(Default)]
struct Rows {
    by_subdomain: HashMap<String, Option<Realm>>,
    by_id: HashMap<i64, Option<Realm>>,
    /// Each realm's OpenID providers by name, by realm id: `idp`'s triggers bump the
    /// version too (migration 13).
    providers: HashMap<i64, Vec<IdentityProvider>>,
}

impl Rows {
    fn len(&self) -> usize {
        self.by_subdomain.len() + self.by_id.len() + self.providers.len()
    }
}

impl RealmCache {
    /// The rows remembered under `version`: none if they were read under another (they are
    /// dropped).
    fn at(&mut self, version: i64) -> &Rows {
        if self.version != Some(version) {
            *self = RealmCache {
                version: Some(version),
                rows: Rows::default(),
            };
        }
        &self.rows
    }

    /// Where to remember a row read after `version` was (a row at least as new as the
    /// version): nowhere if the rows are of another version by now.
    fn fillable(&mut self, version: i64) -> Option<&mut Rows> {
        if self.version != Some(version) {
            return None;
        }
        if self.rows.len() >= MAX_ENTRIES {
            self.rows = Rows::default();
        }
        Some(&mut self.rows)
    }
}

/// The realm version, at each use of the cache: one indexed read (on PostgreSQL, once per
/// request), or on SQLite the one it remembers while nothing was committed.
pub fn version<B: Backend>(backend: &B) -> StoreResult<i64> {
    backend.cached_realm_version(&mut || {
        backend.read(|conn: &mut dyn Conn| Ok(conn.one(&VERSION, &[], |r| r.int(0))?))
    })
}

/// The realm for `key`, remembered under `version` (read by [`version`], or by the request's
/// statement that found what the realm is wanted for, [`version_column!`]: a key check is
/// then one statement in all), else `read`.
pub fn cached_at<B: Backend>(
    backend: &B,
    version: i64,
    key: RealmKey<'_>,
    read: impl FnOnce() -> StoreResult<Option<Realm>>,
) -> StoreResult<Option<Realm>> {
    remembered(
        backend,
        version,
        |rows| match key {
            RealmKey::Subdomain(subdomain) => rows.by_subdomain.get(subdomain),
            RealmKey::Id(id) => rows.by_id.get(&id),
        },
        read,
        |rows, realm| match key {
            RealmKey::Subdomain(subdomain) => {
                rows.by_subdomain.insert(subdomain.to_owned(), realm);
            }
            RealmKey::Id(id) => {
                rows.by_id.insert(id, realm);
            }
        },
    )
}

/// The OpenID providers of realm `realm_id`, remembered under `version`, else `read`.
pub fn providers_at<B: Backend>(
    backend: &B,
    version: i64,
    realm_id: i64,
    read: impl FnOnce() -> StoreResult<Vec<IdentityProvider>>,
) -> StoreResult<Vec<IdentityProvider>> {
    remembered(
        backend,
        version,
        |rows| rows.providers.get(&realm_id),
        read,
        |rows, providers| {
            rows.providers.insert(realm_id, providers);
        },
    )
}

/// What `get` finds under `version`, else what `read` reads, then given to `put`. `read`
/// runs outside the cache's lock, which is never held across a round trip.
fn remembered<B: Backend, T: Clone>(
    backend: &B,
    version: i64,
    get: impl FnOnce(&Rows) -> Option<&T>,
    read: impl FnOnce() -> StoreResult<T>,
    put: impl FnOnce(&mut Rows, T),
) -> StoreResult<T> {
    let cache = backend.realm_cache();
    if let Some(found) = get(lock(cache).at(version)).cloned() {
        return Ok(found);
    }
    let found = read()?;
    if let Some(rows) = lock(cache).fillable(version) {
        put(rows, found.clone());
    }
    Ok(found)
}

fn lock(cache: &Mutex<RealmCache>) -> MutexGuard<'_, RealmCache> {
    // A panic elsewhere while it was held leaves plain maps: still usable.
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}
