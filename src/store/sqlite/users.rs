//! The `user` table: accounts, their passwords and states.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sqlite, is_constraint};
use crate::store::{AuditEntry, AuditEvent, NewUser, StoreError, StoreResult, User, Users, row};

pub(super) const COLUMNS: &str = "u.id, u.realm_id, u.delivery_email, u.full_name, u.role, u.is_active, u.password, u.api_key, u.date_joined";

pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    row::user(row)
}

pub(super) fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM user u WHERE u.id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

fn by_email(conn: &Connection, realm_id: i64, email: &str) -> rusqlite::Result<Option<User>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM user u WHERE u.realm_id = ?1 AND u.delivery_email = ?2"
    ))?
    .query_row(params![realm_id, email.trim()], from_row)
    .optional()
}

impl Users for Sqlite {
    fn user_by_email(&self, realm_id: i64, email: &str) -> StoreResult<Option<User>> {
        Ok(by_email(&self.conn, realm_id, email)?)
    }

    fn email_exists_anywhere(&self, email: &str) -> StoreResult<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM user WHERE delivery_email = ?1)")?
            .query_row([email.trim()], |r| r.get(0))?)
    }

    fn user_by_api_key(&self, api_key: &str) -> StoreResult<Option<User>> {
        Ok(super::keys::user_by_api_key(&self.conn, api_key)?)
    }

    fn users_of_realm(&self, realm_id: i64) -> StoreResult<Vec<User>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM user u WHERE u.realm_id = ?1 ORDER BY u.id"
        ))?;
        let users = stmt
            .query_map([realm_id], from_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    fn active_users(&self) -> StoreResult<Vec<(User, String)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS}, r.subdomain FROM user u JOIN realm r ON r.id = u.realm_id
             WHERE u.is_active ORDER BY u.delivery_email COLLATE BINARY, u.id"
        ))?;
        let users = stmt
            .query_map([], |row| Ok((from_row(row)?, row.get(row::USER_COLUMNS)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(users)
    }

    fn create_users(
        &self,
        realm_id: i64,
        users: &[NewUser],
        detail: &str,
    ) -> StoreResult<Vec<i64>> {
        self.durably(|conn| {
            let mut ids = Vec::with_capacity(users.len());
            for user in users {
                if by_email(conn, realm_id, &user.email)?.is_some() {
                    return Err(StoreError::Refused(format!(
                        "a user {:?} already exists in this realm",
                        user.email
                    )));
                }
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO user (realm_id, delivery_email, full_name, role, password, is_active, api_key)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        realm_id,
                        user.email,
                        user.full_name,
                        user.role.code(),
                        user.password,
                        user.is_active,
                        user.api_key
                    ]);
                match inserted {
                    Ok(_) => {}
                    // The email was checked above: the key is what collides.
                    Err(e) if is_constraint(&e) => {
                        return Err(StoreError::Refused(format!(
                            "the api_key of {:?} is already in use",
                            user.email
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
                let id = conn.last_insert_rowid();
                super::audit::insert(conn, &AuditEntry {
                    detail: Some(detail.to_owned()),
                    ..AuditEntry::new(AuditEvent::UserCreated, Some(realm_id), Some(id))
                })?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    fn set_password(
        &self,
        user_id: i64,
        hash: &str,
        clear_bucket: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached("UPDATE user SET password = ?1 WHERE id = ?2")?
                .execute(params![hash, user_id])?;
            super::sessions::end_all(conn, user_id)?;
            super::limits::clear(conn, clear_bucket)?;
            super::audit::insert(conn, audit)
        })
    }

    fn set_user_active(&self, user_id: i64, active: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            conn.prepare_cached("UPDATE user SET is_active = ?2 WHERE id = ?1")?
                .execute(params![user_id, active])?;
            if !active {
                super::sessions::end_all(conn, user_id)?;
            }
            super::audit::insert(conn, audit)
        })
    }

    fn replace_api_key(&self, user_id: i64, new_key: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            super::keys::store_key(
                conn,
                "UPDATE user SET api_key = ?1 WHERE id = ?2",
                user_id,
                new_key,
            )?;
            super::device_keys::delete_all(conn, user_id)?;
            super::audit::insert(conn, audit)
        })
    }
}
