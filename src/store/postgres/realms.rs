//! The `realm` table.

use std::sync::LazyLock;

use postgres::GenericClient;
use postgres::types::ToSql;

use super::pool::Db;
use super::{Postgres, sql_state};
use crate::store::ldap::Column;
use crate::store::{AuditEntry, Realm, RealmChanges, Realms, StoreError, StoreResult};
use crate::store::{realm_columns, row};

static BY_SUBDOMAIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM realm r WHERE r.subdomain = $1",
        realm_columns::select_list()
    )
});
static BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM realm r WHERE r.id = $1",
        realm_columns::select_list()
    )
});
static ALL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, (SELECT count(*) FROM \"user\" u WHERE u.realm_id = r.id)
         FROM realm r ORDER BY r.id",
        realm_columns::select_list()
    )
});

/// One `UPDATE realm` that sets what the changes set and leaves the rest; `$1` is the id.
static UPDATE: LazyLock<String> = LazyLock::new(|| realm_columns::update(|i| format!("${i}")));

pub(super) fn by_id<C: GenericClient>(db: &mut Db<'_, C>, id: i64) -> StoreResult<Option<Realm>> {
    db.query_opt(&BY_ID, &[&id])?
        .as_ref()
        .map(row::realm)
        .transpose()
}

impl Realms for Postgres {
    fn realm_by_subdomain(&self, subdomain: &str) -> StoreResult<Option<Realm>> {
        let row = self.conn()?.db().query_opt(&BY_SUBDOMAIN, &[&subdomain])?;
        row.as_ref().map(row::realm).transpose()
    }

    fn realm_by_id(&self, id: i64) -> StoreResult<Option<Realm>> {
        by_id(&mut self.conn()?.db(), id)
    }

    fn realms(&self) -> StoreResult<Vec<(Realm, i64)>> {
        let users = realm_columns::COUNT;
        let rows = self.conn()?.db().query(&ALL, &[])?;
        rows.iter()
            .map(|found| Ok((row::realm(found)?, found.try_get(users)?)))
            .collect()
    }

    fn create_realm(&self, subdomain: &str, name: &str, audit: &AuditEntry) -> StoreResult<Realm> {
        self.durably(|db| {
            let inserted = db.query_opt(
                "INSERT INTO realm (subdomain, name) VALUES ($1, $2)
                 ON CONFLICT (subdomain) DO NOTHING RETURNING id",
                &[&subdomain, &name],
            )?;
            let Some(row) = inserted else {
                return Err(StoreError::Refused(format!(
                    "a realm with subdomain {subdomain:?} already exists"
                )));
            };
            let id: i64 = row.try_get(0)?;
            self.insert_audit(
                db,
                &AuditEntry {
                    realm_id: Some(id),
                    ..audit.clone()
                },
            )?;
            by_id(db, id)?.ok_or_else(|| StoreError::Unavailable("the new realm vanished".into()))
        })
    }

    fn update_realm(
        &self,
        realm_id: i64,
        changes: &RealmChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let ldap: Vec<Box<dyn ToSql + Sync>> = changes
            .ldap
            .columns()
            .into_iter()
            .map(|column| -> Box<dyn ToSql + Sync> {
                match column {
                    Column::Text(text) => Box::new(text),
                    Column::Flag(flag) => Box::new(flag),
                }
            })
            .collect();
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![
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
            &changes.web_login_enabled as &(dyn ToSql + Sync),
            &changes.web_login_display_name,
            &changes.require_2fa,
            &changes.api_keys_per_device,
            &changes.api_key_idle_days,
            &changes.login_mail,
        ]);
        self.durably(|db| {
            db.execute(&UPDATE, &values)?;
            self.insert_audit(db, audit)
        })
    }
}

/// Whether `err` is a unique violation of `constraint`.
pub(super) fn violates(err: &postgres::Error, constraint: &str) -> bool {
    sql_state(err) == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
        && err.as_db_error().and_then(|e| e.constraint()) == Some(constraint)
}
