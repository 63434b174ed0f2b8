//! The store: the model ([`model`], [`ldap`], [`limits`], [`login`]) and the engines that
//! keep it, behind one seam.
//!
//! # The seam
//!
//! Callers hold a [`Store`], which derefs to `dyn` [`Engine`]. `Engine` is the set of
//! traits below, one per concern; an engine implements each of them, and gets `Engine` for
//! free. Nothing in the seam names an engine's types: values are the model's, failures are
//! [`StoreError`].
//!
//! | trait | concern |
//! | --- | --- |
//! | [`Realms`] | realms and their settings |
//! | [`Users`] | users, their passwords, states and keys |
//! | [`Limits`] | rate-limit buckets |
//! | [`Logins`] | the transaction that ends a successful login |
//! | [`Audit`] | the audit trail |
//! | [`Maintenance`] | health, schema version, integrity, backups, pruning |
//!
//! The methods are at domain granularity, and **each engine owns its transactions**: a
//! method that writes more than one row (a change and its audit row, an import, the end of
//! a login) is one transaction of the engine's, so callers never hold one open and never
//! wait on one another's. Notably:
//!
//! - [`Limits::admit`] decides an attempt against the address and username buckets at
//!   once, atomically, recording it only when both have room ([`limits::Admission`]).
//! - [`Logins::finish_login`] ends a verified login in one durable transaction: it reads
//!   the user again, writes nothing if the password, the state or the realm changed since
//!   the verification, else writes the upgraded hash (only over the verified one), stores
//!   the given key if there is none, clears the username bucket, releases the address
//!   reservation and writes the audit rows.
//! - Key minting is the caller's (`auth::key`): engines store the keys they are given and
//!   answer [`StoreError::KeyInUse`] on the (astronomically unlikely) collision.
//!
//! Writes whose loss a client would notice (keys, passwords, user and realm changes) are
//! durable when the method returns; rate-limit events and audit rows of refused logins may
//! be lost to a power cut, never to a crash of the process.
//!
//! Admin changes made by the CLI while the server runs take effect on the very next request
//! (SPEC §2): an engine caches across requests only what it can tell is unchanged at each
//! use (the SQLite engine's `cache`).
//!
//! # Engines
//!
//! - [`sqlite`]: one connection per thread, WAL, the schema in `schema.sql` as numbered
//!   migrations, realm rows and rate-limit buckets cached per connection.

pub mod ldap;
pub mod limits;
pub mod login;
pub mod model;
pub mod sqlite;

use std::fmt;
use std::ops::Deref;
use std::path::Path;

pub use ldap::LdapSettings;
pub use limits::{Admission, Attempt, Bucket, Reservation, Rule};
pub use login::{FinishLogin, LoginEnd};
pub use model::{
    AuditEntry, AuditEvent, AuditFilter, AuditRow, NewUser, Realm, RealmChanges, Role, User,
};

/// Why the store could not do what it was asked.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The database cannot be used right now: unreachable, disk full, file gone, corrupt,
    /// locked for too long. Nothing half-written remains. On the wire: wire.md §3.6's 503.
    Unavailable(String),
    /// The request cannot be done with what is stored (a realm or user that exists already,
    /// or does not exist), in words for an operator.
    Refused(String),
    /// A key handed to the store belongs to another user already: mint another.
    KeyInUse,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(reason) => write!(f, "database error: {reason}"),
            StoreError::Refused(what) => f.write_str(what),
            StoreError::KeyInUse => f.write_str("the new API key is already in use"),
        }
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait Realms {
    fn realm_by_subdomain(&self, subdomain: &str) -> StoreResult<Option<Realm>>;
    fn realm_by_id(&self, id: i64) -> StoreResult<Option<Realm>>;
    /// Every realm by id, with its number of users.
    fn realms(&self) -> StoreResult<Vec<(Realm, i64)>>;
    /// Adds a realm, audited as `audit` (whose `realm_id` the engine fills in).
    fn create_realm(&self, subdomain: &str, name: &str, audit: &AuditEntry) -> StoreResult<Realm>;
    /// Applies `changes` and writes `audit`.
    fn update_realm(
        &self,
        realm_id: i64,
        changes: &RealmChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
}

pub trait Users {
    /// The user with this email in this realm, compared without regard to ASCII case and
    /// surrounding whitespace.
    fn user_by_email(&self, realm_id: i64, email: &str) -> StoreResult<Option<User>>;
    /// Whether any realm has a user with this email.
    fn email_exists_anywhere(&self, email: &str) -> StoreResult<bool>;
    fn user_by_api_key(&self, api_key: &str) -> StoreResult<Option<User>>;
    fn users_of_realm(&self, realm_id: i64) -> StoreResult<Vec<User>>;
    /// Every active user of every realm with the realm's subdomain, by email in byte order.
    fn active_users(&self) -> StoreResult<Vec<(User, String)>>;
    /// Adds users, all or none, each audited as `user_created` with `detail`; their ids in
    /// order. A [`StoreError::Refused`] names an email or key already taken.
    fn create_users(&self, realm_id: i64, users: &[NewUser], detail: &str)
    -> StoreResult<Vec<i64>>;
    /// Sets a password hash, clears the username bucket `clear_bucket` (a new password
    /// forgets the failures against the old one), and writes `audit`.
    fn set_password(
        &self,
        user_id: i64,
        hash: &str,
        clear_bucket: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    fn set_user_active(&self, user_id: i64, active: bool, audit: &AuditEntry) -> StoreResult<()>;
    /// Replaces the user's key with `new_key` (the old one stops working at once).
    fn replace_api_key(&self, user_id: i64, new_key: &str, audit: &AuditEntry) -> StoreResult<()>;
}

pub trait Limits {
    /// Decides an attempt atomically; see [`limits::Admission`].
    fn admit(&self, attempt: &Attempt) -> StoreResult<Admission>;
    /// Gives back a place held in an address bucket.
    fn release(&self, reservation: Reservation) -> StoreResult<()>;
}

pub trait Logins {
    /// Ends a verified login; see [`login::FinishLogin`].
    fn finish_login(&self, finish: &FinishLogin<'_>) -> StoreResult<LoginEnd>;
}

pub trait Audit {
    fn audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Rows matching `filter`, oldest first.
    fn audit_rows(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
}

pub trait Maintenance {
    /// Whether the store could serve a login now, without writing anything; bounded in time.
    fn health(&self) -> StoreResult<()>;
    fn schema_version(&self) -> StoreResult<i64>;
    /// Problems found by the engine's integrity check; empty for a sound database.
    fn integrity_problems(&self) -> StoreResult<Vec<String>>;
    /// A consistent copy at `dest` (a new, empty file), safe while the server writes.
    fn backup_to(&self, dest: &Path) -> StoreResult<()>;
    /// Drops rate-limit events before `events_before` and audit rows before
    /// `audit_before`; how many of each.
    fn prune(&self, events_before: f64, audit_before: f64) -> StoreResult<(usize, usize)>;
}

/// Every concern of the store: what an engine implements.
pub trait Engine: Realms + Users + Limits + Logins + Audit + Maintenance + Send {}

impl<T: Realms + Users + Limits + Logins + Audit + Maintenance + Send> Engine for T {}

/// A connection to the store, whichever engine keeps it.
pub struct Store(Box<dyn Engine>);

impl Store {
    /// Opens (creating and migrating if needed) the database at `path`, for commands.
    pub fn open(path: &Path) -> StoreResult<Store> {
        Ok(Store(Box::new(sqlite::Sqlite::open(path)?)))
    }

    /// Opens an existing database only: a missing or empty file is an error naming it.
    pub fn open_existing(path: &Path) -> StoreResult<Store> {
        Ok(Store(Box::new(sqlite::Sqlite::open_existing(path)?)))
    }

    /// Opens the database for a request thread.
    pub fn open_for_requests(path: &Path) -> StoreResult<Store> {
        Ok(Store(Box::new(sqlite::Sqlite::open_for_requests(path)?)))
    }

    /// The realm named by an operator, or a one-line error.
    pub fn require_realm(&self, subdomain: &str) -> StoreResult<Realm> {
        self.realm_by_subdomain(subdomain)?
            .ok_or_else(|| StoreError::Refused(format!("no realm with subdomain {subdomain:?}")))
    }

    /// The operator's user, or a one-line error.
    pub fn require_user(&self, realm: &Realm, email: &str) -> StoreResult<User> {
        self.user_by_email(realm.id, email)?.ok_or_else(|| {
            StoreError::Refused(format!("no user {email:?} in realm {:?}", realm.subdomain))
        })
    }
}

impl Deref for Store {
    type Target = dyn Engine;

    fn deref(&self) -> &(dyn Engine + 'static) {
        &*self.0
    }
}
