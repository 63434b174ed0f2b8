//! A password change and a deactivation, which close what the old state opened: the user's
//! browser sessions (`web_session`) and reset link (`password_reset`) end in the same
//! transaction. A concern of its own, below the tables that call it, so that the user, reset
//! and session tables do not call one another.

use crate::store::sql::{Conn, params, sql};
use crate::store::{AuditEntry, StoreResult};

/// Writes a new password hash and closes what the old one opened: the user's sessions and
/// reset link end, the username's bucket is cleared, and `audit` is written. Inside the
/// caller's durable transaction.
pub(super) fn set(
    conn: &mut dyn Conn,
    user_id: i64,
    hash: &str,
    clear_bucket: &str,
    audit: &AuditEntry,
) -> StoreResult<()> {
    conn.execute(
        sql!("UPDATE \"user\" SET password = $1 WHERE id = $2"),
        params![hash, user_id],
    )?;
    end_sessions_and_link(conn, user_id)?;
    super::rate_limit_event::clear(conn, clear_bucket)?;
    super::audit_log::insert(conn, audit)
}

/// Ends the user's sessions and reset link: a password change, a deactivation or a deletion.
pub(super) fn end_sessions_and_link(conn: &mut dyn Conn, user_id: i64) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM web_session WHERE user_id = $1"),
        params![user_id],
    )?;
    end_link(conn, user_id)
}

/// Ends the user's reset link alone: their email changed, and the link went to the old one.
pub(super) fn end_link(conn: &mut dyn Conn, user_id: i64) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM password_reset WHERE user_id = $1"),
        params![user_id],
    )?;
    Ok(())
}

/// Revokes every device key of a user: inside the transaction of a new key or of the
/// user's deletion.
pub(super) fn end_device_keys(conn: &mut dyn Conn, user_id: i64) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM api_key WHERE user_id = $1"),
        params![user_id],
    )?;
    Ok(())
}
