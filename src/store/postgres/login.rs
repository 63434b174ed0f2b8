//! The transaction that ends a verified login. The user's row is locked first, so first
//! logins on several instances at once mint one key: the others wait, then read it.

use super::Postgres;
use super::users::{store_key, user_select};
use crate::store::{AuditEvent, FinishLogin, LoginEnd, Logins, StoreError, StoreResult, row};

impl Logins for Postgres {
    fn finish_login(&self, finish: &FinishLogin<'_>) -> StoreResult<LoginEnd> {
        self.durably(|db| {
            let row = db.query_opt(
                user_select!("FROM \"user\" u WHERE u.id = $1 FOR UPDATE"),
                &[&finish.user_id],
            )?;
            let Some(user) = row.as_ref().map(row::user).transpose()? else {
                return Ok(LoginEnd::UserGone);
            };
            let realm = super::realms::by_id(db, user.realm_id)?;
            if let Some(end) = finish.changed_since_verified(&user, realm.as_ref()) {
                return Ok(end);
            }
            if let (Some(rehash), Some(verified)) = (finish.rehash, finish.verified_hash) {
                db.execute(
                    "UPDATE \"user\" SET password = $1 WHERE id = $2 AND password = $3",
                    &[&rehash, &user.id, &verified],
                )?;
            }
            let (api_key, minted) = if let Some(device) = &finish.device {
                self.insert_device_key(db, user.id, device, finish.audit)?;
                (finish.new_key.to_owned(), true)
            } else {
                let minted = user.api_key.is_none()
                    && store_key(
                        db,
                        "UPDATE \"user\" SET api_key = $1 WHERE id = $2 AND api_key IS NULL",
                        user.id,
                        finish.new_key,
                    )?;
                let api_key = match (&user.api_key, minted) {
                    (Some(key), _) => key.clone(),
                    (None, true) => finish.new_key.to_owned(),
                    // The row is locked: nobody else can have set the key meanwhile.
                    (None, false) => {
                        return Err(StoreError::Unavailable("the user's key vanished".into()));
                    }
                };
                (api_key, minted)
            };
            if let Some(bucket) = finish.clear_bucket {
                super::limits::clear(db, bucket)?;
            }
            if let Some(reservation) = finish.release {
                super::limits::release(db, reservation)?;
            }
            self.insert_audit(db, finish.audit)?;
            if minted {
                self.insert_audit(db, &finish.audit.with_event(AuditEvent::KeyMinted))?;
            }
            Ok(LoginEnd::Done {
                user,
                api_key,
                minted,
            })
        })
    }
}
