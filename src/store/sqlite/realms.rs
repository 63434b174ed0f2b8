//! The `realm` table.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::Sqlite;
use crate::store::ldap::Column;
use crate::store::{AuditEntry, Realm, RealmChanges, Realms, StoreError, StoreResult};
use crate::store::{realm_columns, row};

static COLUMNS: LazyLock<String> = LazyLock::new(realm_columns::select_list);

fn from_row(row: &Row<'_>) -> rusqlite::Result<Realm> {
    row::realm(row)
}

pub(super) fn by_subdomain(conn: &Connection, subdomain: &str) -> rusqlite::Result<Option<Realm>> {
    conn.prepare_cached(&format!(
        "SELECT {} FROM realm r WHERE r.subdomain = ?1",
        *COLUMNS
    ))?
    .query_row([subdomain], from_row)
    .optional()
}

pub(super) fn by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Realm>> {
    conn.prepare_cached(&format!("SELECT {} FROM realm r WHERE r.id = ?1", *COLUMNS))?
        .query_row([id], from_row)
        .optional()
}

/// One `UPDATE realm` statement that sets what `changes` sets and leaves the rest.
static UPDATE: LazyLock<String> = LazyLock::new(|| realm_columns::update(|i| format!("?{i}")));

impl Realms for Sqlite {
    fn realm_by_subdomain(&self, subdomain: &str) -> StoreResult<Option<Realm>> {
        Ok(self
            .cache()?
            .realm_by_subdomain(subdomain, || by_subdomain(&self.conn, subdomain))?)
    }

    fn realm_by_id(&self, id: i64) -> StoreResult<Option<Realm>> {
        Ok(self.cache()?.realm_by_id(id, || by_id(&self.conn, id))?)
    }

    fn realms(&self) -> StoreResult<Vec<(Realm, i64)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {}, (SELECT count(*) FROM user u WHERE u.realm_id = r.id)
             FROM realm r ORDER BY r.id",
            *COLUMNS
        ))?;
        let users = realm_columns::COUNT;
        let rows = stmt
            .query_map([], |row| Ok((from_row(row)?, row.get(users)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn create_realm(&self, subdomain: &str, name: &str, audit: &AuditEntry) -> StoreResult<Realm> {
        self.durably(|conn| {
            if by_subdomain(conn, subdomain)?.is_some() {
                return Err(StoreError::Refused(format!(
                    "a realm with subdomain {subdomain:?} already exists"
                )));
            }
            conn.execute(
                "INSERT INTO realm (subdomain, name) VALUES (?1, ?2)",
                params![subdomain, name],
            )?;
            let id = conn.last_insert_rowid();
            super::audit::insert(
                conn,
                &AuditEntry {
                    realm_id: Some(id),
                    ..audit.clone()
                },
            )?;
            Ok(by_id(conn, id)?.expect("the realm was just inserted"))
        })
    }

    fn update_realm(
        &self,
        realm_id: i64,
        changes: &RealmChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let ldap: Vec<Box<dyn ToSql>> = changes
            .ldap
            .columns()
            .into_iter()
            .map(|column| -> Box<dyn ToSql> {
                match column {
                    Column::Text(text) => Box::new(text),
                    Column::Flag(flag) => Box::new(flag),
                }
            })
            .collect();
        let mut values: Vec<&dyn ToSql> = vec![
            &realm_id,
            &changes.name,
            &changes.description,
            &changes.icon_url,
            &changes.password_auth_enabled,
            &changes.deactivated,
            &changes.email_auth_enabled,
        ];
        values.extend(ldap.iter().map(|v| v.as_ref()));
        values.extend([
            &changes.web_login_enabled as &dyn ToSql,
            &changes.web_login_display_name,
            &changes.require_2fa,
            &changes.api_keys_per_device,
            &changes.api_key_idle_days,
            &changes.login_mail,
        ]);
        self.durably(|conn| {
            conn.prepare_cached(&UPDATE)?.execute(&values[..])?;
            super::audit::insert(conn, audit)
        })
    }
}
