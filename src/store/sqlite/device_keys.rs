//! The `api_key` table (`schema.sql`, migration 9): device keys, found by their digests.

use rusqlite::{Connection, OptionalExtension, params};

use super::users::{COLUMNS, from_row};
use super::{Sqlite, is_constraint};
use crate::store::row::{self, DEVICE_KEY_COLUMNS, USER_COLUMNS};
use crate::store::{
    AuditEntry, AuditEvent, DeviceKey, DeviceKeys, KeyHolder, NewDeviceKey, StoreError, StoreResult,
};

/// Stores a device's key at the end of a login, then revokes the user's least recently
/// used keys beyond `max_live`, each audited like `audit`.
pub(super) fn insert(
    conn: &Connection,
    user_id: i64,
    key: &NewDeviceKey<'_>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO api_key (user_id, key_hash, method, user_agent, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            user_id,
            key.key_hash,
            key.method,
            key.user_agent,
            key.name,
            key.now
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_constraint(&e) => return Err(StoreError::KeyInUse),
        Err(e) => return Err(e.into()),
    }
    let surplus: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM api_key WHERE user_id = ?1
             ORDER BY coalesce(last_used_at, created_at) DESC, id DESC LIMIT -1 OFFSET ?2",
        )?
        .query_map(params![user_id, key.max_live], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in surplus {
        delete(conn, id)?;
        super::audit::insert(
            conn,
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

/// Revokes every device key of a user: inside the transaction of a new key.
pub(super) fn delete_all(conn: &Connection, user_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM api_key WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}

fn delete(conn: &Connection, id: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached("DELETE FROM api_key WHERE id = ?1")?
        .execute([id])
}

impl DeviceKeys for Sqlite {
    fn create_device_key(
        &self,
        user_id: i64,
        key: &NewDeviceKey<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            insert(conn, user_id, key, audit)?;
            super::audit::insert(conn, audit)
        })
    }

    fn key_holder(&self, api_key: &str, key_hash: &str) -> StoreResult<Option<KeyHolder>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM user u
                 WHERE u.api_key = ?1
                 UNION ALL
                 SELECT {COLUMNS}, {DEVICE_KEY_COLUMNS} FROM api_key k
                 JOIN user u ON u.id = k.user_id WHERE k.key_hash = ?2
                 LIMIT 1"
            ))?
            .query_row(params![api_key, key_hash], |r| {
                Ok(KeyHolder {
                    user: from_row(r)?,
                    device: row::device_key(r, USER_COLUMNS)?,
                })
            })
            .optional()?)
    }

    fn touch_device_key(&self, id: i64, now: f64) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE api_key SET last_used_at = ?2 WHERE id = ?1")?
            .execute(params![id, now])?;
        Ok(())
    }

    fn device_keys(&self, user_id: i64) -> StoreResult<Vec<DeviceKey>> {
        let keys = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DEVICE_KEY_COLUMNS} FROM api_key k WHERE k.user_id = ?1
                 ORDER BY k.created_at DESC, k.id DESC"
            ))?
            .query_map([user_id], |r| row::device_key(r, 0))?
            .filter_map(Result::transpose)
            .collect::<rusqlite::Result<_>>()?;
        Ok(keys)
    }

    fn revoke_device_key(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let deleted = conn
                .prepare_cached("DELETE FROM api_key WHERE id = ?1 AND user_id = ?2")?
                .execute(params![id, user_id])?;
            if deleted > 0 {
                super::audit::insert(conn, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn revoke_own_key(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let cleared = conn
                .prepare_cached(
                    "UPDATE user SET api_key = NULL WHERE id = ?1 AND api_key IS NOT NULL",
                )?
                .execute([user_id])?;
            if cleared > 0 {
                super::audit::insert(conn, audit)?;
            }
            Ok(cleared > 0)
        })
    }

    fn revoke_all_keys(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached("UPDATE user SET api_key = NULL WHERE id = ?1")?
                .execute([user_id])?;
            delete_all(conn, user_id)?;
            super::audit::insert(conn, audit)
        })
    }

    fn prune_device_keys(&self, now: f64) -> StoreResult<usize> {
        self.durably(|conn| {
            let idle: Vec<(i64, i64, i64, i64)> = conn
                .prepare_cached(
                    "SELECT k.id, k.user_id, u.realm_id, r.api_key_idle_days FROM api_key k
                     JOIN user u ON u.id = k.user_id JOIN realm r ON r.id = u.realm_id
                     WHERE coalesce(k.last_used_at, k.created_at) < ?1 - r.api_key_idle_days * 86400.0",
                )?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for &(id, user_id, realm_id, days) in &idle {
                delete(conn, id)?;
                super::audit::insert(
                    conn,
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
