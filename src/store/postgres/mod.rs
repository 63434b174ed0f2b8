//! The PostgreSQL engine: several instances share one database. The tables' code is shared
//! ([`table`](super::table)); this engine runs it on pooled connections ([`conn`]) as a
//! [`Backend`], and holds the pool, the migrations and the TLS target.
//!
//! The synchronous `postgres` client keeps a small runtime inside each connection, so the
//! request path stays plain threads. One pool per process, shared by every thread's store:
//! at most [`pool::MAX_CONNECTIONS`] connections, checked out within 3 s or the store is
//! unavailable (wire.md §3.6), and statements bounded by a server-side timeout.
//!
//! Durability mirrors SQLite's: sessions commit asynchronously (`synchronous_commit=off`,
//! so a rate-limit event or a refused login's audit row costs no WAL flush), and what a
//! client or an operator relies on (keys, passwords, user and realm changes) runs in
//! [`Postgres::durably`], flushed before it returns.

mod conn;
mod maintenance;
pub mod migrate;
mod pool;
mod tables;
pub mod target;

use self::pool::{Manager, Pool};
pub use self::target::Target;
use std::cell::Cell;
use std::sync::{Arc, Mutex};

use super::realm_cache::RealmCache;
use super::sql::{self, Backend};
use super::{StoreError, StoreResult, instance_name};

/// The error with its causes: "error performing TLS handshake" alone does not say which
/// certificate was refused.
fn describe(err: &postgres::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// For a transaction of an operator's command over whole tables (`db copy`, `db backup`):
/// the request path's bounds (a statement within 3 s, no transaction idle for 10 s) would
/// end it at some size (a million users' audit trail took longer), so it has none.
const NO_TIMEOUTS: &str =
    "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0";

pub struct Postgres {
    pool: Pool,
    realms: Arc<Mutex<RealmCache>>,
    look: Cell<Look>,
}

/// When the realm version is read (wire.md §2).
#[derive(Clone, Copy)]
enum Look {
    /// At every use: outside requests (commands, the pruner).
    EveryUse,
    /// Once per request, at its first use, and again after each of this handle's writes:
    /// what was read for this request, if anything yet.
    InRequest(Option<i64>),
}

impl Postgres {
    /// Connects and migrates: for commands, and once when the server starts. The first
    /// connection is made here, outside the pool, so that a failure says why at once.
    pub fn open(target: &Target) -> StoreResult<Postgres> {
        let mut client = target
            .config(instance_name())
            .connect(target.tls())
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot connect to {target}: {}", describe(&e)))
            })?;
        migrate::migrate(&mut client)?;
        Ok(Postgres::open_for_requests(target))
    }

    /// A store on the process's pool, for a request thread; connects only when used.
    pub fn open_for_requests(target: &Target) -> Postgres {
        Postgres {
            pool: target.pool(),
            realms: target.realms(),
            look: Cell::new(Look::EveryUse),
        }
    }

    fn conn(&self) -> StoreResult<r2d2::PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("no PostgreSQL connection: {e}")))
    }
}

impl Backend for Postgres {
    fn read<T>(&self, f: impl FnOnce(&mut dyn sql::Conn) -> StoreResult<T>) -> StoreResult<T> {
        f(&mut self.conn()?.db())
    }

    fn write<T>(&self, f: impl FnOnce(&mut dyn sql::Conn) -> StoreResult<T>) -> StoreResult<T> {
        self.forget_version();
        self.conn()?.transaction(|db| f(db))
    }

    /// In a transaction whose commit is flushed to the WAL before it returns.
    fn durably<T>(&self, f: impl FnOnce(&mut dyn sql::Conn) -> StoreResult<T>) -> StoreResult<T> {
        self.forget_version();
        self.conn()?.synced_transaction(|db| f(db))
    }

    fn realm_cache(&self) -> &Mutex<RealmCache> {
        &self.realms
    }

    /// One indexed read per request (issue 25): a page that reads its realm and then its
    /// providers reads the version once.
    fn cached_realm_version(&self, read: &mut dyn FnMut() -> StoreResult<i64>) -> StoreResult<i64> {
        match self.look.get() {
            Look::InRequest(Some(version)) => Ok(version),
            Look::InRequest(None) => {
                let version = read()?;
                self.look.set(Look::InRequest(Some(version)));
                Ok(version)
            }
            Look::EveryUse => read(),
        }
    }
}

impl Postgres {
    /// A write of this handle may change the realm version: the request's next use reads
    /// it again.
    fn forget_version(&self) {
        if let Look::InRequest(_) = self.look.get() {
            self.look.set(Look::InRequest(None));
        }
    }
}
