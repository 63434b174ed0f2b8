//! The `passkey` table (migration 11): users' passkeys (web.md §9). A use moves the
//! counter in one conditional UPDATE, so two instances never both accept a counter, and a
//! counter never goes backwards.

use crate::store::passkey::{CredentialRecord, StoredPasskey, Used};
use crate::store::row::{self, USER_COLUMNS, select_user};
use crate::store::sql::{Backend, Conn, Row, SqlError, Unique, params, sql};
use crate::store::{AuditEntry, Passkeys, StoreResult, User};

/// One row per credential id.
const CREDENTIAL_ID: Unique = Unique {
    sqlite: "passkey.credential_id",
    postgres: "passkey_credential_id_key",
};

/// The columns a passkey is read from (of `passkey p`), in [`stored`]'s order.
macro_rules! passkey_columns {
    () => {
        "p.id, p.user_id, p.credential_id, p.user_handle, p.credential, p.name, p.created_at, \
         p.last_used_at, p.counter"
    };
}

/// A passkey from [`passkey_columns!`] starting at column `first`.
fn stored(row: &dyn Row, first: usize) -> StoreResult<StoredPasskey> {
    let counter = row.int(first + 8)?;
    Ok(StoredPasskey {
        id: row.int(first)?,
        user_id: row.int(first + 1)?,
        record: CredentialRecord {
            credential_id: row.text(first + 2)?,
            user_handle: row.text(first + 3)?,
            passkey: row.text(first + 4)?,
            name: row.text(first + 5)?,
            created: row.real(first + 6)?,
            last_used: row.maybe_real(first + 7)?,
            counter: u32::try_from(counter)
                .map_err(|_| crate::store::sql::out_of_range(first + 8, counter))?,
        },
    })
}

/// Deletes every passkey of the user: inside a deletion.
pub(super) fn delete(conn: &mut dyn Conn, user_id: i64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM passkey WHERE user_id = $1"),
        params![user_id],
    )?)
}

impl<B: Backend> Passkeys for B {
    fn passkeys(&self, user_id: i64) -> StoreResult<Vec<StoredPasskey>> {
        let all = sql!(concat!(
            "SELECT ",
            passkey_columns!(),
            " FROM passkey p WHERE p.user_id = $1 ORDER BY p.created_at, p.id"
        ));
        self.read(|conn| Ok(conn.all(all, params![user_id], |r| stored(r, 0))?))
    }

    fn users_with_only_passkeys(&self, realm_id: i64) -> StoreResult<i64> {
        let count = sql!(
            "SELECT count(*) FROM \"user\" u
             WHERE u.realm_id = $1 AND u.is_active
               AND EXISTS (SELECT 1 FROM passkey p WHERE p.user_id = u.id)
               AND NOT EXISTS (SELECT 1 FROM totp_device t WHERE t.user_id = u.id)"
        );
        self.read(|conn| Ok(conn.one(count, params![realm_id], |r| r.int(0))?))
    }

    fn passkey_owner(
        &self,
        realm_id: i64,
        credential_id: &str,
    ) -> StoreResult<Option<(StoredPasskey, User)>> {
        let owner = sql!(select_user!(
            ", ",
            passkey_columns!(),
            " FROM passkey p JOIN \"user\" u ON u.id = p.user_id ",
            "WHERE p.credential_id = $1 AND u.realm_id = $2"
        ));
        self.read(|conn| {
            Ok(conn.opt(owner, params![credential_id, realm_id], |r| {
                Ok((stored(r, USER_COLUMNS)?, row::user(r)?))
            })?)
        })
    }

    /// A new passkey is unused: its `last_used` is not stored.
    fn add_passkey(
        &self,
        user_id: i64,
        record: &CredentialRecord,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        self.durably(|conn| {
            let inserted = conn.execute(
                sql!(
                    "INSERT INTO passkey (user_id, credential_id, user_handle, credential, name,
                       created_at, counter)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                params![
                    user_id,
                    &record.credential_id,
                    &record.user_handle,
                    &record.passkey,
                    &record.name,
                    record.created,
                    i64::from(record.counter),
                ],
            );
            match inserted {
                Ok(_) => {}
                Err(SqlError::Violation(v)) if v.of(&CREDENTIAL_ID) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            super::audit_log::insert(conn, audit)?;
            Ok(true)
        })
    }

    fn remove_passkey(&self, user_id: i64, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            let removed = conn.execute(
                sql!("DELETE FROM passkey WHERE id = $1 AND user_id = $2"),
                params![id, user_id],
            )?;
            if removed == 0 {
                return Ok(false);
            }
            super::audit_log::insert(conn, audit)?;
            Ok(true)
        })
    }

    fn use_passkey(&self, used: &Used) -> StoreResult<bool> {
        let counter = i64::from(used.counter);
        // `$2` is compared with the column only, so PostgreSQL types it as the column.
        self.durably(|conn| {
            let moved = conn.execute(
                sql!(
                    "UPDATE passkey SET counter = $2, credential = $3, last_used_at = $4
                     WHERE credential_id = $1 AND (counter < $2 OR (counter = 0 AND counter = $2))"
                ),
                params![&used.credential_id, counter, &used.passkey, used.at],
            )?;
            Ok(moved > 0)
        })
    }
}
