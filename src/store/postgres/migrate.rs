//! The PostgreSQL schema's migrations: the sections of `schema-postgres.sql`, numbered as
//! `schema.sql`'s, applied at start in one transaction under an advisory lock.

use postgres::GenericClient;

use crate::store::{StoreError, StoreResult};

const SCHEMA: &str = include_str!("../../../schema-postgres.sql");

/// The advisory lock that serializes migrations of one database ("zulip-a" in ASCII).
const MIGRATION_LOCK: i64 = 0x007a_756c_6970_2d61;

/// The `(number, sql)` sections of a schema file, each after a `-- migration N` line.
pub fn sections(schema: &'static str) -> Vec<(i64, &'static str)> {
    schema
        .split("-- migration ")
        .skip(1)
        .map(|section| {
            let (number, sql) = section.split_once('\n').unwrap_or((section, ""));
            let number = number
                .trim()
                .parse()
                .expect("schema files number their migrations");
            (number, sql)
        })
        .collect()
}

/// The newest version this build knows.
pub fn newest() -> i64 {
    sections(SCHEMA).last().map_or(0, |(n, _)| *n)
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
    for (number, sql) in sections(SCHEMA) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_engines_have_the_same_migration_numbers() {
        let numbers = |schema| {
            sections(schema)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        };
        let postgres = numbers(SCHEMA);
        assert_eq!(postgres, numbers(include_str!("../../../schema.sql")));
        assert_eq!(postgres, (1..=postgres.len() as i64).collect::<Vec<_>>());
    }
}
