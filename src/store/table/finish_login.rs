//! The transaction that ends a verified login. The user's row is read under the
//! transaction's lock (SQLite's write lock, PostgreSQL's `FOR UPDATE`), so first logins on
//! several workers or instances at once mint one key: the others wait, then read it.

use crate::store::row::{self, select_user};
use crate::store::sql::{Backend, params, sql};
use crate::store::{AuditEvent, FinishLogin, LoginEnd, Logins, StoreResult};

impl<B: Backend> Logins for B {
    fn finish_login(&self, finish: &FinishLogin<'_>) -> StoreResult<LoginEnd> {
        let locked = sql!(
            sqlite: select_user!("FROM \"user\" u WHERE u.id = $1"),
            postgres: select_user!("FROM \"user\" u WHERE u.id = $1 FOR UPDATE"),
        );
        // The only synced commit of a successful login: a client holds its key from now on.
        self.durably(|conn| {
            let Some(user) = conn.opt(locked, params![finish.user_id], row::user)? else {
                return Ok(LoginEnd::UserGone);
            };
            let realm = super::realm::by_id(conn, user.realm_id)?;
            if let Some(end) = finish.changed_since_verified(&user, realm.as_ref()) {
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
