//! The seam ([`sql`](crate::store::sql)) over the `postgres` client: statements prepared once
//! per pooled connection (keyed by their static text, [`Db`]), rows read into the model's
//! types, constraint violations classified, and the advisory locks on rate-limit buckets.

use postgres::GenericClient;
use postgres::error::SqlState;
use postgres::types::ToSql;

use super::describe;
use super::pool::Db;
use crate::store::sql::{self, Conn, Param, SqlError, SqlResult, Violation};
use crate::store::{StoreError, StoreResult};

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> StoreError {
        StoreError::Unavailable(describe(&err))
    }
}

impl From<postgres::Error> for SqlError {
    fn from(err: postgres::Error) -> SqlError {
        let unique = (err.code() == Some(&SqlState::UNIQUE_VIOLATION))
            .then(|| err.as_db_error().and_then(|e| e.constraint()))
            .flatten();
        match unique {
            Some(name) => SqlError::Violation(Violation::Unique(name.to_owned())),
            None => SqlError::Store(err.into()),
        }
    }
}

fn as_sql<'a>(param: &'a Param<'_>) -> &'a (dyn ToSql + Sync) {
    match param {
        Param::Int(v) => v,
        Param::Real(v) => v,
        Param::Text(v) => v,
        Param::Bool(v) => v,
    }
}

// A value of the wrong type is the store failing, as any other error of the client.
sql::row_by!(postgres::Row, try_get);

impl<C: GenericClient> Conn for Db<'_, C> {
    fn execute(&mut self, sql: &'static sql::Sql, params: &[Param<'_>]) -> SqlResult<u64> {
        let values: Vec<_> = params.iter().map(as_sql).collect();
        Ok(Db::execute(self, sql.postgres(), &values)?)
    }

    fn query(
        &mut self,
        sql: &'static sql::Sql,
        params: &[Param<'_>],
        each: &mut dyn FnMut(&dyn sql::Row) -> StoreResult<()>,
    ) -> SqlResult<()> {
        let values: Vec<_> = params.iter().map(as_sql).collect();
        for row in Db::query(self, sql.postgres(), &values)? {
            each(&row)?;
        }
        Ok(())
    }

    /// Transaction-scoped advisory locks, in one (sorted) order for every caller.
    fn lock_buckets(&mut self, keys: &[&str]) -> SqlResult<()> {
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        keys.dedup();
        Db::execute(
            self,
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
             FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            &[&keys],
        )?;
        Ok(())
    }
}
