//! The `idp` and `oidc_pending` tables (migration 10): a realm's OpenID providers as the
//! operator set them (web.md §10), remembered with the realm's row while the realm version
//! holds ([`realm_cache`]), and the sign-ins sent to one until their callback. Taking a
//! pending sign-in is one statement, so of two callbacks with one `state` one gets it, on
//! whichever instance.

use std::fmt;

use crate::store::realm_cache;
use crate::store::sql::{Backend, Conn, SqlError, Unique, params, sql};
use crate::store::{AuditEntry, IdentityProviders, StoreError, StoreResult};

/// One provider's name per realm.
const NAME: Unique = Unique {
    sqlite: "idp.realm_id, idp.name",
    postgres: "idp_realm_id_name_key",
};

/// A realm's OpenID provider, as stored. The rules of its fields are auth's
/// (`auth::oidc::config`).
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityProvider {
    /// 0 for one not stored yet.
    pub id: i64,
    pub realm_id: i64,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Never printed: `Debug` leaves it out.
    pub client_secret: String,
    pub display_name: String,
    pub display_icon: Option<String>,
    /// Separated by spaces.
    pub scopes: String,
    pub auto_signup: bool,
}

impl fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("id", &self.id)
            .field("realm_id", &self.realm_id)
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field("display_icon", &self.display_icon)
            .field("scopes", &self.scopes)
            .field("auto_signup", &self.auto_signup)
            .finish_non_exhaustive()
    }
}

/// A sign-in sent to a provider (web.md §10.2), found by the digest of its `state`.
#[derive(Clone, PartialEq)]
pub struct OidcPending {
    pub idp_id: i64,
    /// The digest of the cookie that binds it to the browser that started it.
    pub browser_hash: String,
    pub nonce: String,
    pub verifier: String,
    /// The app's pad, as hex; `None` for a sign-in in a browser.
    pub pad: Option<String>,
    /// The signed-in user it re-confirms; `None` for a sign-in.
    pub user_id: Option<i64>,
    pub started_at: f64,
    pub expires_at: f64,
}

impl fmt::Debug for OidcPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcPending")
            .field("idp_id", &self.idp_id)
            .field("user_id", &self.user_id)
            .field("started_at", &self.started_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, realm_id, name, issuer, client_id, client_secret, display_name, \
                       display_icon, scopes, auto_signup";

fn provider(r: &dyn crate::store::sql::Row) -> StoreResult<IdentityProvider> {
    Ok(IdentityProvider {
        id: r.int(0)?,
        realm_id: r.int(1)?,
        name: r.text(2)?,
        issuer: r.text(3)?,
        client_id: r.text(4)?,
        client_secret: r.text(5)?,
        display_name: r.text(6)?,
        display_icon: r.maybe_text(7)?,
        scopes: r.text(8)?,
        auto_signup: r.flag(9)?,
    })
}

fn pending(r: &dyn crate::store::sql::Row) -> StoreResult<OidcPending> {
    Ok(OidcPending {
        idp_id: r.int(0)?,
        browser_hash: r.text(1)?,
        nonce: r.text(2)?,
        verifier: r.text(3)?,
        pad: r.maybe_text(4)?,
        user_id: r.maybe_int(5)?,
        started_at: r.real(6)?,
        expires_at: r.real(7)?,
    })
}

/// Drops the re-confirmations of a user: inside a deletion.
pub(super) fn delete_user(conn: &mut dyn Conn, user_id: i64) -> StoreResult<()> {
    conn.execute(
        sql!("DELETE FROM oidc_pending WHERE user_id = $1"),
        params![user_id],
    )?;
    Ok(())
}

/// Drops pending sign-ins whose time ran out by `now`.
pub(super) fn prune(conn: &mut dyn Conn, now: f64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM oidc_pending WHERE expires_at <= $1"),
        params![now],
    )?)
}

fn taken(name: &str) -> StoreError {
    StoreError::Refused(format!(
        "the realm has an identity provider named {name:?} already"
    ))
}

/// The providers of realm `realm_id` by name, as remembered under the realm version
/// `version` (migration 13's triggers bump it).
pub(super) fn cached_of_realm<B: Backend>(
    backend: &B,
    version: i64,
    realm_id: i64,
) -> StoreResult<Vec<IdentityProvider>> {
    realm_cache::providers_at(backend, version, realm_id, || {
        let by_realm = sql!(built: || format!(
            "SELECT {COLUMNS} FROM idp WHERE realm_id = $1 ORDER BY name"
        ));
        backend.read(|conn| Ok(conn.all(by_realm, params![realm_id], provider)?))
    })
}

impl<B: Backend> IdentityProviders for B {
    fn identity_providers(&self, realm_id: i64) -> StoreResult<Vec<IdentityProvider>> {
        cached_of_realm(self, realm_cache::version(self)?, realm_id)
    }

    fn identity_provider_by_id(&self, id: i64) -> StoreResult<Option<IdentityProvider>> {
        let by_id = sql!(built: || format!("SELECT {COLUMNS} FROM idp WHERE id = $1"));
        self.read(|conn| Ok(conn.opt(by_id, params![id], provider)?))
    }

    fn create_identity_provider(
        &self,
        idp: &IdentityProvider,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            let inserted = conn.execute(
                sql!(
                    "INSERT INTO idp (realm_id, name, issuer, client_id, client_secret,
                       display_name, display_icon, scopes, auto_signup)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                params![
                    idp.realm_id,
                    &idp.name,
                    &idp.issuer,
                    &idp.client_id,
                    &idp.client_secret,
                    &idp.display_name,
                    &idp.display_icon,
                    &idp.scopes,
                    idp.auto_signup,
                ],
            );
            match inserted {
                Err(SqlError::Violation(v)) if v.of(&NAME) => return Err(taken(&idp.name)),
                other => other?,
            };
            super::audit_log::insert(conn, audit)
        })
    }

    fn update_identity_provider(
        &self,
        idp: &IdentityProvider,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        self.durably(|conn| {
            conn.execute(
                sql!(
                    "UPDATE idp SET issuer = $2, client_id = $3, client_secret = $4,
                       display_name = $5, display_icon = $6, scopes = $7, auto_signup = $8
                     WHERE id = $1"
                ),
                params![
                    idp.id,
                    &idp.issuer,
                    &idp.client_id,
                    &idp.client_secret,
                    &idp.display_name,
                    &idp.display_icon,
                    &idp.scopes,
                    idp.auto_signup,
                ],
            )?;
            super::audit_log::insert(conn, audit)
        })
    }

    fn delete_identity_provider(&self, id: i64, audit: &AuditEntry) -> StoreResult<bool> {
        self.durably(|conn| {
            conn.execute(
                sql!("DELETE FROM oidc_pending WHERE idp_id = $1"),
                params![id],
            )?;
            if conn.execute(sql!("DELETE FROM idp WHERE id = $1"), params![id])? == 0 {
                return Ok(false);
            }
            super::audit_log::insert(conn, audit)?;
            Ok(true)
        })
    }

    fn create_oidc_pending(&self, state_hash: &str, pending: &OidcPending) -> StoreResult<()> {
        self.read(|conn| {
            conn.execute(
                sql!(
                    "INSERT INTO oidc_pending (state_hash, idp_id, browser_hash, nonce, verifier,
                       pad, user_id, started_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                params![
                    state_hash,
                    pending.idp_id,
                    &pending.browser_hash,
                    &pending.nonce,
                    &pending.verifier,
                    &pending.pad,
                    pending.user_id,
                    pending.started_at,
                    pending.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn take_oidc_pending(&self, state_hash: &str, now: f64) -> StoreResult<Option<OidcPending>> {
        let take = sql!(
            "DELETE FROM oidc_pending WHERE state_hash = $1
             RETURNING idp_id, browser_hash, nonce, verifier, pad, user_id, started_at,
               expires_at"
        );
        let found = self.read(|conn| Ok(conn.opt(take, params![state_hash], pending)?))?;
        Ok(found.filter(|p| p.expires_at > now))
    }
}
