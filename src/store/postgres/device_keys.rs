//! The `api_key` table (migration 9): device keys, found by their digests.

use postgres::GenericClient;

use super::Postgres;
use super::pool::Db;
use super::realms::violates;
use super::users::user_select;
use crate::store::row::{self, USER_COLUMNS};
use crate::store::{
    AuditEntry, AuditEvent, DeviceKey, DeviceKeys, KeyHolder, NewDeviceKey, StoreError, StoreResult,
};

/// `row::DEVICE_KEY_COLUMNS`, as a literal for prepared statements.
macro_rules! key_columns {
    () => {
        "k.id, k.user_id, k.method, k.user_agent, k.name, k.created_at, k.last_used_at"
    };
}

impl Postgres {
    /// Stores a device's key at the end of a login, then revokes the user's least recently
    /// used keys beyond `max_live`, each audited like `audit`.
    pub(super) fn insert_device_key<C: GenericClient>(
        &self,
        db: &mut Db<'_, C>,
        user_id: i64,
        key: &NewDeviceKey<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let inserted = db.execute(
            "INSERT INTO api_key (user_id, key_hash, method, user_agent, created_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &user_id,
                &key.key_hash,
                &key.method,
                &key.user_agent,
                &key.now,
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if violates(&e, "api_key_key_hash_key") => return Err(StoreError::KeyInUse),
            Err(e) => return Err(e.into()),
        }
        let surplus = db.query(
            "DELETE FROM api_key WHERE id IN (
               SELECT id FROM api_key WHERE user_id = $1
               ORDER BY coalesce(last_used_at, created_at) DESC, id DESC OFFSET $2)
             RETURNING id",
            &[&user_id, &key.max_live],
        )?;
        for found in surplus {
            let id: i64 = found.try_get(0)?;
            self.insert_audit(
                db,
                &AuditEntry {
                    detail: Some(format!(
                        "key {id}: more than {} keys, the least recently used",
                        key.max_live
                    )),
                    ..audit.with_event(AuditEvent::KeyRevoked)
                },
            )?;
        }
        Ok(())
    }
}

/// Revokes every device key of a user: inside the transaction of a new key.
pub(super) fn delete_all<C: GenericClient>(db: &mut Db<'_, C>, user_id: i64) -> StoreResult<()> {
    db.execute("DELETE FROM api_key WHERE user_id = $1", &[&user_id])?;
    Ok(())
}

impl DeviceKeys for Postgres {
    fn create_device_key(
        &self,
        user_id: i64,
        key: &NewDeviceKey<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|db| {
            self.insert_device_key(db, user_id, key, audit)?;
            self.insert_audit(db, audit)
        })
    }

    fn key_holder(&self, api_key: &str, key_hash: &str) -> StoreResult<Option<KeyHolder>> {
        let found = self.conn()?.db().query_opt(
            concat!(
                user_select!(
                    ", NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text, ",
                    "NULL::double precision, NULL::double precision ",
                    "FROM \"user\" u WHERE u.api_key = $1 UNION ALL "
                ),
                user_select!(
                    ", k.id, k.user_id, k.method, k.user_agent, k.name, k.created_at, k.last_used_at",
                    " FROM api_key k JOIN \"user\" u ON u.id = k.user_id ",
                    "WHERE k.key_hash = $2 LIMIT 1"
                )
            ),
            &[&api_key, &key_hash],
        )?;
        found
            .map(|r| {
                Ok(KeyHolder {
                    user: row::user(&r)?,
                    device: row::device_key(&r, USER_COLUMNS)?,
                })
            })
            .transpose()
    }

    fn touch_device_key(&self, id: i64, now: f64) -> StoreResult<()> {
        self.conn()?.db().execute(
            "UPDATE api_key SET last_used_at = $2 WHERE id = $1",
            &[&id, &now],
        )?;
        Ok(())
    }

    fn device_keys(&self, user_id: i64) -> StoreResult<Vec<DeviceKey>> {
        let rows = self.conn()?.db().query(
            concat!(
                "SELECT ",
                key_columns!(),
                " FROM api_key k WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id DESC"
            ),
            &[&user_id],
        )?;
        rows.iter()
            .filter_map(|r| row::device_key(r, 0).transpose())
            .collect()
    }

    fn revoke_device_key(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|db| {
            let deleted = db.execute(
                "DELETE FROM api_key WHERE id = $1 AND user_id = $2",
                &[&id, &user_id],
            )?;
            if deleted > 0 {
                self.insert_audit(db, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn revoke_own_key(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|db| {
            let cleared = db.execute(
                "UPDATE \"user\" SET api_key = NULL WHERE id = $1 AND api_key IS NOT NULL",
                &[&user_id],
            )?;
            if cleared > 0 {
                self.insert_audit(db, audit)?;
            }
            Ok(cleared > 0)
        })
    }

    fn revoke_all_keys(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|db| {
            db.execute(
                "UPDATE \"user\" SET api_key = NULL WHERE id = $1",
                &[&user_id],
            )?;
            delete_all(db, user_id)?;
            self.insert_audit(db, audit)
        })
    }

    fn prune_device_keys(&self, now: f64) -> StoreResult<usize> {
        self.durably(|db| {
            let idle = db.query(
                "DELETE FROM api_key k USING \"user\" u, realm r
                 WHERE u.id = k.user_id AND r.id = u.realm_id
                   AND coalesce(k.last_used_at, k.created_at) < $1 - r.api_key_idle_days * 86400.0
                 RETURNING k.id, k.user_id, u.realm_id, r.api_key_idle_days",
                &[&now],
            )?;
            for found in &idle {
                let (id, user_id, realm_id, days): (i64, i64, i64, i64) = (
                    found.try_get(0)?,
                    found.try_get(1)?,
                    found.try_get(2)?,
                    found.try_get(3)?,
                );
                self.insert_audit(
                    db,
                    &AuditEntry {
                        at: now,
                        detail: Some(format!("key {id}: unused for {days} days")),
                        ..AuditEntry::new(AuditEvent::KeyRevoked, Some(realm_id), Some(user_id))
                    },
                )?;
            }
            Ok(idle.len())
        })
    }
}
