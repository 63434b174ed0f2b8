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
//! | [`DeviceKeys`] | keys per device (wire.md §9.5) |
//! | [`RecoveryCodes`] | the second factor's recovery codes (web.md §4.1) |
//! | [`Passkeys`] | users' passkeys (web.md §9) |
//! | [`PasskeyCeremonies`] | a passkey ceremony between its two requests (web.md §9) |
//! | [`LoginMail`] | the user's switch of the mail for every new login (web.md §8.1) |
//! | [`Limits`] | rate-limit buckets |
//! | [`Logins`] | the transaction that ends a successful login |
//! | [`Audit`] | the audit trail |
//! | [`Maintenance`] | health, schema version, integrity, backups |
//! | [`Pruning`] | dropping rows no rule can see any more, in every table that grows |
//! | [`TotpDevices`] | TOTP keys and their replay guard (web.md §4) |
//! | [`LoginSteps`] | a browser between its password and its code (web.md §3) |
//! | [`ResetLinks`] | password-reset links (web.md §6) |
//! | [`Sessions`] | signed-in browser sessions (web.md §7) |
//! | [`IdentityProviders`] | a realm's OpenID providers and the sign-ins sent to them (web.md §10) |
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
//! - [`Users::set_password`] and deactivation by [`Users::set_user_active`] also end the
//!   user's sessions and reset link, in the same transaction: what the old password opened
//!   closes with it. [`ResetLinks::reset_password`] takes the link in that transaction, so
//!   a link sets a password once.
//! - Key minting is the caller's (`auth::key`): engines store the keys they are given and
//!   answer [`StoreError::KeyInUse`] on the (astronomically unlikely) collision.
//!
//! Writes whose loss a client would notice (keys, passwords, user and realm changes) are
//! durable when the method returns; rate-limit events and audit rows of refused logins may
//! be lost to a power cut, never to a crash of the process.
//!
//! Admin changes made by the CLI while the server runs take effect on the very next request
//! (wire.md §2): an engine caches across requests only what it can tell is unchanged at each
//! use: realm rows and their OpenID providers on both engines while the realm version holds
//! ([`realm_cache`]), and the SQLite engine's rate-limit buckets while the database is
//! unchanged (its `cache`).
//!
//! # One store, two dialects
//!
//! Each table's statements and row mapping are written once ([`table`], one file per table
//! or concern), over a thin seam ([`sql`]): statements with `$N` parameters, a row reader,
//! a connection, and a [`sql::Backend`] that says how an engine runs reads and
//! transactions. The traits above are implemented once, for every backend. What stays per
//! engine: connections and transactions, durability, the locks that make a decision
//! atomic, SQLite's per-connection cache, migrations, maintenance, the pool and the TLS
//! target, and `db copy`'s snapshot and bulk writes ([`Tables`]). The tests of this
//! contract are written once too, and run on both engines (`contract`).
//!
//! # Engines
//!
//! - [`sqlite`]: one connection per thread, WAL, the schema in `schema.sql` as numbered
//!   migrations, realm rows and rate-limit buckets cached per connection.
//! - `postgres` (the default feature of the same name): a small pool per process, the
//!   schema in `schema-postgres.sql` under the same numbers, for several instances on one
//!   database; what must be atomic across instances is one statement or holds a lock.
//!
//! [`Tables`] reads and replaces whole tables, for `db copy` between engines ([`copy`]).

#[cfg(test)]
mod contract;
pub mod copy;
mod database;
pub mod keys;
pub mod ldap;
pub mod limits;
pub mod login;
pub mod login_step;
pub mod model;
pub mod passkey;
#[cfg(feature = "postgres")]
pub mod postgres;
mod realm_cache;
mod realm_columns;
pub mod row;
mod schema;
pub mod sql;
pub mod sqlite;
mod table;
pub mod totp;

use std::fmt;
use std::ops::Deref;
use std::path::Path;

pub use database::{Database, instance_name, set_instance_name};
pub use keys::{DeviceKey, KeyHolder, NewDeviceKey};
pub use ldap::LdapSettings;
pub use limits::{Admission, Attempt, Bucket, Reservation, Rule};
pub use login::{FinishLogin, LoginEnd};
pub use login_step::LoginStep;
pub use model::{
    AuditEntry, AuditEvent, AuditFilter, AuditRow, NewUser, Realm, RealmChanges, Role, User,
    UserChanges,
};
pub use passkey::{Ceremony, CredentialRecord, StoredPasskey, Used};
pub use table::idp::{IdentityProvider, OidcPending};
pub use totp::TotpDevice;

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
    /// The realm of `subdomain` and its OpenID providers by name, at one read of the realm
    /// version ([`realm_cache`]): the requests that show both (`server_settings`, the
    /// sign-in page).
    fn realm_with_providers(
        &self,
        subdomain: &str,
    ) -> StoreResult<Option<(Realm, Vec<IdentityProvider>)>>;
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
    /// forgets the failures against the old one), ends the user's sessions and reset link,
    /// and writes `audit`.
    fn set_password(
        &self,
        user_id: i64,
        hash: &str,
        clear_bucket: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Deactivating also ends the user's sessions and reset link.
    fn set_user_active(&self, user_id: i64, active: bool, audit: &AuditEntry) -> StoreResult<()>;
    /// Replaces the user's key with `new_key` (the old one stops working at once) and
    /// revokes every device key of the user: "sign out everywhere".
    fn replace_api_key(&self, user_id: i64, new_key: &str, audit: &AuditEntry) -> StoreResult<()>;
    /// Changes a role, a full name or an email, and writes `audit`. A new email ends the
    /// reset link, which went to the old one; one taken in the realm is a
    /// [`StoreError::Refused`] that names it.
    fn change_user(
        &self,
        user_id: i64,
        changes: &UserChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Removes the user and every row of theirs (key, sessions, reset link, second factor,
    /// steps of a sign-in), clears the username bucket `clear_bucket`, and writes `audit`.
    /// The audit trail keeps its rows: they name the user by id.
    fn delete_user(&self, user_id: i64, clear_bucket: &str, audit: &AuditEntry) -> StoreResult<()>;
}

/// Keys per device (wire.md §9.5); minting is the caller's, as for the user's own key.
pub trait DeviceKeys {
    /// Stores a device's key made outside a login (the account page), with the limit of
    /// [`NewDeviceKey::max_live`], and writes `audit`.
    fn create_device_key(
        &self,
        user_id: i64,
        key: &NewDeviceKey<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// The user whose own key is `api_key`, or who holds the device key whose digest is
    /// `key_hash`: one indexed lookup (one statement).
    fn key_holder(&self, api_key: &str, key_hash: &str) -> StoreResult<Option<KeyHolder>>;
    /// Records a use of a device's key at `now`.
    fn touch_device_key(&self, id: i64, now: f64) -> StoreResult<()>;
    /// The user's live device keys, newest first.
    fn device_keys(&self, user_id: i64) -> StoreResult<Vec<DeviceKey>>;
    /// Revokes the user's device key `id` and writes `audit`; false, writing nothing, when
    /// the user has no such key.
    fn revoke_device_key(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool>;
    /// Clears the user's own key (the next login mints another) and writes `audit`; false,
    /// writing nothing, when they have none.
    fn revoke_own_key(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool>;
    /// Revokes every key of the user, their own and each device's, and writes `audit`.
    fn revoke_all_keys(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<()>;
}

/// Recovery codes of the second factor (web.md §4.1), kept as digests.
pub trait RecoveryCodes {
    /// Makes `hashes` the user's only codes (ending the old set) and writes `audit`.
    fn replace_recovery_codes(
        &self,
        user_id: i64,
        hashes: &[String],
        now: f64,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Deletes the user's code with this digest, atomically: true for the one request that
    /// used it.
    fn take_recovery_code(&self, user_id: i64, hash: &str) -> StoreResult<bool>;
    fn recovery_codes_left(&self, user_id: i64) -> StoreResult<i64>;
}

/// Users' passkeys (web.md §9).
pub trait Passkeys {
    /// The user's passkeys, oldest first.
    fn passkeys(&self, user_id: i64) -> StoreResult<Vec<StoredPasskey>>;
    /// The passkey with this credential id of a user of the realm `realm_id`, with its owner.
    fn passkey_owner(
        &self,
        realm_id: i64,
        credential_id: &str,
    ) -> StoreResult<Option<(StoredPasskey, User)>>;
    /// Adds a passkey to the user and writes `audit`; false, writing nothing, when its
    /// credential id is registered already.
    fn add_passkey(
        &self,
        user_id: i64,
        record: &CredentialRecord,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Removes the user's passkey `id` and writes `audit`; false, writing nothing, when the
    /// user has no such passkey.
    fn remove_passkey(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool>;
    /// Records a use, atomically and only while the counter moves forward (see [`Used`]);
    /// false, writing nothing, when it does not (a cloned authenticator) or the passkey is
    /// gone.
    fn use_passkey(&self, used: &Used) -> StoreResult<bool>;
    /// How many active users of the realm have a passkey and no TOTP key.
    fn users_with_only_passkeys(&self, realm_id: i64) -> StoreResult<i64>;
}

/// Passkey ceremonies between their two requests: any instance finishes what another began.
pub trait PasskeyCeremonies {
    fn begin_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;
    /// Reads and deletes the ceremony in one statement: of two requests, one gets it.
    fn take_ceremony(&self, id_digest: &str) -> StoreResult<Option<Ceremony>>;
}

/// Whether a user turned the mail for every new login off (web.md §8.1).
pub trait LoginMail {
    fn login_mail_off(&self, user_id: i64) -> StoreResult<bool>;
    /// Turns the user's login mail on or off and writes `audit`.
    fn set_login_mail(&self, user_id: i64, on: bool, audit: &AuditEntry) -> StoreResult<()>;
}

pub trait Limits {
    /// Decides an attempt atomically; see [`limits::Admission`].
    fn admit(&self, attempt: &Attempt) -> StoreResult<Admission>;
    /// The refusal [`Limits::admit`] gives a full bucket, read without a lock or a write (on
    /// SQLite from the connection's cache), which is how `admit` itself refuses; `None` when
    /// each bucket had room at this read, which only `admit` decides for good.
    fn full_bucket(&self, attempt: &Attempt) -> StoreResult<Option<Admission>>;
    /// Counts an event in every bucket if each has room under its rule, atomically, and
    /// answers `None`; if any is full, records nothing and answers the seconds until every
    /// full one has room again.
    fn count_if_room(&self, buckets: &[Bucket], now: f64) -> StoreResult<Option<f64>>;
    /// Gives back a place held in an address bucket.
    fn release(&self, reservation: Reservation) -> StoreResult<()>;
    /// Forgets every event of `bucket` (a user unlocked by an operator), and writes `audit`.
    fn clear_bucket(&self, bucket: &str, audit: &AuditEntry) -> StoreResult<()>;
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
    /// The database's size on disk, in bytes.
    fn size_on_disk(&self) -> StoreResult<u64>;
    /// Whether the database is a file of this machine (SQLite), which no network or server
    /// outage can hold a reader on: a front thread reads for a login only then.
    fn is_local(&self) -> bool;
    /// A request begins on this handle: what it remembers between requests is checked
    /// against the database at its first use in the request, and again only after the
    /// handle's own writes (SQLite's `PRAGMA data_version`, PostgreSQL's realm version).
    fn begin_request(&self);
    /// The request ended: from now on every use checks, as outside requests.
    fn end_request(&self);
    /// Gives the space of deleted rows back. Without `full`, in steps that keep the write
    /// lock briefly, safe while the server runs; with `full`, a rewrite of the whole
    /// database that holds its locks until it ends (README, `db vacuum`).
    fn vacuum(&self, full: bool) -> StoreResult<()>;
}

/// What [`Pruning::prune`] drops: rows no rule can see any more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prune {
    pub now: f64,
    /// Rate-limit events before this (the longest window ago).
    pub events_before: f64,
    /// Sessions idle or old under these at `now`; sign-in steps and reset links expired
    /// by `now`.
    pub sessions: SessionLimits,
}

/// Which audit rows [`Pruning::prune_audit`] drops: those written before `before`, except
/// each user's newest row of each event in `keep_newest`, whatever its age. The choice of
/// events is the caller's (a retention policy), not the store's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditRetention {
    pub before: f64,
    pub keep_newest: &'static [AuditEvent],
}

/// One batch of [`Pruning::prune_audit`]: the rows it dropped, and where the next batch
/// starts (`None`: no row before the retention is left past `after`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditPruned {
    pub deleted: u64,
    pub next: Option<f64>,
}

pub trait Pruning {
    /// Drops rate-limit events, sign-in steps, sessions and reset links as `prune` says;
    /// how many rows in all. Each statement is its own transaction, and the table that
    /// grows with every request loses a bounded batch per call: call again until it
    /// returns 0.
    fn prune(&self, prune: &Prune) -> StoreResult<u64>;
    /// One bounded batch of the audit rows `retention` drops, among the oldest rows
    /// written after `after` (the start: `f64::MIN`), in its own transaction: call again
    /// with `next` until it is `None`. Walking forward, a batch never reads again the old
    /// rows that are kept.
    fn prune_audit(&self, retention: &AuditRetention, after: f64) -> StoreResult<AuditPruned>;
}

/// Whole tables, for `db copy` ([`copy`]).
pub trait Tables {
    /// Every row of each table, by id, columns in the table's order, from one snapshot.
    fn read_tables(&self, tables: &[copy::Table]) -> StoreResult<Vec<copy::Rows>>;
    /// Replaces every row of these tables (parents first) with the given ones, ids kept, in
    /// one durable transaction.
    fn replace_tables(&self, tables: &[(&copy::Table, copy::Rows)]) -> StoreResult<()>;
}

/// Password-reset links. A user has at most one; only its token's digest is stored.
pub trait ResetLinks {
    /// Makes `token_hash` the user's only link (a newer one kills the older), valid until
    /// `expires_at`.
    fn replace_reset_link(
        &self,
        user_id: i64,
        token_hash: &str,
        now: f64,
        expires_at: f64,
    ) -> StoreResult<()>;
    /// The user of a live link: whoever it is, the caller checks they may still use it.
    fn reset_link_user(&self, token_hash: &str, now: f64) -> StoreResult<Option<User>>;
    /// Takes the user's live link `token_hash` and sets the password as
    /// [`Users::set_password`] does, in one durable transaction: false, with nothing
    /// written, if the link is gone (another request used it first) or expired.
    fn reset_password(
        &self,
        token_hash: &str,
        now: f64,
        user_id: i64,
        hash: &str,
        clear_bucket: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
}

/// Signed-in browser sessions; only the digest of a session's id is stored.
pub trait Sessions {
    fn create_session(&self, id_hash: &str, user_id: i64, now: f64) -> StoreResult<()>;
    /// The user of a live session, whose idle clock restarts at `now`.
    fn touch_session(
        &self,
        id_hash: &str,
        now: f64,
        limits: SessionLimits,
    ) -> StoreResult<Option<User>>;
    fn end_session(&self, id_hash: &str) -> StoreResult<()>;
    /// When a session began, if it exists (a fresh sign-in re-confirms, web.md §10.5).
    fn session_started_at(&self, id_hash: &str) -> StoreResult<Option<f64>>;
}

/// How long a session lives: at most `idle` seconds unused, and `lifetime` seconds in all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionLimits {
    pub idle: f64,
    pub lifetime: f64,
}

/// Users' TOTP keys.
pub trait TotpDevices {
    fn totp_device(&self, user_id: i64) -> StoreResult<Option<TotpDevice>>;
    /// Gives the user this key, replacing any other, with `last_step` already used, and
    /// writes `audit`.
    fn set_totp_device(
        &self,
        user_id: i64,
        secret: &str,
        last_step: Option<i64>,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Removes the user's key and writes `audit`; false, writing nothing, if there was none.
    fn delete_totp_device(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool>;
    /// Records `step` as used if it is later than the last used one, atomically: the
    /// replay guard, so two instances never both accept one code. False if it is not.
    fn accept_totp_step(&self, user_id: i64, step: i64) -> StoreResult<bool>;
}

/// The web sign-in's steps between the password and the code.
pub trait LoginSteps {
    fn create_login_step(&self, token_hash: &str, step: &LoginStep) -> StoreResult<()>;
    /// The step behind a token digest if it is still live at `now`, with its user as stored.
    fn login_step(&self, token_hash: &str, now: f64) -> StoreResult<Option<(LoginStep, User)>>;
    /// Deletes a step; false if it was gone (taken by another request), so a step is
    /// finished once.
    fn take_login_step(&self, token_hash: &str) -> StoreResult<bool>;
}

/// A realm's OpenID providers (web.md §10), and the sign-ins sent to them until their callback.
pub trait IdentityProviders {
    /// The realm's providers, by name.
    fn identity_providers(&self, realm_id: i64) -> StoreResult<Vec<IdentityProvider>>;
    fn identity_provider_by_id(&self, id: i64) -> StoreResult<Option<IdentityProvider>>;
    /// Adds a provider (its `id` is ignored) and writes `audit`; a name the realm has
    /// already is a [`StoreError::Refused`] that names it.
    fn create_identity_provider(
        &self,
        idp: &IdentityProvider,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Replaces the settings of the provider `idp.id` (not its realm or name), and writes
    /// `audit`.
    fn update_identity_provider(
        &self,
        idp: &IdentityProvider,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Removes the provider and the sign-ins sent to it, and writes `audit`; false, writing
    /// nothing, if there was none.
    fn delete_identity_provider(&self, id: i64, audit: &AuditEntry) -> StoreResult<bool>;
    fn create_oidc_pending(&self, state_hash: &str, pending: &OidcPending) -> StoreResult<()>;
    /// Takes the sign-in behind a state's digest, atomically: the one request that gets it
    /// gets it live at `now`, or `None`.
    fn take_oidc_pending(&self, state_hash: &str, now: f64) -> StoreResult<Option<OidcPending>>;
}

/// Every concern of the store: what an engine implements.
pub trait Engine:
    Realms
    + Users
    + DeviceKeys
    + RecoveryCodes
    + Passkeys
    + PasskeyCeremonies
    + LoginMail
    + Limits
    + Logins
    + Audit
    + Maintenance
    + Pruning
    + TotpDevices
    + LoginSteps
    + ResetLinks
    + Sessions
    + IdentityProviders
    + Tables
    + Send
{
}

impl<T> Engine for T where
    T: Realms
        + Users
        + DeviceKeys
        + RecoveryCodes
        + Passkeys
        + PasskeyCeremonies
        + LoginMail
        + Limits
        + Logins
        + Audit
        + Maintenance
        + Pruning
        + TotpDevices
        + LoginSteps
        + ResetLinks
        + Sessions
        + IdentityProviders
        + Tables
        + Send
{
}

/// A connection to the store, whichever engine keeps it.
pub struct Store(Box<dyn Engine>);

impl Store {
    /// Opens (creating and migrating if needed) the database, for commands.
    pub fn open(db: impl Into<Database>) -> StoreResult<Store> {
        db.into().open()
    }

    /// Opens an existing database only: a missing or empty SQLite file is an error naming it.
    pub fn open_existing(db: impl Into<Database>) -> StoreResult<Store> {
        db.into().open_existing()
    }

    /// Opens the database for a request thread.
    pub fn open_for_requests(db: impl Into<Database>) -> StoreResult<Store> {
        db.into().open_for_requests()
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
