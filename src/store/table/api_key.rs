//! The `api_key` table (migration 9): device keys (wire.md §9.5), found by their digests.
//! A key check is one statement over the user's own key and the devices' digests.

use crate::store::realm_cache::{self, version_column};
use crate::store::row::{self, DEVICE_KEY_COLUMNS, USER_COLUMNS, device_key_columns, select_user};
use crate::store::sql::{Backend, Conn, RealmKey, SqlError, Unique, params, sql};
use crate::store::{
    AuditEntry, AuditEvent, DeviceKey, DeviceKeys, KeyHolder, NewDeviceKey, StoreError, StoreResult,
};

/// One row per digest.
const KEY_HASH: Unique = Unique {
    sqlite: "api_key.key_hash",
    postgres: "api_key_key_hash_key",
};

/// Stores a device's key, then revokes the user's least recently used keys beyond
/// `max_live`, each audited like `audit`.
pub(super) fn insert(
    conn: &mut dyn Conn,
    user_id: i64,
    key: &NewDeviceKey<'_>,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let inserted = conn.execute(
        sql!(
            "INSERT INTO api_key (user_id, key_hash, method, user_agent, name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)"
        ),
        params![
            user_id,
            key.key_hash,
            key.method,
            key.user_agent,
            key.name,
            key.now
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(SqlError::Violation(v)) if v.of(&KEY_HASH) => return Err(StoreError::KeyInUse),
        Err(e) => return Err(e.into()),
    }
    let surplus = sql!(
        sqlite: "DELETE FROM api_key WHERE id IN (
                   SELECT id FROM api_key WHERE user_id = $1
                   ORDER BY coalesce(last_used_at, created_at) DESC, id DESC
                   LIMIT -1 OFFSET $2)
                 RETURNING id",
        postgres: "DELETE FROM api_key WHERE id IN (
                     SELECT id FROM api_key WHERE user_id = $1
                     ORDER BY coalesce(last_used_at, created_at) DESC, id DESC OFFSET $2)
                   RETURNING id",
    );
    let surplus = conn.all(surplus, params![user_id, key.max_live], |r| r.int(0))?;
    for id in surplus {
        super::audit_log::insert(
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

/// Revokes every key unused for its realm's `api_key_idle_days` at `now`, each audited.
/// `$1` stands alone on one side, so that PostgreSQL takes it for the times' type (a
/// `numeric` there refused our `f64`).
pub(super) fn prune(conn: &mut dyn Conn, now: f64) -> StoreResult<u64> {
    let idle = conn.all(
        sql!(
            "DELETE FROM api_key WHERE id IN (
               SELECT k.id FROM api_key k JOIN \"user\" u ON u.id = k.user_id
               JOIN realm r ON r.id = u.realm_id
               WHERE coalesce(k.last_used_at, k.created_at) + r.api_key_idle_days * 86400 < $1)
             RETURNING id, user_id"
        ),
        params![now],
        |r| Ok((r.int(0)?, r.int(1)?)),
    )?;
    for &(id, user_id) in &idle {
        let Some(user) = super::user::by_id(conn, user_id)? else {
            continue;
        };
        let days = super::realm::by_id(conn, user.realm_id)?.map(|r| r.api_key_idle_days);
        super::audit_log::insert(
            conn,
            &AuditEntry {
                at: now,
                detail: Some(format!("key {id}: unused for {} days", days.unwrap_or(0))),
                ..AuditEntry::new(AuditEvent::KeyRevoked, Some(user.realm_id), Some(user_id))
            },
        )?;
    }
    Ok(idle.len() as u64)
}

impl<B: Backend> DeviceKeys for B {
    fn create_device_key(
        &self,
        user_id: i64,
        key: &NewDeviceKey<'_>,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            insert(conn, user_id, key, audit)?;
            super::audit_log::insert(conn, audit)
        })
    }

    /// One statement, with the realm version for the user's realm from the cache: a key
    /// check is one round trip on PostgreSQL.
    fn key_holder(&self, api_key: &str, key_hash: &str) -> StoreResult<Option<KeyHolder>> {
        let holder = sql!(concat!(
            select_user!(
                ", CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), ",
                "CAST(NULL AS TEXT), CAST(NULL AS TEXT), CAST(NULL AS DOUBLE PRECISION), ",
                "CAST(NULL AS DOUBLE PRECISION), ",
                version_column!(),
                " FROM \"user\" u WHERE u.api_key = $1 UNION ALL "
            ),
            select_user!(
                ", ",
                device_key_columns!(),
                ", ",
                version_column!(),
                " FROM api_key k JOIN \"user\" u ON u.id = k.user_id ",
                "WHERE k.key_hash = $2 LIMIT 1"
            )
        ));
        let found = self.read(|conn| {
            Ok(conn.opt(holder, params![api_key, key_hash], |r| {
                Ok((
                    row::user(r)?,
                    row::device_key(r, USER_COLUMNS)?,
                    r.int(USER_COLUMNS + DEVICE_KEY_COLUMNS)?,
                ))
            })?)
        })?;
        let Some((user, device, version)) = found else {
            return Ok(None);
        };
        let realm = realm_cache::cached_at(self, version, RealmKey::Id(user.realm_id), || {
            self.read(|conn| super::realm::by_id(conn, user.realm_id))
        })?;
        // A user's realm cannot go (a realm with users is never deleted).
        let realm =
            realm.ok_or_else(|| StoreError::Unavailable("a user's realm is gone".into()))?;
        Ok(Some(KeyHolder {
            user,
            device,
            realm,
        }))
    }

    fn touch_device_key(&self, id: i64, now: f64) -> StoreResult<()> {
        self.write(|conn| {
            conn.execute(
                sql!("UPDATE api_key SET last_used_at = $2 WHERE id = $1"),
                params![id, now],
            )?;
            Ok(())
        })
    }

    fn device_keys(&self, user_id: i64) -> StoreResult<Vec<DeviceKey>> {
        let keys = sql!(concat!(
            "SELECT ",
            device_key_columns!(),
            " FROM api_key k WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id DESC"
        ));
        self.read(|conn| {
            let rows = conn.all(keys, params![user_id], |r| row::device_key(r, 0))?;
            Ok(rows.into_iter().flatten().collect())
        })
    }

    fn revoke_device_key(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let deleted = conn.execute(
                sql!("DELETE FROM api_key WHERE id = $1 AND user_id = $2"),
                params![id, user_id],
            )?;
            if deleted > 0 {
                super::audit_log::insert(conn, audit)?;
            }
            Ok(deleted > 0)
        })
    }

    fn revoke_own_key(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let cleared = conn.execute(
                sql!("UPDATE \"user\" SET api_key = NULL WHERE id = $1 AND api_key IS NOT NULL"),
                params![user_id],
            )?;
            if cleared > 0 {
                super::audit_log::insert(conn, audit)?;
            }
            Ok(cleared > 0)
        })
    }

    fn revoke_all_keys(&self, user_id: i64, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            conn.execute(
                sql!("UPDATE \"user\" SET api_key = NULL WHERE id = $1"),
                params![user_id],
            )?;
            super::password::end_device_keys(conn, user_id)?;
            super::audit_log::insert(conn, audit)
        })
    }
}
