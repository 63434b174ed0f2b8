//! `db copy`: every table from one store to another, whichever their engines, ids kept.
//!
//! [`TABLES`] lists every table with its columns, parents before children. A new table (a
//! new kind of session, say) gets its migration in both `schema.sql` and
//! `schema-postgres.sql`, under the same number, and a line here; the SQLite engine's test
//! `copy_lists_every_table` fails until it has one.

use super::sql::Row;
use super::{Engine, StoreError, StoreResult};

/// The kind of a column's values, as both engines store them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    /// SQLite's 0/1 integer, PostgreSQL's boolean.
    Bool,
}

/// One value of a copied row; `None` is NULL.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bool(Option<bool>),
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The first is the primary key (an `id` identity, or the digest or user a row is
    /// found by); rows are read in its order.
    pub columns: &'static [(&'static str, Kind)],
}

impl Table {
    /// The primary key's column.
    pub fn key(&self) -> &'static str {
        self.columns[0].0
    }

    /// Whether the key is an `id` the engine numbers itself (SQLite's AUTOINCREMENT,
    /// PostgreSQL's identity), whose counter a copy must carry past the copied ids.
    pub fn numbered(&self) -> bool {
        self.key() == "id"
    }
}

use Kind::{Bool, Int, Real, Text};

pub const TABLES: &[Table] = &[
    Table {
        name: "realm",
        columns: &[
            ("id", Int),
            ("subdomain", Text),
            ("name", Text),
            ("description", Text),
            ("icon_url", Text),
            ("deactivated", Bool),
            ("password_auth_enabled", Bool),
            ("date_created", Text),
            ("email_auth_enabled", Bool),
            ("ldap_enabled", Bool),
            ("ldap_url", Text),
            ("ldap_ca_file", Text),
            ("ldap_starttls_required", Bool),
            ("ldap_bind_dn", Text),
            ("ldap_bind_password", Text),
            ("ldap_user_search", Text),
            ("ldap_user_filter", Text),
            ("ldap_append_domain", Text),
            ("ldap_email_attr", Text),
            ("ldap_full_name_attr", Text),
            ("ldap_create_users", Bool),
            ("web_login_enabled", Bool),
            ("web_login_display_name", Text),
            ("require_2fa", Bool),
            ("jwt_key", Text),
            ("jwt_algorithms", Text),
            ("jwt_require_exp", Bool),
            ("jwt_max_lifetime", Int),
            ("api_keys_per_device", Bool),
            ("api_key_idle_days", Int),
            ("login_mail", Bool),
            ("passkeys", Bool),
        ],
    },
    Table {
        name: "user",
        columns: &[
            ("id", Int),
            ("realm_id", Int),
            ("delivery_email", Text),
            ("full_name", Text),
            ("role", Int),
            ("is_active", Bool),
            ("password", Text),
            ("api_key", Text),
            ("date_joined", Text),
        ],
    },
    Table {
        name: "rate_limit_event",
        columns: &[("id", Int), ("bucket", Text), ("at", Real)],
    },
    Table {
        name: "audit_log",
        columns: &[
            ("id", Int),
            ("at", Real),
            ("event", Text),
            ("realm_id", Int),
            ("user_id", Int),
            ("reason", Text),
            ("remote_addr", Text),
            ("user_agent", Text),
            ("detail", Text),
            ("instance", Text),
        ],
    },
    Table {
        name: "api_key",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("key_hash", Text),
            ("method", Text),
            ("user_agent", Text),
            ("name", Text),
            ("created_at", Real),
            ("last_used_at", Real),
        ],
    },
    Table {
        name: "recovery_code",
        columns: &[("code_hash", Text), ("user_id", Int), ("created_at", Real)],
    },
    Table {
        name: "login_mail_off",
        columns: &[("user_id", Int)],
    },
    Table {
        name: "passkey",
        columns: &[
            ("id", Int),
            ("user_id", Int),
            ("credential_id", Text),
            ("user_handle", Text),
            ("credential", Text),
            ("name", Text),
            ("created_at", Real),
            ("last_used_at", Real),
            ("counter", Int),
        ],
    },
    Table {
        name: "passkey_ceremony",
        columns: &[("id_hash", Text), ("state", Text), ("expires_at", Real)],
    },
    Table {
        name: "totp_device",
        columns: &[
            ("user_id", Int),
            ("secret", Text),
            ("last_step", Int),
            ("created_at", Real),
        ],
    },
    // Sign-in steps, reset links and sessions are copied too: short-lived, but a move
    // between engines then signs no one out, and kills no link a person was mailed.
    Table {
        name: "web_login_step",
        columns: &[
            ("token_hash", Text),
            ("user_id", Int),
            ("username", Text),
            ("verified_hash", Text),
            ("rehash", Text),
            ("enrol_secret", Text),
            ("finishes_login", Bool),
            ("expires_at", Real),
            ("method", Text),
        ],
    },
    Table {
        name: "idp",
        columns: &[
            ("id", Int),
            ("realm_id", Int),
            ("name", Text),
            ("issuer", Text),
            ("client_id", Text),
            ("client_secret", Text),
            ("display_name", Text),
            ("display_icon", Text),
            ("scopes", Text),
            ("auto_signup", Bool),
        ],
    },
    Table {
        name: "oidc_pending",
        columns: &[
            ("state_hash", Text),
            ("idp_id", Int),
            ("browser_hash", Text),
            ("nonce", Text),
            ("verifier", Text),
            ("pad", Text),
            ("user_id", Int),
            ("started_at", Real),
            ("expires_at", Real),
        ],
    },
    Table {
        name: "password_reset",
        columns: &[
            ("token_hash", Text),
            ("user_id", Int),
            ("created_at", Real),
            ("expires_at", Real),
        ],
    },
    Table {
        name: "web_session",
        columns: &[
            ("id_hash", Text),
            ("user_id", Int),
            ("created_at", Real),
            ("last_seen_at", Real),
        ],
    },
];

/// Every row of one table, columns in [`Table::columns`] order.
pub type Rows = Vec<Vec<Value>>;

/// The table's columns, comma-separated, in its order.
pub fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT` of every column of the table, in key order: how both engines read one.
pub fn select_all(table: &Table) -> String {
    format!(
        "SELECT {} FROM \"{}\" ORDER BY {}",
        column_list(table),
        table.name,
        table.key()
    )
}

/// A row of the table, read by each column's kind.
pub fn values(row: &dyn Row, table: &Table) -> StoreResult<Vec<Value>> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => Value::Int(row.maybe_int(i)?),
                Kind::Real => Value::Real(row.maybe_real(i)?),
                Kind::Text => Value::Text(row.maybe_text(i)?),
                Kind::Bool => Value::Bool(row.maybe_flag(i)?),
            })
        })
        .collect()
}

/// Copies every table of `from` into `to`, replacing what `to` held, in one transaction of
/// `to`'s. A target with any user or any realm besides the root realm is refused unless
/// `force`. The number of rows of each table.
pub fn copy(
    from: &dyn Engine,
    to: &dyn Engine,
    force: bool,
) -> StoreResult<Vec<(&'static str, usize)>> {
    let (from_version, to_version) = (from.schema_version()?, to.schema_version()?);
    if from_version != to_version {
        return Err(StoreError::Refused(format!(
            "the source is at schema version {from_version}, the target at {to_version}"
        )));
    }
    if !force {
        let realms = to.realms()?;
        let users: i64 = realms.iter().map(|(_, users)| users).sum();
        if users > 0 || realms.iter().any(|(realm, _)| !realm.subdomain.is_empty()) {
            return Err(StoreError::Refused(format!(
                "the target holds {users} users and {} realms; pass --force to replace them",
                realms.len()
            )));
        }
    }
    let tables: Vec<(&Table, Rows)> = TABLES.iter().zip(from.read_tables(TABLES)?).collect();
    to.replace_tables(&tables)?;
    Ok(tables
        .iter()
        .map(|(table, rows)| (table.name, rows.len()))
        .collect())
}
