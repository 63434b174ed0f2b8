//! `user import FILE`: users exported from a Zulip server (JSON Lines, one user a line), all
//! or none. Imported users keep their Django password hashes and their API keys, so they
//! log in with their old passwords and their clients need not log in again.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::{no_controls, outln};
use crate::auth::{key, password};
use crate::email;
use crate::error::{Error, invalid};
use crate::store::{NewUser, Realm, Role, Store};

/// One line of the export: `zerver_userprofile`'s columns (README, "Move users from Zulip").
#[derive(Debug, Deserialize)]
struct ExportedUser {
    email: String,
    #[serde(default)]
    full_name: String,
    /// A Django hash string, or null for no usable password.
    #[serde(default)]
    password: Option<String>,
    #[serde(default = "active")]
    is_active: bool,
    #[serde(default)]
    api_key: Option<String>,
    /// Zulip's numeric role (100 to 600), or a role name.
    #[serde(default)]
    role: Option<serde_json::Value>,
}

fn active() -> bool {
    true
}

pub fn run(store: &Store, realm: &Realm, file: &Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Io(format!("cannot read {}", file.display()), e))?;
    let users = parse(&text)?;
    let unusable: Vec<&str> = users
        .iter()
        .filter(|(_, u)| !u.password.as_deref().is_some_and(password::is_usable))
        .map(|(_, u)| u.email.as_str())
        .collect();
    // Checked here to name the line; the store checks again in the transaction that adds
    // them all or none.
    for (line, user) in &users {
        if store.user_by_email(realm.id, &user.email)?.is_some() {
            return invalid!(
                "line {line}: {:?} already exists in this realm; nothing imported",
                user.email
            );
        }
        if let Some(api_key) = &user.api_key
            && store.user_by_api_key(api_key)?.is_some()
        {
            return invalid!(
                "line {line}: the api_key of {:?} is already in use; nothing imported",
                user.email
            );
        }
    }
    let new: Vec<NewUser> = users.iter().map(|(_, u)| u.clone()).collect();
    store.create_users(realm.id, &new, "imported")?;
    outln!(
        "imported {} users, {} without a usable password",
        users.len(),
        unusable.len()
    )?;
    for email in unusable {
        outln!("no usable password: {email}")?;
    }
    Ok(())
}

/// Every line, validated, with its number; the first problem aborts the import.
fn parse(text: &str) -> Result<Vec<(usize, NewUser)>, Error> {
    let mut emails = HashSet::new();
    let mut keys = HashSet::new();
    let mut users = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let exported: ExportedUser = serde_json::from_str(raw).map_err(|e| {
            Error::Invalid(format!("line {line}: invalid JSON ({e}); nothing imported"))
        })?;
        if !email::is_valid(&exported.email) {
            return invalid!(
                "line {line}: invalid email address {:?}; nothing imported",
                exported.email
            );
        }
        no_controls("full name", &exported.full_name)
            .map_err(|e| Error::Invalid(format!("line {line}: {e}; nothing imported")))?;
        if !emails.insert(exported.email.to_lowercase()) {
            return invalid!(
                "line {line}: {:?} appears twice in the file; nothing imported",
                exported.email
            );
        }
        if let Some(api_key) = &exported.api_key {
            if !key::is_well_formed(api_key) {
                return invalid!(
                    "line {line}: malformed api_key for {:?}; nothing imported",
                    exported.email
                );
            }
            if !keys.insert(api_key.clone()) {
                return invalid!(
                    "line {line}: the api_key of {:?} appears twice in the file; nothing imported",
                    exported.email
                );
            }
        }
        let role = match &exported.role {
            None => Role::Member,
            Some(serde_json::Value::Number(n)) => {
                n.as_i64().and_then(Role::from_code).ok_or_else(|| {
                    Error::Invalid(format!("line {line}: unknown role {n}; nothing imported"))
                })?
            }
            Some(serde_json::Value::String(name)) => Role::from_name(name).ok_or_else(|| {
                Error::Invalid(format!(
                    "line {line}: unknown role {name:?}; nothing imported"
                ))
            })?,
            Some(other) => return invalid!("line {line}: unknown role {other}; nothing imported"),
        };
        users.push((
            line,
            NewUser {
                email: exported.email,
                full_name: exported.full_name,
                role,
                password: exported.password.filter(|p| !p.is_empty()),
                is_active: exported.is_active,
                api_key: exported.api_key,
            },
        ));
    }
    Ok(users)
}
