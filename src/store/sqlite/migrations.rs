//! The schema's numbered migrations (`schema.sql`), run at every open.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

const SCHEMA: &str = include_str!("../../../schema.sql");

/// The `(number, sql)` migration sections of `schema.sql`.
pub(super) fn migrations() -> impl Iterator<Item = (i64, &'static str)> {
    SCHEMA.split("-- migration ").skip(1).map(|section| {
        let (number, sql) = section.split_once('\n').unwrap_or((section, ""));
        let number = number
            .trim()
            .parse()
            .expect("schema.sql numbers its migrations");
        (number, sql)
    })
}

pub(super) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Runs every migration above the database's `user_version`. Two processes may start at
/// once; the immediate transaction makes the second wait and then find nothing to do.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    for (number, sql) in migrations() {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = schema_version(&tx)?;
        if current < number {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", number)?;
        }
        tx.commit()?;
    }
    let current = schema_version(conn)?;
    let newest = migrations().map(|(n, _)| n).max().unwrap_or(0);
    if current > newest {
        return Err(StoreError::Refused(format!(
            "the database is at schema version {current}, newer than this zulip-auth knows ({newest}); upgrade zulip-auth"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        let numbers: Vec<i64> = migrations().map(|(n, _)| n).collect();
        let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
        assert_eq!(numbers, expected);
    }
}
