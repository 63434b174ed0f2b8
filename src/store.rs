//! The SQLite store: one connection per thread, the schema's migrations, and every query.
//!
//! Nothing is cached across requests, so admin changes made by the CLI while the server runs
//! take effect on the very next request (SPEC §2).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

#[cfg(feature = "postgres")]
pub mod postgres;

use crate::auth::key;
use crate::error::{Error, invalid};

const SCHEMA: &str = include_str!("../schema.sql");
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The roles Zulip knows, by their numeric codes.
pub const ROLES: [(&str, i64); 5] = [
    ("owner", 100),
    ("admin", 200),
    ("moderator", 300),
    ("member", 400),
    ("guest", 600),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Realm {
    pub id: i64,
    pub subdomain: String,
    pub name: String,
    pub description: String,
    pub icon_url: Option<String>,
    pub deactivated: bool,
    /// Password login at all (both backends); off gives PASSWORD_AUTH_DISABLED.
    pub password_auth_enabled: bool,
    /// The email backend: local password hashes.
    pub email_auth_enabled: bool,
    pub ldap_enabled: bool,
    /// Present once an LDAP URL is configured.
    pub ldap: Option<LdapSettings>,
}

impl Realm {
    /// Whether local password hashes are checked.
    pub fn email_backend(&self) -> bool {
        self.password_auth_enabled && self.email_auth_enabled
    }

    /// The directory to check passwords against, when LDAP is on.
    pub fn ldap_backend(&self) -> Option<&LdapSettings> {
        self.ldap
            .as_ref()
            .filter(|_| self.password_auth_enabled && self.ldap_enabled)
    }

    /// As Zulip's: false only when LDAP derives emails from usernames.
    pub fn require_email_format_usernames(&self) -> bool {
        !self
            .ldap_backend()
            .is_some_and(|l| l.append_domain.is_some() || l.email_attr.is_some())
    }
}

/// A realm's LDAP directory (Zulip's `AUTH_LDAP_*` settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LdapSettings {
    pub url: String,
    pub ca_file: Option<String>,
    pub starttls_required: bool,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub user_search: String,
    pub user_filter: String,
    pub append_domain: Option<String>,
    pub email_attr: Option<String>,
    pub full_name_attr: Option<String>,
    pub create_users: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub realm_id: i64,
    pub delivery_email: String,
    pub full_name: String,
    pub role: i64,
    pub is_active: bool,
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub date_joined: String,
}

/// A user to add: created by an operator, or imported from Zulip.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub email: String,
    pub full_name: String,
    pub role: i64,
    /// A hash string; `None` for no usable password.
    pub password: Option<String>,
    pub is_active: bool,
    /// Kept from an import, so clients need not log in again; else minted at first login.
    pub api_key: Option<String>,
}

/// Changes to a realm's settings; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct RealmChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon_url: Option<String>,
    pub password_auth_enabled: Option<bool>,
    pub deactivated: Option<bool>,
    pub email_auth_enabled: Option<bool>,
    pub ldap: LdapChanges,
}

/// Changes to a realm's LDAP settings; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct LdapChanges {
    pub enabled: Option<bool>,
    pub url: Option<String>,
    pub ca_file: Option<String>,
    pub starttls_required: Option<bool>,
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub user_search: Option<String>,
    pub user_filter: Option<String>,
    pub append_domain: Option<String>,
    pub email_attr: Option<String>,
    pub full_name_attr: Option<String>,
    pub create_users: Option<bool>,
}

/// What the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    LoginSuccess,
    LoginFailure,
    KeyMinted,
    KeyRotated,
    PasswordChanged,
    UserCreated,
    UserDeactivated,
    UserReactivated,
    RealmCreated,
    RealmChanged,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::LoginSuccess => "login_success",
            AuditEvent::LoginFailure => "login_failure",
            AuditEvent::KeyMinted => "key_minted",
            AuditEvent::KeyRotated => "key_rotated",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::UserCreated => "user_created",
            AuditEvent::UserDeactivated => "user_deactivated",
            AuditEvent::UserReactivated => "user_reactivated",
            AuditEvent::RealmCreated => "realm_created",
            AuditEvent::RealmChanged => "realm_changed",
        }
    }
}

/// One audit record to write; never a password or a key.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at: f64,
    pub event: AuditEvent,
    pub realm_id: Option<i64>,
    pub user_id: Option<i64>,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

impl AuditEntry {
    pub fn new(event: AuditEvent, realm_id: Option<i64>, user_id: Option<i64>) -> AuditEntry {
        AuditEntry {
            at: crate::clock::now(),
            event,
            realm_id,
            user_id,
            reason: None,
            remote_addr: None,
            user_agent: None,
            detail: None,
        }
    }
}

/// One audit record as read back, with names instead of ids.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRow {
    pub at: f64,
    pub event: String,
    pub realm: Option<String>,
    pub email: Option<String>,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

impl RealmChanges {
    /// The changes in words, for the audit trail.
    pub fn describe(&self) -> String {
        let on_off = |v: bool| if v { "on" } else { "off" };
        let parts: Vec<String> = [
            self.name.as_ref().map(|v| format!("name {v:?}")),
            self.description
                .as_ref()
                .map(|v| format!("description {v:?}")),
            self.icon_url.as_ref().map(|v| format!("icon {v:?}")),
            self.password_auth_enabled
                .map(|v| format!("password auth {}", on_off(v))),
            self.deactivated
                .map(|v| if v { "deactivated" } else { "reactivated" }.to_owned()),
            self.email_auth_enabled
                .map(|v| format!("email auth {}", on_off(v))),
            self.ldap.enabled.map(|v| format!("ldap {}", on_off(v))),
            self.ldap.url.as_ref().map(|v| format!("ldap url {v:?}")),
            self.ldap
                .ca_file
                .as_ref()
                .map(|v| format!("ldap ca file {v:?}")),
            self.ldap
                .starttls_required
                .map(|v| format!("ldap starttls {}", if v { "require" } else { "auto" })),
            self.ldap
                .bind_dn
                .as_ref()
                .map(|v| format!("ldap bind dn {v:?}")),
            // Never the secret itself.
            self.ldap
                .bind_password
                .as_ref()
                .map(|_| "ldap bind password changed".to_owned()),
            self.ldap
                .user_search
                .as_ref()
                .map(|v| format!("ldap user search {v:?}")),
            self.ldap
                .user_filter
                .as_ref()
                .map(|v| format!("ldap user filter {v:?}")),
            self.ldap
                .append_domain
                .as_ref()
                .map(|v| format!("ldap append domain {v:?}")),
            self.ldap
                .email_attr
                .as_ref()
                .map(|v| format!("ldap email attr {v:?}")),
            self.ldap
                .full_name_attr
                .as_ref()
                .map(|v| format!("ldap full name attr {v:?}")),
            self.ldap
                .create_users
                .map(|v| format!("ldap create users {}", on_off(v))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            "nothing changed".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

pub struct Store {
    conn: Connection,
}

const REALM_COLUMNS: &str =
    "id, subdomain, name, description, icon_url, deactivated, password_auth_enabled,
    email_auth_enabled, ldap_enabled, ldap_url, ldap_ca_file, ldap_starttls_required, ldap_bind_dn,
    ldap_bind_password, ldap_user_search, ldap_user_filter, ldap_append_domain, ldap_email_attr,
    ldap_full_name_attr, ldap_create_users";
const USER_COLUMNS: &str =
    "id, realm_id, delivery_email, full_name, role, is_active, password, api_key, date_joined";

/// An optional text setting: an empty value is how an operator unsets it.
fn optional(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(row
        .get::<_, Option<String>>(index)?
        .filter(|value| !value.is_empty()))
}

fn realm_from_row(row: &Row<'_>) -> rusqlite::Result<Realm> {
    Ok(Realm {
        id: row.get(0)?,
        subdomain: row.get(1)?,
        name: row.get(2)?,
        description: row.get(3)?,
        icon_url: optional(row, 4)?,
        deactivated: row.get(5)?,
        password_auth_enabled: row.get(6)?,
        email_auth_enabled: row.get(7)?,
        ldap_enabled: row.get(8)?,
        ldap: match optional(row, 9)? {
            None => None,
            Some(url) => Some(LdapSettings {
                url,
                ca_file: optional(row, 10)?,
                starttls_required: row.get(11)?,
                bind_dn: optional(row, 12)?,
                bind_password: optional(row, 13)?,
                user_search: row.get(14)?,
                user_filter: row.get(15)?,
                append_domain: optional(row, 16)?,
                email_attr: optional(row, 17)?,
                full_name_attr: optional(row, 18)?,
                create_users: row.get(19)?,
            }),
        },
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        realm_id: row.get(1)?,
        delivery_email: row.get(2)?,
        full_name: row.get(3)?,
        role: row.get(4)?,
        is_active: row.get(5)?,
        password: row.get(6)?,
        api_key: row.get(7)?,
        date_joined: row.get(8)?,
    })
}

/// The `(number, sql)` migration sections of `schema.sql`.
fn migrations() -> impl Iterator<Item = (i64, &'static str)> {
    SCHEMA.split("-- migration ").skip(1).map(|section| {
        let (number, sql) = section.split_once('\n').unwrap_or((section, ""));
        let number = number
            .trim()
            .parse()
            .expect("schema.sql numbers its migrations");
        (number, sql)
    })
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, Error> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::Io(format!("cannot open database {}", path.display()), e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    /// Runs every migration above the database's `user_version`. Two processes may start at
    /// once; the immediate transaction makes the second wait and then find nothing to do.
    fn migrate(&mut self) -> Result<(), Error> {
        for (number, sql) in migrations() {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if current < number {
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", number)?;
            }
            tx.commit()?;
        }
        let current = self.schema_version()?;
        let newest = migrations().map(|(n, _)| n).max().unwrap_or(0);
        if current > newest {
            return invalid!(
                "the database is at schema version {current}, newer than this zulip-auth knows ({newest}); upgrade zulip-auth"
            );
        }
        Ok(())
    }

    pub fn schema_version(&self) -> rusqlite::Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
    }

    /// Answers when the database does (for `/health`).
    pub fn ping(&self) -> rusqlite::Result<()> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))
    }

    pub fn realm_by_subdomain(&self, subdomain: &str) -> rusqlite::Result<Option<Realm>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {REALM_COLUMNS} FROM realm WHERE subdomain = ?1"
            ))?
            .query_row([subdomain], realm_from_row)
            .optional()
    }

    pub fn realm_by_id(&self, id: i64) -> rusqlite::Result<Realm> {
        self.conn
            .prepare_cached(&format!("SELECT {REALM_COLUMNS} FROM realm WHERE id = ?1"))?
            .query_row([id], realm_from_row)
    }

    /// The realm named by an operator, or a one-line error.
    pub fn require_realm(&self, subdomain: &str) -> Result<Realm, Error> {
        match self.realm_by_subdomain(subdomain)? {
            Some(realm) => Ok(realm),
            None => invalid!("no realm with subdomain {subdomain:?}"),
        }
    }

    /// The user with this email in this realm, compared without regard to ASCII case.
    pub fn user_by_email(&self, realm_id: i64, email: &str) -> rusqlite::Result<Option<User>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM user WHERE realm_id = ?1 AND delivery_email = ?2"
            ))?
            .query_row(params![realm_id, email.trim()], user_from_row)
            .optional()
    }

    /// Whether any realm has a user with this email.
    pub fn email_exists_anywhere(&self, email: &str) -> rusqlite::Result<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM user WHERE delivery_email = ?1)")?
            .query_row([email.trim()], |r| r.get(0))
    }

    /// The operator's user, or a one-line error.
    pub fn require_user(&self, realm: &Realm, email: &str) -> Result<User, Error> {
        match self.user_by_email(realm.id, email)? {
            Some(user) => Ok(user),
            None => invalid!("no user {email:?} in realm {:?}", realm.subdomain),
        }
    }

    /// The user's key and whether this call minted it. Simultaneous first logins race on the
    /// conditional UPDATE; the losers read the winner's key, so all get the same one.
    pub fn ensure_api_key(&self, user_id: i64) -> rusqlite::Result<(String, bool)> {
        let minted = self.store_new_key(
            "UPDATE user SET api_key = ?1 WHERE id = ?2 AND api_key IS NULL",
            user_id,
        )?;
        let key = self
            .conn
            .prepare_cached("SELECT api_key FROM user WHERE id = ?1")?
            .query_row([user_id], |r| r.get(0))?;
        Ok((key, minted))
    }

    /// Replaces the user's key; the old one stops working at once.
    pub fn rotate_api_key(&self, user_id: i64) -> rusqlite::Result<String> {
        self.store_new_key("UPDATE user SET api_key = ?1 WHERE id = ?2", user_id)?;
        self.conn
            .prepare_cached("SELECT api_key FROM user WHERE id = ?1")?
            .query_row([user_id], |r| r.get(0))
    }

    /// Runs `update` with a fresh key, drawing again on the (astronomically unlikely)
    /// collision with another user's key. True when a row changed.
    fn store_new_key(&self, update: &str, user_id: i64) -> rusqlite::Result<bool> {
        loop {
            match self
                .conn
                .prepare_cached(update)?
                .execute(params![key::generate(), user_id])
            {
                Ok(changed) => return Ok(changed > 0),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn user_by_api_key(&self, api_key: &str) -> rusqlite::Result<Option<User>> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM user WHERE api_key = ?1"
            ))?
            .query_row([api_key], user_from_row)
            .optional()
    }

    pub fn users_of_realm(&self, realm_id: i64) -> rusqlite::Result<Vec<User>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM user WHERE realm_id = ?1 ORDER BY id"
        ))?;
        stmt.query_map([realm_id], user_from_row)?.collect()
    }

    pub fn realms(&self) -> rusqlite::Result<Vec<Realm>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {REALM_COLUMNS} FROM realm ORDER BY id"))?;
        stmt.query_map([], realm_from_row)?.collect()
    }

    pub fn user_count(&self, realm_id: i64) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("SELECT count(*) FROM user WHERE realm_id = ?1")?
            .query_row([realm_id], |r| r.get(0))
    }

    /// Forgets the username buckets of every spelling of `email`, as a password change does.
    pub fn clear_username_buckets(&self, email: &str) -> rusqlite::Result<()> {
        self.conn.execute(
            "DELETE FROM rate_limit_event WHERE bucket = 'user:' || ?1 COLLATE NOCASE",
            [email],
        )?;
        Ok(())
    }

    /// A consistent copy through SQLite's online backup API, safe while the server writes.
    pub fn backup_to(&self, dest: &Path) -> rusqlite::Result<()> {
        self.conn.backup(
            rusqlite::MAIN_DB,
            dest,
            None::<fn(rusqlite::backup::Progress)>,
        )
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound database.
    pub fn integrity_check(&self) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        stmt.query_map([], |r| r.get(0))?.collect()
    }

    pub fn audit(&self, entry: &AuditEntry) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log (at, event, realm_id, user_id, reason, remote_addr, user_agent, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                entry.at,
                entry.event.as_str(),
                entry.realm_id,
                entry.user_id,
                entry.reason,
                entry.remote_addr,
                entry.user_agent,
                entry.detail
            ])?;
        Ok(())
    }

    /// Audit rows since `since` (epoch seconds), optionally of one user, oldest first.
    pub fn audit_rows(&self, since: f64, user_id: Option<i64>) -> rusqlite::Result<Vec<AuditRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT a.at, a.event, r.subdomain, u.delivery_email, a.reason, a.remote_addr, a.user_agent, a.detail
             FROM audit_log a LEFT JOIN realm r ON r.id = a.realm_id LEFT JOIN user u ON u.id = a.user_id
             WHERE a.at >= ?1 AND (?2 IS NULL OR a.user_id = ?2) ORDER BY a.at, a.id",
        )?;
        stmt.query_map(params![since, user_id], |r| {
            Ok(AuditRow {
                at: r.get(0)?,
                event: r.get(1)?,
                realm: r.get(2)?,
                email: r.get(3)?,
                reason: r.get(4)?,
                remote_addr: r.get(5)?,
                user_agent: r.get(6)?,
                detail: r.get(7)?,
            })
        })?
        .collect()
    }

    /// Drops audit rows older than `before`.
    pub fn prune_audit(&self, before: f64) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM audit_log WHERE at < ?1", [before])
    }

    /// Replaces a hash after a login upgraded it.
    pub fn set_password_hash(&self, user_id: i64, hash: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("UPDATE user SET password = ?1 WHERE id = ?2")?
            .execute(params![hash, user_id])?;
        Ok(())
    }

    /// Every active user of every realm with the realm's subdomain, by email in byte order.
    pub fn active_users(&self) -> rusqlite::Result<Vec<(User, String)>> {
        let columns = USER_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {columns}, r.subdomain FROM user u JOIN realm r ON r.id = u.realm_id
             WHERE u.is_active ORDER BY u.delivery_email COLLATE BINARY, u.id"
        ))?;
        stmt.query_map([], |row| Ok((user_from_row(row)?, row.get(9)?)))?
            .collect()
    }

    /// Opens the database for a request thread: commits are not synced to disk one by one
    /// (WAL with `synchronous=NORMAL`), so rate-limit events and audit rows cost no fsync.
    /// They survive a crash or a restart of the process; a power loss may drop the last
    /// moments of them. Keys are never written so: see [`Store::durably`].
    pub fn open_for_requests(path: &Path) -> Result<Store, Error> {
        let store = Store::open(path)?;
        store.conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(store)
    }

    /// [`Store::immediate`], synced to disk before it returns (`synchronous=FULL`), which
    /// also syncs every commit before it: for keys, which a client holds once it has them.
    pub fn durably<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        let previous: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))?;
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = self.immediate(f);
        self.conn.pragma_update(None, "synchronous", previous)?;
        result
    }

    /// Runs `f` in an immediate (write-locking) transaction, so a read-then-write such as
    /// the rate limiter's is atomic across workers and processes.
    pub fn immediate<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E>,
    ) -> Result<T, E> {
        if !self.conn.is_autocommit() {
            // A panic unwound through an earlier transaction: drop what it left.
            self.conn.execute_batch("ROLLBACK")?;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = f(self).and_then(|value| {
            self.conn.execute_batch("COMMIT")?;
            Ok(value)
        });
        if result.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        result
    }

    /// The newest `limit` event times of `bucket` at or after `since`, newest first.
    pub fn recent_events(
        &self,
        bucket: &str,
        limit: u32,
        since: f64,
    ) -> rusqlite::Result<Vec<f64>> {
        self.conn
            .prepare_cached(
                "SELECT at FROM rate_limit_event WHERE bucket = ?1 AND at >= ?2 ORDER BY at DESC LIMIT ?3",
            )?
            .query_map(params![bucket, since, limit], |r| r.get(0))?
            .collect()
    }

    /// Adds an event, keeping only the newest `keep` of the bucket and none before `since`.
    pub fn record_event(
        &self,
        bucket: &str,
        at: f64,
        keep: u32,
        since: f64,
    ) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("INSERT INTO rate_limit_event (bucket, at) VALUES (?1, ?2)")?
            .execute(params![bucket, at])?;
        self.conn
            .prepare_cached(
                "DELETE FROM rate_limit_event WHERE bucket = ?1 AND (at < ?2 OR id NOT IN
                   (SELECT id FROM rate_limit_event WHERE bucket = ?1 ORDER BY at DESC LIMIT ?3))",
            )?
            .execute(params![bucket, since, keep])?;
        Ok(())
    }

    pub fn clear_bucket(&self, bucket: &str) -> rusqlite::Result<()> {
        self.conn
            .prepare_cached("DELETE FROM rate_limit_event WHERE bucket = ?1")?
            .execute([bucket])?;
        Ok(())
    }

    /// Drops events older than `before`, which no window can see any more.
    pub fn prune_events(&self, before: f64) -> rusqlite::Result<usize> {
        self.conn
            .execute("DELETE FROM rate_limit_event WHERE at < ?1", [before])
    }

    pub fn create_realm(&self, subdomain: &str, name: &str) -> Result<Realm, Error> {
        if self.realm_by_subdomain(subdomain)?.is_some() {
            return invalid!("a realm with subdomain {subdomain:?} already exists");
        }
        self.conn.execute(
            "INSERT INTO realm (subdomain, name) VALUES (?1, ?2)",
            params![subdomain, name],
        )?;
        self.require_realm(subdomain)
    }

    pub fn update_realm(&self, realm: &Realm, changes: &RealmChanges) -> rusqlite::Result<()> {
        let ldap = &changes.ldap;
        self.conn.execute(
            "UPDATE realm SET name = coalesce(?2, name), description = coalesce(?3, description),
                icon_url = coalesce(?4, icon_url),
                password_auth_enabled = coalesce(?5, password_auth_enabled),
                deactivated = coalesce(?6, deactivated),
                email_auth_enabled = coalesce(?7, email_auth_enabled),
                ldap_enabled = coalesce(?8, ldap_enabled), ldap_url = coalesce(?9, ldap_url),
                ldap_ca_file = coalesce(?10, ldap_ca_file),
                ldap_starttls_required = coalesce(?11, ldap_starttls_required),
                ldap_bind_dn = coalesce(?12, ldap_bind_dn),
                ldap_bind_password = coalesce(?13, ldap_bind_password),
                ldap_user_search = coalesce(?14, ldap_user_search),
                ldap_user_filter = coalesce(?15, ldap_user_filter),
                ldap_append_domain = coalesce(?16, ldap_append_domain),
                ldap_email_attr = coalesce(?17, ldap_email_attr),
                ldap_full_name_attr = coalesce(?18, ldap_full_name_attr),
                ldap_create_users = coalesce(?19, ldap_create_users)
             WHERE id = ?1",
            params![
                realm.id,
                changes.name,
                changes.description,
                changes.icon_url,
                changes.password_auth_enabled,
                changes.deactivated,
                changes.email_auth_enabled,
                ldap.enabled,
                ldap.url,
                ldap.ca_file,
                ldap.starttls_required,
                ldap.bind_dn,
                ldap.bind_password,
                ldap.user_search,
                ldap.user_filter,
                ldap.append_domain,
                ldap.email_attr,
                ldap.full_name_attr,
                ldap.create_users
            ],
        )?;
        Ok(())
    }

    /// Adds a user and returns its id. The caller has validated the email.
    pub fn create_user(&self, realm: &Realm, user: &NewUser) -> Result<i64, Error> {
        if self.user_by_email(realm.id, &user.email)?.is_some() {
            return invalid!(
                "a user {:?} already exists in realm {:?}",
                user.email,
                realm.subdomain
            );
        }
        self.conn
            .prepare_cached(
                "INSERT INTO user (realm_id, delivery_email, full_name, role, password, is_active, api_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                realm.id,
                user.email,
                user.full_name,
                user.role,
                user.password,
                user.is_active,
                user.api_key
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_user_active(&self, user_id: i64, active: bool) -> rusqlite::Result<()> {
        self.conn.execute(
            "UPDATE user SET is_active = ?2 WHERE id = ?1",
            params![user_id, active],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        let numbers: Vec<i64> = migrations().map(|(n, _)| n).collect();
        let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
        assert_eq!(numbers, expected);
    }

    #[test]
    fn new_database_has_the_root_realm_and_reopens_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let store = Store::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let root = store.realm_by_subdomain("").unwrap().unwrap();
        assert!(!root.deactivated && root.password_auth_enabled);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), migrations().count() as i64);
    }

    #[test]
    fn pruning_drops_only_what_is_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store.record_event("user:a", 100.0, 5, 0.0).unwrap();
        store.record_event("user:b", 200.0, 5, 0.0).unwrap();
        assert_eq!(store.prune_events(150.0).unwrap(), 1);
        assert_eq!(
            store.recent_events("user:a", 5, 0.0).unwrap(),
            Vec::<f64>::new()
        );
        assert_eq!(store.recent_events("user:b", 5, 0.0).unwrap(), [200.0]);
        let at = |at| AuditEntry {
            at,
            ..AuditEntry::new(AuditEvent::RealmChanged, Some(1), None)
        };
        store.audit(&at(100.0)).unwrap();
        store.audit(&at(200.0)).unwrap();
        assert_eq!(store.prune_audit(150.0).unwrap(), 1);
        assert_eq!(store.audit_rows(0.0, None).unwrap().len(), 1);
    }

    #[test]
    fn request_stores_sync_only_durable_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_requests(&dir.path().join("db")).unwrap();
        let synchronous = |s: &Store| -> i64 {
            s.conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(&store), 1, "NORMAL");
        let inside = store.durably(|s| Ok::<_, rusqlite::Error>(synchronous(s)));
        assert_eq!(inside.unwrap(), 2, "FULL");
        assert_eq!(synchronous(&store), 1, "restored");
    }

    #[test]
    fn lookup_ignores_case_and_first_mint_sticks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let root = store.require_realm("").unwrap();
        let iago = NewUser {
            email: "Iago@Example.com".into(),
            full_name: "Iago".into(),
            role: 200,
            password: None,
            is_active: true,
            api_key: None,
        };
        let id = store.create_user(&root, &iago).unwrap();
        let user = store
            .user_by_email(root.id, "iago@EXAMPLE.COM")
            .unwrap()
            .unwrap();
        assert_eq!(user.delivery_email, "Iago@Example.com");
        let again = NewUser {
            email: "iago@example.com".into(),
            ..iago
        };
        assert!(store.create_user(&root, &again).is_err());
        let (first, minted) = store.ensure_api_key(id).unwrap();
        assert!(minted);
        assert_eq!(store.ensure_api_key(id).unwrap(), (first.clone(), false));
        let rotated = store.rotate_api_key(id).unwrap();
        assert_ne!(rotated, first);
        assert_eq!(store.user_by_api_key(&first).unwrap(), None);
        assert_eq!(store.user_by_api_key(&rotated).unwrap().unwrap().id, id);
    }
}
