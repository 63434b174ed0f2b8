//! The PostgreSQL schema's migrations: the sections of `schema-postgres.sql`, numbered as
//! `schema.sql`'s, applied at start in one transaction under an advisory lock.

use postgres::GenericClient;

use crate::store::schema::{self, POSTGRES};
use crate::store::{StoreError, StoreResult};

/// The advisory lock that serializes migrations of one database ("zulip-a" in ASCII).
const MIGRATION_LOCK: i64 = 0x007a_756c_6970_2d61;

/// The newest version this build knows.
pub fn newest() -> i64 {
    schema::newest(POSTGRES)
}

/// Brings the database to [`newest`]. Instances that start together queue on the lock; the
/// first migrates, the others then find nothing to do. PostgreSQL's DDL is transactional, so
/// a failure leaves the database as it was.
pub fn migrate(client: &mut postgres::Client) -> StoreResult<i64> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let current = version(&mut tx)?;
    if current == 0 {
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version BIGINT NOT NULL,
                 -- One row: the number of the last migration applied.
                 single BOOLEAN PRIMARY KEY DEFAULT true CHECK (single)
             )",
        )?;
    }
    let newest = newest();
    if current > newest {
        return Err(StoreError::Refused(format!(
            "the database is at schema version {current}, newer than this zulip-auth knows ({newest}); upgrade zulip-auth"
        )));
    }
    for (number, sql) in schema::sections(POSTGRES) {
        if number > current {
            tx.batch_execute(sql)?;
        }
    }
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)
         ON CONFLICT (single) DO UPDATE SET version = excluded.version",
        &[&newest],
    )?;
    tx.commit()?;
    Ok(newest)
}

/// The database's schema version; 0 before the first migration.
pub fn version(client: &mut impl GenericClient) -> StoreResult<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM schema_version", &[])?
        .map_or(0, |row| row.get(0)))
}
