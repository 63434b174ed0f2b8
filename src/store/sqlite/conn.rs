//! The seam ([`sql`](crate::store::sql)) over rusqlite: statements prepared once per
//! connection (`prepare_cached`, keyed by the translated static text), rows read into the
//! model's types, and constraint violations classified.

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, ErrorCode, ToSql, params_from_iter};

use crate::store::sql::{self, Conn, Param, SqlError, SqlResult, Violation};
use crate::store::{StoreError, StoreResult};

/// A failure of SQLite is the store being unavailable, whatever its kind: the caller can
/// only report it, and the transaction it ended has been rolled back.
impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Unavailable(err.to_string())
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(err: rusqlite::Error) -> SqlError {
        match &err {
            rusqlite::Error::SqliteFailure(e, Some(message))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                match message.strip_prefix("UNIQUE constraint failed: ") {
                    Some(columns) => SqlError::Violation(Violation::Unique(columns.to_owned())),
                    None => SqlError::Store(err.into()),
                }
            }
            _ => SqlError::Store(err.into()),
        }
    }
}

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Int(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Param::Real(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Param::Text(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
            Param::Bool(v) => v.map_or(ToSqlOutput::Owned(Value::Null), ToSqlOutput::from),
        })
    }
}

// Rows read into the model's types.
sql::row_by!(rusqlite::Row<'_>, get);

/// A connection as the tables use it, inside or outside a transaction.
pub(super) struct SqliteConn<'a>(pub(super) &'a Connection);

impl Conn for SqliteConn<'_> {
    fn execute(&mut self, sql: &'static sql::Sql, params: &[Param<'_>]) -> SqlResult<u64> {
        let changed = self
            .0
            .prepare_cached(sql.sqlite())?
            .execute(params_from_iter(params))?;
        Ok(changed as u64)
    }

    fn query(
        &mut self,
        sql: &'static sql::Sql,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn sql::Row) -> StoreResult<()>,
    ) -> SqlResult<()> {
        let mut stmt = self.0.prepare_cached(sql.sqlite())?;
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
        Ok(())
    }

    /// A write transaction holds the database's write lock (`BEGIN IMMEDIATE`): nothing
    /// more to take.
    fn lock_buckets(&mut self, _keys: &[&str]) -> SqlResult<()> {
        Ok(())
    }
}
