//! API keys in the `user` table: found by key, stored as given. Minting is the caller's.

use rusqlite::{Connection, OptionalExtension, params};

use super::is_constraint;
use super::users::{COLUMNS, from_row};
use crate::store::{StoreError, StoreResult, User};

pub(super) fn user_by_api_key(conn: &Connection, api_key: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM user u WHERE u.api_key = ?1"
    ))?
    .query_row([api_key], from_row)
    .optional()
}

/// Runs `update` (`?1` the key, `?2` the user) and tells whether a row changed; another
/// user's key is [`StoreError::KeyInUse`].
pub(super) fn store_key(
    conn: &Connection,
    update: &str,
    user_id: i64,
    key: &str,
) -> StoreResult<bool> {
    match conn.prepare_cached(update)?.execute(params![key, user_id]) {
        Ok(changed) => Ok(changed > 0),
        Err(e) if is_constraint(&e) => Err(StoreError::KeyInUse),
        Err(e) => Err(e.into()),
    }
}
