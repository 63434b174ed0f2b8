//! The seam between the tables and the engines: what a table's code needs of a database,
//! written once, so that each statement and each row mapping exists once for both engines.
//!
//! - [`Sql`]: a statement written once with PostgreSQL's `$N` parameters ([`sql!`]), and
//!   translated to SQLite's `?N` once per statement. (SQLite accepts `$N` too, but numbers
//!   such parameters by their first appearance, not by N.) Where the dialects really differ
//!   (email comparison, `FOR UPDATE`, the byte-order collation) a statement has a text per
//!   dialect.
//! - [`Param`] and [`Row`]: values in and out, in the model's types.
//! - [`Conn`]: a connection or transaction of either engine; constraint violations are
//!   classified once ([`Violation`]).
//! - [`Backend`]: what stays per engine: how a read, a write transaction and a durable one
//!   are run, and what a connection may cache between requests.
//!
//! A statement builder (sea-query with sea-query-rusqlite and sea-query-postgres) was
//! considered and does not fit: the newest sea-query-rusqlite (0.8.0) binds rusqlite 0.38,
//! and beside the locked rusqlite 0.43 that would link SQLite twice (two `libsqlite3-sys`),
//! which Cargo refuses. Our statements are few and fixed, so the seam is this small module.

use std::fmt;
use std::sync::{Mutex, OnceLock};

use super::limits::Bucket;
use super::realm_cache::RealmCache;
use super::{StoreError, StoreResult};

/// One parameter of a statement; `None` is NULL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    Bool(Option<bool>),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(Some(value))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Param::Int(value)
    }
}

impl From<f64> for Param<'_> {
    fn from(value: f64) -> Self {
        Param::Real(Some(value))
    }
}

impl From<bool> for Param<'_> {
    fn from(value: bool) -> Self {
        Param::Bool(Some(value))
    }
}

impl From<Option<bool>> for Param<'_> {
    fn from(value: Option<bool>) -> Self {
        Param::Bool(value)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Param::Text(value.as_deref())
    }
}

/// The parameters of a statement, in `$N` order.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::sql::Param::from($value)),*]
    };
}
pub(crate) use params;

/// A result row of either engine, read by column index.
pub trait Row {
    fn int(&self, index: usize) -> StoreResult<i64>;
    fn maybe_int(&self, index: usize) -> StoreResult<Option<i64>>;
    fn real(&self, index: usize) -> StoreResult<f64>;
    fn maybe_real(&self, index: usize) -> StoreResult<Option<f64>>;
    fn flag(&self, index: usize) -> StoreResult<bool>;
    fn maybe_flag(&self, index: usize) -> StoreResult<Option<bool>>;
    fn text(&self, index: usize) -> StoreResult<String>;
    fn maybe_text(&self, index: usize) -> StoreResult<Option<String>>;
}

/// [`Row`] for an engine's row type, whose `$get(index)` reads a column as any of the model's
/// types and fails with an error that converts into [`StoreError`].
macro_rules! row_by {
    ($row:ty, $get:ident) => {
        impl $crate::store::sql::Row for $row {
            fn int(&self, index: usize) -> $crate::store::StoreResult<i64> {
                Ok(self.$get(index)?)
            }
            fn maybe_int(&self, index: usize) -> $crate::store::StoreResult<Option<i64>> {
                Ok(self.$get(index)?)
            }
            fn real(&self, index: usize) -> $crate::store::StoreResult<f64> {
                Ok(self.$get(index)?)
            }
            fn maybe_real(&self, index: usize) -> $crate::store::StoreResult<Option<f64>> {
                Ok(self.$get(index)?)
            }
            fn flag(&self, index: usize) -> $crate::store::StoreResult<bool> {
                Ok(self.$get(index)?)
            }
            fn maybe_flag(&self, index: usize) -> $crate::store::StoreResult<Option<bool>> {
                Ok(self.$get(index)?)
            }
            fn text(&self, index: usize) -> $crate::store::StoreResult<String> {
                Ok(self.$get(index)?)
            }
            fn maybe_text(&self, index: usize) -> $crate::store::StoreResult<Option<String>> {
                Ok(self.$get(index)?)
            }
        }
    };
}
pub(crate) use row_by;

/// An integer in column `index` that the model has no meaning for.
pub fn out_of_range(index: usize, value: i64) -> StoreError {
    StoreError::Unavailable(format!(
        "column {index} holds {value}, which has no meaning"
    ))
}

/// Where a statement's text comes from.
enum Text {
    /// One text for both, with `$N` parameters.
    Shared(&'static str),
    /// A text per dialect, each with `$N` parameters.
    Dialects {
        sqlite: &'static str,
        postgres: &'static str,
    },
    /// One text with `$N` parameters, built once at first use (from column lists).
    Built(fn() -> String),
    /// As `Built`, with a text per dialect.
    BuiltDialects(fn(Dialect) -> String),
}

/// Which engine a per-dialect text is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement, written once; made by [`sql!`] as a static, so that its translation is
/// made once and an engine's statement cache can key on its text.
pub struct Sql {
    text: Text,
    built: OnceLock<String>,
    sqlite: OnceLock<String>,
}

impl Sql {
    pub const fn new(text: &'static str) -> Sql {
        Sql::of(Text::Shared(text))
    }

    pub const fn dialects(sqlite: &'static str, postgres: &'static str) -> Sql {
        Sql::of(Text::Dialects { sqlite, postgres })
    }

    pub const fn built(build: fn() -> String) -> Sql {
        Sql::of(Text::Built(build))
    }

    pub const fn built_dialects(build: fn(Dialect) -> String) -> Sql {
        Sql::of(Text::BuiltDialects(build))
    }

    const fn of(text: Text) -> Sql {
        Sql {
            text,
            built: OnceLock::new(),
            sqlite: OnceLock::new(),
        }
    }

    /// The text with `$N` parameters, as PostgreSQL takes it.
    pub fn postgres(&'static self) -> &'static str {
        match &self.text {
            Text::Shared(text) | Text::Dialects { postgres: text, .. } => text,
            Text::Built(build) => self.built.get_or_init(build),
            Text::BuiltDialects(build) => self.built.get_or_init(|| build(Dialect::Postgres)),
        }
    }

    /// The text with `?N` parameters, as SQLite numbers them.
    pub fn sqlite(&'static self) -> &'static str {
        self.sqlite.get_or_init(|| match &self.text {
            Text::Dialects { sqlite, .. } => to_sqlite(sqlite),
            Text::BuiltDialects(build) => to_sqlite(&build(Dialect::Sqlite)),
            _ => to_sqlite(self.postgres()),
        })
    }
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Text::Shared(text) | Text::Dialects { postgres: text, .. } => f.write_str(text),
            Text::Built(_) | Text::BuiltDialects(_) => f.write_str("(built statement)"),
        }
    }
}

/// `$N` to `?N`. Our statements hold no `$` in literals or identifiers.
fn to_sqlite(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// A static [`Sql`]: `sql!("... $1 ...")`, `sql!(sqlite: "...", postgres: "...")`,
/// `sql!(built: function)`, or `sql!(built dialects: function of the Dialect)`.
macro_rules! sql {
    (sqlite: $sqlite:expr, postgres: $postgres:expr $(,)?) => {{
        static SQL: $crate::store::sql::Sql = $crate::store::sql::Sql::dialects($sqlite, $postgres);
        &SQL
    }};
    (built dialects: $build:expr) => {{
        static SQL: $crate::store::sql::Sql = $crate::store::sql::Sql::built_dialects($build);
        &SQL
    }};
    (built: $build:expr) => {{
        static SQL: $crate::store::sql::Sql = $crate::store::sql::Sql::built($build);
        &SQL
    }};
    ($text:expr) => {{
        static SQL: $crate::store::sql::Sql = $crate::store::sql::Sql::new($text);
        &SQL
    }};
}
pub(crate) use sql;

/// A unique constraint, by the name each engine reports it under.
#[derive(Debug)]
pub struct Unique {
    /// SQLite's column list: `table.column, ...`.
    pub sqlite: &'static str,
    /// PostgreSQL's constraint or index name.
    pub postgres: &'static str,
}

/// A statement refused by a constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// A unique constraint, as the engine names it ([`Unique`]).
    Unique(String),
}

impl Violation {
    pub fn of(&self, constraint: &Unique) -> bool {
        match self {
            Violation::Unique(name) => name == constraint.sqlite || name == constraint.postgres,
        }
    }
}

/// Why a statement failed: a constraint, or the store.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlError {
    Violation(Violation),
    Store(StoreError),
}

impl From<StoreError> for SqlError {
    fn from(err: StoreError) -> SqlError {
        SqlError::Store(err)
    }
}

impl From<SqlError> for StoreError {
    /// A violation nobody expected is the store failing.
    fn from(err: SqlError) -> StoreError {
        match err {
            SqlError::Store(err) => err,
            SqlError::Violation(Violation::Unique(name)) => {
                StoreError::Unavailable(format!("unique constraint failed: {name}"))
            }
        }
    }
}

pub type SqlResult<T> = Result<T, SqlError>;

/// A connection, or a transaction on one, of either engine. Statements are prepared once
/// per connection and cached by their static text.
pub trait Conn {
    /// Runs a statement; how many rows it changed.
    fn execute(&mut self, sql: &'static Sql, params: &[Param<'_>]) -> SqlResult<u64>;
    /// Runs a query, handing each row to `each` in order.
    fn query(
        &mut self,
        sql: &'static Sql,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn Row) -> StoreResult<()>,
    ) -> SqlResult<()>;
    /// Takes the locks that make a decision on these rate-limit buckets atomic, until the
    /// transaction ends: PostgreSQL's advisory locks (in one order for every caller, so
    /// two never wait on each other in a circle); nothing on SQLite, whose write
    /// transactions hold the database's lock.
    fn lock_buckets(&mut self, keys: &[&str]) -> SqlResult<()>;
}

impl dyn Conn + '_ {
    /// Every row, read by `read`.
    pub fn all<T>(
        &mut self,
        sql: &'static Sql,
        params: &[Param<'_>],
        read: impl Fn(&dyn Row) -> StoreResult<T>,
    ) -> SqlResult<Vec<T>> {
        let mut found = Vec::new();
        self.query(sql, params, &mut |row| {
            found.push(read(row)?);
            Ok(())
        })?;
        Ok(found)
    }

    /// The first row, if any, read by `read`.
    pub fn opt<T>(
        &mut self,
        sql: &'static Sql,
        params: &[Param<'_>],
        read: impl Fn(&dyn Row) -> StoreResult<T>,
    ) -> SqlResult<Option<T>> {
        let mut found = None;
        self.query(sql, params, &mut |row| {
            if found.is_none() {
                found = Some(read(row)?);
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// The first row, which must be there (an aggregate, an `INSERT ... RETURNING`).
    pub fn one<T>(
        &mut self,
        sql: &'static Sql,
        params: &[Param<'_>],
        read: impl Fn(&dyn Row) -> StoreResult<T>,
    ) -> SqlResult<T> {
        self.opt(sql, params, read)?.ok_or_else(|| {
            SqlError::Store(StoreError::Unavailable(format!(
                "no row from a statement that returns one: {sql:?}"
            )))
        })
    }
}

/// Which realm a cached lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealmKey<'a> {
    Subdomain(&'a str),
    Id(i64),
}

/// An engine, as the tables use it. Each method runs `f` on a connection of its own; the
/// tables' traits are implemented once for every backend (`table`).
pub trait Backend {
    /// Outside a transaction: each statement on its own.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T>;
    /// In a write transaction whose read-then-write is atomic (with [`Conn::lock_buckets`]
    /// where a decision needs it); its commit may be lost to a power cut, never to a crash.
    fn write<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T>;
    /// As [`Backend::write`], synced to disk before it returns: for what a client or an
    /// operator relies on (keys, passwords, user and realm changes).
    fn durably<T>(&self, f: impl FnOnce(&mut dyn Conn) -> StoreResult<T>) -> StoreResult<T>;
    /// After a bulk write (a pruning's batch), outside any transaction: hands what it wrote
    /// to the database file now, without waiting for anyone, so that the commit of a request
    /// that comes next does not do it (SQLite's WAL checkpoint: the commit that finds the
    /// journal past 1,000 pages copies them back and syncs, and a batch writes most of
    /// them). Nothing where the engine does it apart (PostgreSQL).
    fn settle(&self) -> StoreResult<()> {
        Ok(())
    }
    /// The realm rows this handle remembers between requests
    /// ([`realm_cache`](super::realm_cache)).
    fn realm_cache(&self) -> &Mutex<RealmCache>;
    /// The realm version as `read` reads it, or as remembered while the database is
    /// unchanged.
    fn cached_realm_version(&self, read: &mut dyn FnMut() -> StoreResult<i64>) -> StoreResult<i64> {
        read()
    }
    /// A bucket's newest events as `read` reads them, or as remembered while the database
    /// is unchanged (newest first, within the window at `now`).
    fn cached_events(
        &self,
        _bucket: &Bucket,
        _now: f64,
        read: &mut dyn FnMut() -> StoreResult<Vec<f64>>,
    ) -> StoreResult<Vec<f64>> {
        read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_as_written() {
        assert_eq!(
            to_sqlite("SELECT $2, $1, $10 FROM t WHERE a = $1"),
            "SELECT ?2, ?1, ?10 FROM t WHERE a = ?1"
        );
        let both = sql!(sqlite: "SELECT $1 COLLATE BINARY", postgres: "SELECT $1 COLLATE \"C\"");
        assert_eq!(both.sqlite(), "SELECT ?1 COLLATE BINARY");
        assert_eq!(both.postgres(), "SELECT $1 COLLATE \"C\"");
        let shared = sql!("UPDATE t SET a = $2 WHERE id = $1");
        assert_eq!(shared.sqlite(), "UPDATE t SET a = ?2 WHERE id = ?1");
        assert!(
            std::ptr::eq(shared.sqlite(), shared.sqlite()),
            "translated once"
        );
        let built = sql!(built dialects: |dialect| match dialect {
            Dialect::Sqlite => "SELECT $1".to_owned(),
            Dialect::Postgres => "SELECT $1 FOR UPDATE".to_owned(),
        });
        assert_eq!(built.sqlite(), "SELECT ?1");
        assert_eq!(built.postgres(), "SELECT $1 FOR UPDATE");
    }
}
