//! The PostgreSQL engine: several instances share one database. Each file implements one of
//! the seam's traits, as the SQLite engine's do; this one holds the pool and runs
//! transactions.
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

mod audit;
mod device_keys;
mod limits;
mod login;
mod login_mail;
mod maintenance;
pub mod migrate;
mod pool;
mod realms;
mod recovery;
mod sessions;
mod tables;
pub mod target;
mod users;
mod web;

use postgres::error::SqlState;

use self::pool::{Conn, Db, Manager, Pool};
pub use self::target::Target;
use super::{StoreError, StoreResult, instance_name};

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> StoreError {
        StoreError::Unavailable(describe(&err))
    }
}

/// Rows read into the model by [`row`](super::row); a value of the wrong type is the store
/// failing, as any other error of the client.
impl super::row::Row for postgres::Row {
    type Error = StoreError;
    fn int(&self, index: usize) -> StoreResult<i64> {
        Ok(self.try_get(index)?)
    }
    fn real(&self, index: usize) -> StoreResult<f64> {
        Ok(self.try_get(index)?)
    }
    fn maybe_int(&self, index: usize) -> StoreResult<Option<i64>> {
        Ok(self.try_get(index)?)
    }
    fn maybe_real(&self, index: usize) -> StoreResult<Option<f64>> {
        Ok(self.try_get(index)?)
    }
    fn flag(&self, index: usize) -> StoreResult<bool> {
        Ok(self.try_get(index)?)
    }
    fn maybe_flag(&self, index: usize) -> StoreResult<Option<bool>> {
        Ok(self.try_get(index)?)
    }
    fn text(&self, index: usize) -> StoreResult<String> {
        Ok(self.try_get(index)?)
    }
    fn maybe_text(&self, index: usize) -> StoreResult<Option<String>> {
        Ok(self.try_get(index)?)
    }
    fn out_of_range(&self, index: usize, value: i64) -> StoreError {
        StoreError::Unavailable(format!(
            "column {index} holds {value}, which has no meaning"
        ))
    }
}

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

fn sql_state(err: &postgres::Error) -> Option<&SqlState> {
    err.code()
}

pub struct Postgres {
    pool: Pool,
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
        }
    }

    fn conn(&self) -> StoreResult<r2d2::PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| StoreError::Unavailable(format!("no PostgreSQL connection: {e}")))
    }

    /// Runs `f` in a transaction whose commit is flushed to the WAL before it returns.
    fn durably<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn()?;
        Conn::transaction(&mut conn, |db| {
            db.execute("SET LOCAL synchronous_commit = on", &[])?;
            f(db)
        })
    }
}
