//! The `user` table: accounts, their passwords, states and keys. Emails compare without
//! regard to ASCII case: SQLite's `NOCASE` column, PostgreSQL's `ascii_lower()` index, whose
//! uniqueness keeps one account per address and realm even when two instances create it at
//! once. Keys are stored here only, as given: minting is the caller's (`auth::key`).

use crate::store::row::{self, select_user};
use crate::store::sql::{Backend, Conn, SqlError, Unique, params, sql};
use crate::store::{
    AuditEntry, AuditEvent, NewUser, StoreError, StoreResult, User, UserChanges, Users,
};

/// One account per email and realm.
const EMAIL: Unique = Unique {
    sqlite: "user.realm_id, user.delivery_email",
    postgres: "user_realm_email",
};

/// One user per key.
const API_KEY: Unique = Unique {
    sqlite: "user.api_key",
    postgres: "user_api_key_key",
};

pub(super) fn by_id(conn: &mut dyn Conn, id: i64) -> StoreResult<Option<User>> {
    let by_id = sql!(select_user!("FROM \"user\" u WHERE u.id = $1"));
    Ok(conn.opt(by_id, params![id], row::user)?)
}

fn by_email(conn: &mut dyn Conn, realm_id: i64, email: &str) -> StoreResult<Option<User>> {
    let by_email = sql!(
        sqlite: select_user!("FROM \"user\" u WHERE u.realm_id = $1 AND u.delivery_email = $2"),
        postgres: select_user!(
            "FROM \"user\" u WHERE u.realm_id = $1 ",
            "AND ascii_lower(u.delivery_email) = ascii_lower($2)"
        ),
    );
    Ok(conn.opt(by_email, params![realm_id, email.trim()], row::user)?)
}

/// Stores `key` as the user's, over any other: the one place a key is stored. Another
/// user's key is [`StoreError::KeyInUse`].
pub(super) fn store_key(conn: &mut dyn Conn, user_id: i64, key: &str) -> StoreResult<()> {
    let update = sql!("UPDATE \"user\" SET api_key = $1 WHERE id = $2");
    match conn.execute(update, params![key, user_id]) {
        Ok(_) => Ok(()),
        Err(SqlError::Violation(v)) if v.of(&API_KEY) => Err(StoreError::KeyInUse),
        Err(e) => Err(e.into()),
    }
}

/// A new user's id is never one the audit trail still names: a deleted user's rows keep
/// their id, and must not pass to the next account. PostgreSQL's identity never hands an id
/// out twice; SQLite's rowid would give the highest one again once it is deleted.
fn insert(conn: &mut dyn Conn, realm_id: i64, user: &NewUser) -> StoreResult<i64> {
    let inserted = conn.one(
        sql!(
            sqlite: "INSERT INTO \"user\" (id, realm_id, delivery_email, full_name, role, password, is_active, api_key)
             VALUES ((SELECT max(id) + 1 FROM (SELECT max(id) AS id FROM \"user\"
                        UNION ALL SELECT max(user_id) FROM audit_log)),
                     $1, $2, $3, $4, $5, $6, $7) RETURNING id",
            postgres: "INSERT INTO \"user\" (realm_id, delivery_email, full_name, role, password, is_active, api_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        ),
        params![
            realm_id,
            &user.email,
            &user.full_name,
            user.role.code(),
            &user.password,
            user.is_active,
            &user.api_key,
        ],
        |r| r.int(0),
    );
    match inserted {
        Ok(id) => Ok(id),
        Err(SqlError::Violation(v)) if v.of(&EMAIL) => Err(exists(user)),
        Err(SqlError::Violation(v)) if v.of(&API_KEY) => Err(StoreError::Refused(format!(
            "the api_key of {:?} is already in use",
            user.email
        ))),
        Err(e) => Err(e.into()),
    }
}

fn exists(user: &NewUser) -> StoreError {
    StoreError::Refused(format!(
        "a user {:?} already exists in this realm",
        user.email
    ))
}

impl<B: Backend> Users for B {
    fn user_by_email(&self, realm_id: i64, email: &str) -> StoreResult<Option<User>> {
        self.read(|conn| by_email(conn, realm_id, email))
    }

    fn email_exists_anywhere(&self, email: &str) -> StoreResult<bool> {
        let exists = sql!(
            sqlite: "SELECT EXISTS (SELECT 1 FROM \"user\" WHERE delivery_email = $1)",
            postgres: "SELECT EXISTS (SELECT 1 FROM \"user\" WHERE ascii_lower(delivery_email) = ascii_lower($1))",
        );
        self.read(|conn| Ok(conn.one(exists, params![email.trim()], |r| r.flag(0))?))
    }

    fn user_by_api_key(&self, api_key: &str) -> StoreResult<Option<User>> {
        let by_key = sql!(select_user!("FROM \"user\" u WHERE u.api_key = $1"));
        self.read(|conn| Ok(conn.opt(by_key, params![api_key], row::user)?))
    }

    fn users_of_realm(&self, realm_id: i64) -> StoreResult<Vec<User>> {
        let of_realm = sql!(select_user!(
            "FROM \"user\" u WHERE u.realm_id = $1 ORDER BY u.id"
        ));
        self.read(|conn| Ok(conn.all(of_realm, params![realm_id], row::user)?))
    }

    fn active_users(&self) -> StoreResult<Vec<(User, String)>> {
        let active = sql!(
            sqlite: select_user!(
                ", r.subdomain FROM \"user\" u JOIN realm r ON r.id = u.realm_id ",
                "WHERE u.is_active ORDER BY u.delivery_email COLLATE BINARY, u.id"
            ),
            postgres: select_user!(
                ", r.subdomain FROM \"user\" u JOIN realm r ON r.id = u.realm_id ",
                "WHERE u.is_active ORDER BY u.delivery_email COLLATE \"C\", u.id"
            ),
        );
        self.read(|conn| {
            Ok(conn.all(active, &[], |found| {
                Ok((row::user(found)?, found.text(row::USER_COLUMNS)?))
            })?)
        })
    }

    /// Each email is looked up first, and the unique index is the backstop for an
    /// instance creating the same one at once: either way the same refusal.
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
                    return Err(exists(user));
                }
                let id = insert(conn, realm_id, user)?;
                super::audit_log::insert(
                    conn,
                    &AuditEntry {
                        detail: Some(detail.to_owned()),
                        ..AuditEntry::new(AuditEvent::UserCreated, Some(realm_id), Some(id))
                    },
                )?;
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
        self.durably(|conn| super::password::set(conn, user_id, hash, clear_bucket, audit))
    }

    fn set_user_active(&self, user_id: i64, active: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            conn.execute(
                sql!("UPDATE \"user\" SET is_active = $2 WHERE id = $1"),
                params![user_id, active],
            )?;
            if !active {
                super::password::end_sessions_and_link(conn, user_id)?;
            }
            super::audit_log::insert(conn, audit)
        })
    }

    fn replace_api_key(&self, user_id: i64, new_key: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            store_key(conn, user_id, new_key)?;
            super::password::end_device_keys(conn, user_id)?;
            super::audit_log::insert(conn, audit)
        })
    }

    fn change_user(
        &self,
        user_id: i64,
        changes: &UserChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let update = sql!(
            "UPDATE \"user\" SET role = COALESCE($2, role), full_name = COALESCE($3, full_name),
               delivery_email = COALESCE($4, delivery_email)
             WHERE id = $1"
        );
        let role = changes.role.map(|role| role.code());
        let email = changes.email.as_ref().map(|email| email.trim());
        self.durably(|conn| {
            match conn.execute(update, params![user_id, role, &changes.full_name, email]) {
                Ok(_) => {}
                Err(SqlError::Violation(v)) if v.of(&EMAIL) => {
                    let email = email.unwrap_or_default();
                    return Err(StoreError::Refused(format!(
                        "a user {email:?} already exists in this realm"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            // The link went to the old address.
            if changes.email.is_some() {
                super::password::end_link(conn, user_id)?;
            }
            super::audit_log::insert(conn, audit)
        })
    }

    /// Every table that refers to a user is emptied of theirs here, before the row goes.
    fn delete_user(&self, user_id: i64, clear_bucket: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            super::password::end_sessions_and_link(conn, user_id)?;
            super::totp_device::delete(conn, user_id)?;
            super::recovery_code::delete(conn, user_id)?;
            super::passkey::delete(conn, user_id)?;
            super::password::end_device_keys(conn, user_id)?;
            super::login_mail_off::delete(conn, user_id)?;
            super::web_login_step::delete(conn, user_id)?;
            super::idp::delete_user(conn, user_id)?;
            super::rate_limit_event::clear(conn, clear_bucket)?;
            conn.execute(sql!("DELETE FROM \"user\" WHERE id = $1"), params![user_id])?;
            super::audit_log::insert(conn, audit)
        })
    }
}
