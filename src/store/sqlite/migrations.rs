//! The schema's numbered migrations (`schema.sql`), run at every open.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{StoreError, StoreResult};

use crate::store::schema::{self, SQLITE};

pub(super) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Runs every migration above the database's `user_version`. Two processes may start at
/// once; the immediate transaction makes the second wait and then find nothing to do.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    for (number, sql) in schema::sections(SQLITE) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = schema_version(&tx)?;
        if current < number {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", number)?;
        }
        tx.commit()?;
    }
    let current = schema_version(conn)?;
    let newest = schema::newest(SQLITE);
    if current > newest {
        return Err(StoreError::Refused(format!(
            "the database is at schema version {current}, newer than this zulip-auth knows ({newest}); upgrade zulip-auth"
        )));
    }
    Ok(())
}
