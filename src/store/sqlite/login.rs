//! The transaction that ends a verified login.

use rusqlite::params;

use super::Sqlite;
use crate::store::{AuditEvent, FinishLogin, LoginEnd, Logins, StoreResult};

impl Logins for Sqlite {
    fn finish_login(&self, finish: &FinishLogin<'_>) -> StoreResult<LoginEnd> {
        // The only synced commit of a successful login: a client holds its key from now on.
        self.durably(|conn| {
            let Some(user) = super::users::by_id(conn, finish.user_id)? else {
                return Ok(LoginEnd::UserGone);
            };
            let realm = super::realms::by_id(conn, user.realm_id)?;
            if let Some(end) = finish.changed_since_verified(&user, realm.as_ref()) {
                return Ok(end);
            }
            if let (Some(rehash), Some(verified)) = (finish.rehash, finish.verified_hash) {
                conn.prepare_cached(
                    "UPDATE user SET password = ?1 WHERE id = ?2 AND password = ?3",
                )?
                .execute(params![rehash, user.id, verified])?;
            }
            let (api_key, minted) = if let Some(device) = &finish.device {
                super::device_keys::insert(conn, user.id, device, finish.audit)?;
                (finish.new_key.to_owned(), true)
            } else {
                let minted = user.api_key.is_none()
                    && super::keys::store_key(
                        conn,
                        "UPDATE user SET api_key = ?1 WHERE id = ?2 AND api_key IS NULL",
                        user.id,
                        finish.new_key,
                    )?;
                let api_key = match (&user.api_key, minted) {
                    (Some(key), _) => key.clone(),
                    (None, true) => finish.new_key.to_owned(),
                    // Read in this transaction, so it cannot have changed: unreachable here.
                    (None, false) => super::users::by_id(conn, user.id)?
                        .and_then(|u| u.api_key)
                        .unwrap_or_default(),
                };
                (api_key, minted)
            };
            if let Some(bucket) = finish.clear_bucket {
                super::limits::clear(conn, bucket)?;
            }
            if let Some(reservation) = finish.release {
                super::limits::release(conn, reservation)?;
            }
            super::audit::insert(conn, finish.audit)?;
            if minted {
                super::audit::insert(conn, &finish.audit.with_event(AuditEvent::KeyMinted))?;
            }
            Ok(LoginEnd::Done {
                user,
                api_key,
                minted,
            })
        })
    }
}
