//! The `user` table: accounts, their passwords, states and keys. Emails compare through
//! `ascii_lower()`, as SQLite's NOCASE does, and the unique index on it keeps one account
//! per address and realm even when two instances create it at once.

use postgres::{GenericClient, Row};

use super::Postgres;
use super::pool::Db;
use super::realms::violates;
use crate::store::{AuditEntry, AuditEvent, NewUser, StoreError, StoreResult, User, Users, row};

macro_rules! user_select {
    ($($rest:literal),*) => {
        concat!(
            "SELECT u.id, u.realm_id, u.delivery_email, u.full_name, u.role, u.is_active, u.password, u.api_key, u.date_joined ",
            $($rest),*
        )
    };
}
pub(super) use user_select;

fn one(row: Option<Row>) -> StoreResult<Option<User>> {
    row.as_ref().map(row::user).transpose()
}

fn by_email<C: GenericClient>(
    db: &mut Db<'_, C>,
    realm_id: i64,
    email: &str,
) -> StoreResult<Option<User>> {
    one(db.query_opt(
        user_select!("FROM \"user\" u WHERE u.realm_id = $1 AND ascii_lower(u.delivery_email) = ascii_lower($2)"),
        &[&realm_id, &email.trim()],
    )?)
}

/// Stores `key` for the user with `update` (`$1` the key, `$2` the user); whether a row
/// changed. Another user's key is [`StoreError::KeyInUse`].
pub(super) fn store_key<C: GenericClient>(
    db: &mut Db<'_, C>,
    update: &'static str,
    user_id: i64,
    key: &str,
) -> StoreResult<bool> {
    match db.execute(update, &[&key, &user_id]) {
        Ok(changed) => Ok(changed > 0),
        Err(e) if violates(&e, "user_api_key_key") => Err(StoreError::KeyInUse),
        Err(e) => Err(e.into()),
    }
}

impl Users for Postgres {
    fn user_by_email(&self, realm_id: i64, email: &str) -> StoreResult<Option<User>> {
        by_email(&mut self.conn()?.db(), realm_id, email)
    }

    fn email_exists_anywhere(&self, email: &str) -> StoreResult<bool> {
        let row = self.conn()?.db().query_one(
            "SELECT EXISTS (SELECT 1 FROM \"user\" WHERE ascii_lower(delivery_email) = ascii_lower($1))",
            &[&email.trim()],
        )?;
        Ok(row.try_get(0)?)
    }

    fn user_by_api_key(&self, api_key: &str) -> StoreResult<Option<User>> {
        one(self.conn()?.db().query_opt(
            user_select!("FROM \"user\" u WHERE u.api_key = $1"),
            &[&api_key],
        )?)
    }

    fn users_of_realm(&self, realm_id: i64) -> StoreResult<Vec<User>> {
        let rows = self.conn()?.db().query(
            user_select!("FROM \"user\" u WHERE u.realm_id = $1 ORDER BY u.id"),
            &[&realm_id],
        )?;
        rows.iter().map(row::user).collect()
    }

    fn active_users(&self) -> StoreResult<Vec<(User, String)>> {
        let rows = self.conn()?.db().query(
            user_select!(
                ", r.subdomain FROM \"user\" u JOIN realm r ON r.id = u.realm_id ",
                "WHERE u.is_active ORDER BY u.delivery_email COLLATE \"C\", u.id"
            ),
            &[],
        )?;
        rows.iter()
            .map(|found| Ok((row::user(found)?, found.try_get(row::USER_COLUMNS)?)))
            .collect()
    }

    fn create_users(
        &self,
        realm_id: i64,
        users: &[NewUser],
        detail: &str,
    ) -> StoreResult<Vec<i64>> {
        self.durably(|db| {
            let mut ids = Vec::with_capacity(users.len());
            for user in users {
                let inserted = db.query_one(
                    "INSERT INTO \"user\" (realm_id, delivery_email, full_name, role, password, is_active, api_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &realm_id,
                        &user.email,
                        &user.full_name,
                        &user.role.code(),
                        &user.password,
                        &user.is_active,
                        &user.api_key,
                    ],
                );
                let id: i64 = match inserted {
                    Ok(row) => row.try_get(0)?,
                    Err(e) if violates(&e, "user_realm_email") => {
                        return Err(StoreError::Refused(format!(
                            "a user {:?} already exists in this realm",
                            user.email
                        )));
                    }
                    Err(e) if violates(&e, "user_api_key_key") => {
                        return Err(StoreError::Refused(format!(
                            "the api_key of {:?} is already in use",
                            user.email
                        )));
                    }
                    Err(e) => return Err(e.into()),
                };
                self.insert_audit(db, &AuditEntry {
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
        self.durably(|db| {
            db.execute(
                "UPDATE \"user\" SET password = $1 WHERE id = $2",
                &[&hash, &user_id],
            )?;
            super::limits::clear(db, clear_bucket)?;
            super::sessions::end_all(db, user_id)?;
            self.insert_audit(db, audit)
        })
    }

    fn set_user_active(&self, user_id: i64, active: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|db| {
            db.execute(
                "UPDATE \"user\" SET is_active = $2 WHERE id = $1",
                &[&user_id, &active],
            )?;
            if !active {
                super::sessions::end_all(db, user_id)?;
            }
            self.insert_audit(db, audit)
        })
    }

    fn replace_api_key(&self, user_id: i64, new_key: &str, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|db| {
            store_key(
                db,
                "UPDATE \"user\" SET api_key = $1 WHERE id = $2",
                user_id,
                new_key,
            )?;
            super::device_keys::delete_all(db, user_id)?;
            self.insert_audit(db, audit)
        })
    }
}
