//! The `realm` table. Its columns are listed once, in [`realm_columns`].

use crate::store::ldap::Column;
use crate::store::sql::{Backend, Conn, Param, RealmKey, params, sql};
use crate::store::{
    AuditEntry, IdentityProvider, Realm, RealmChanges, Realms, StoreError, StoreResult,
};
use crate::store::{realm_cache, realm_columns, row};

fn select(condition: &str) -> String {
    format!(
        "SELECT {} FROM realm r {condition}",
        realm_columns::select_list()
    )
}

pub(super) fn by_id(conn: &mut dyn Conn, id: i64) -> StoreResult<Option<Realm>> {
    let by_id = sql!(built: || select("WHERE r.id = $1"));
    Ok(conn.opt(by_id, params![id], row::realm)?)
}

fn by_subdomain(conn: &mut dyn Conn, subdomain: &str) -> StoreResult<Option<Realm>> {
    let by_subdomain = sql!(built: || select("WHERE r.subdomain = $1"));
    Ok(conn.opt(by_subdomain, params![subdomain], row::realm)?)
}

/// The values of [`realm_columns::update`]'s parameters after the id, in its order; `ldap`
/// is `changes.ldap.columns()`.
fn changed_values<'a>(changes: &'a RealmChanges, ldap: &'a [Column]) -> Vec<Param<'a>> {
    let mut values: Vec<Param<'_>> = vec![
        (&changes.name).into(),
        (&changes.description).into(),
        (&changes.icon_url).into(),
        changes.password_auth_enabled.into(),
        changes.deactivated.into(),
        changes.email_auth_enabled.into(),
    ];
    values.extend(ldap.iter().map(|column| match column {
        Column::Text(text) => Param::Text(text.as_deref()),
        Column::Flag(flag) => Param::Bool(*flag),
    }));
    values.extend::<[Param<'_>; 3]>([
        changes.web_login_enabled.into(),
        (&changes.web_login_display_name).into(),
        changes.require_2fa.into(),
    ]);
    values.extend::<[Param<'_>; 4]>([
        (&changes.jwt_key).into(),
        (&changes.jwt_algorithms).into(),
        changes.jwt_require_exp.into(),
        changes.jwt_max_lifetime.into(),
    ]);
    values.extend::<[Param<'_>; 3]>([
        changes.api_keys_per_device.into(),
        changes.api_key_idle_days.into(),
        changes.login_mail.into(),
    ]);
    values.push(changes.passkeys.into());
    values
}

/// The realm of `subdomain` as remembered under the realm version `version`.
fn cached_by_subdomain<B: Backend>(
    backend: &B,
    version: i64,
    subdomain: &str,
) -> StoreResult<Option<Realm>> {
    realm_cache::cached_at(backend, version, RealmKey::Subdomain(subdomain), || {
        backend.read(|conn| by_subdomain(conn, subdomain))
    })
}

impl<B: Backend> Realms for B {
    fn realm_by_subdomain(&self, subdomain: &str) -> StoreResult<Option<Realm>> {
        cached_by_subdomain(self, realm_cache::version(self)?, subdomain)
    }

    fn realm_with_providers(
        &self,
        subdomain: &str,
    ) -> StoreResult<Option<(Realm, Vec<IdentityProvider>)>> {
        let version = realm_cache::version(self)?;
        let Some(realm) = cached_by_subdomain(self, version, subdomain)? else {
            return Ok(None);
        };
        let providers = super::idp::cached_of_realm(self, version, realm.id)?;
        Ok(Some((realm, providers)))
    }

    fn realm_by_id(&self, id: i64) -> StoreResult<Option<Realm>> {
        let version = realm_cache::version(self)?;
        realm_cache::cached_at(self, version, RealmKey::Id(id), || {
            self.read(|conn| by_id(conn, id))
        })
    }

    fn realms(&self) -> StoreResult<Vec<(Realm, i64)>> {
        let all = sql!(built: || {
            format!(
                "SELECT {}, (SELECT count(*) FROM \"user\" u WHERE u.realm_id = r.id)
                 FROM realm r ORDER BY r.id",
                realm_columns::select_list()
            )
        });
        self.read(|conn| {
            Ok(conn.all(all, &[], |found| {
                Ok((row::realm(found)?, found.int(realm_columns::COUNT)?))
            })?)
        })
    }

    fn create_realm(&self, subdomain: &str, name: &str, audit: &AuditEntry) -> StoreResult<Realm> {
        self.durably(|conn| {
            let inserted = conn.opt(
                sql!(
                    "INSERT INTO realm (subdomain, name) VALUES ($1, $2)
                     ON CONFLICT (subdomain) DO NOTHING RETURNING id"
                ),
                params![subdomain, name],
                |r| r.int(0),
            )?;
            let Some(id) = inserted else {
                return Err(StoreError::Refused(format!(
                    "a realm with subdomain {subdomain:?} already exists"
                )));
            };
            super::audit_log::insert(
                conn,
                &AuditEntry {
                    realm_id: Some(id),
                    ..audit.clone()
                },
            )?;
            by_id(conn, id)?.ok_or_else(|| StoreError::Unavailable("the new realm vanished".into()))
        })
    }

    fn update_realm(
        &self,
        realm_id: i64,
        changes: &RealmChanges,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let ldap = changes.ldap.columns();
        let mut values = vec![Param::from(realm_id)];
        values.extend(changed_values(changes, &ldap));
        self.durably(|conn| {
            conn.execute(sql!(built: realm_columns::update), &values)?;
            super::audit_log::insert(conn, audit)
        })
    }
}
