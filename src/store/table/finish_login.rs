//! The transaction that ends a verified login. The user's row is read under the
//! transaction's lock (SQLite's write lock, PostgreSQL's `FOR UPDATE`), so first logins on
//! several workers or instances at once mint one key: the others wait, then read it.

use crate::store::realm_columns;
use crate::store::row::{self, USER_COLUMNS, select_user};
use crate::store::sql::{Backend, Dialect, params, sql};
use crate::store::{AuditEvent, FinishLogin, LoginEnd, Logins, StoreResult};

impl<B: Backend> Logins for B {
    fn finish_login(&self, finish: &FinishLogin<'_>) -> StoreResult<LoginEnd> {
        // The user's row with their realm's, in one round trip; PostgreSQL locks the user's
        // (SQLite's write transaction holds the database already).
        let locked = sql!(built dialects: |dialect| {
            format!(
                concat!(
                    select_user!(", {realm} FROM \"user\" u JOIN realm r ON r.id = u.realm_id "),
                    "WHERE u.id = $1{lock}"
                ),
                realm = realm_columns::select_list(),
                lock = match dialect {
                    Dialect::Sqlite => "",
                    Dialect::Postgres => " FOR UPDATE OF u",
                }
            )
        });
        // The only synced commit of a successful login: a client holds its key from now on.
        self.durably(|conn| {
            let found = conn.opt(locked, params![finish.user_id], |r| {
                Ok((row::user(r)?, row::realm_at(r, USER_COLUMNS)?))
            })?;
            let Some((user, realm)) = found else {
                return Ok(LoginEnd::UserGone);
            };
            if let Some(end) = finish.changed_since_verified(&user, &realm) {
                return Ok(end);
            }
            if let (Some(rehash), Some(verified)) = (finish.rehash, finish.verified_hash) {
                conn.execute(
                    sql!("UPDATE \"user\" SET password = $1 WHERE id = $2 AND password = $3"),
                    params![rehash, user.id, verified],
                )?;
            }
            // The row is locked: a key it did not hold when read cannot appear meanwhile,
            // so a user without one gets the given key.
            let (api_key, minted) = match (&finish.device, &user.api_key) {
                // Keys per device (wire.md §9.5): this login's own key, as its digest.
                (Some(device), _) => {
                    super::api_key::insert(conn, user.id, device, finish.audit)?;
                    (finish.new_key.to_owned(), true)
                }
                (None, Some(key)) => (key.clone(), false),
                (None, None) => {
                    super::user::store_key(conn, user.id, finish.new_key)?;
                    (finish.new_key.to_owned(), true)
                }
            };
            if let Some(bucket) = finish.clear_bucket {
                super::rate_limit_event::clear(conn, bucket)?;
            }
            if let Some(reservation) = finish.release {
                super::rate_limit_event::release(conn, reservation)?;
            }
            super::audit_log::insert(conn, finish.audit)?;
            if minted {
                let minted_row = finish.audit.with_event(AuditEvent::KeyMinted);
                super::audit_log::insert(conn, &minted_row)?;
            }
            Ok(LoginEnd::Done {
                user,
                api_key,
                minted,
            })
        })
    }
}
