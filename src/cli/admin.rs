//! The admin commands: realms, users, the database and the audit trail. Each prints its
//! result on stdout and reports bad input as one [`Error`] line; every change is audited.

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{
    DbCommand, LdapArgs, OnOff, RealmArg, RealmCommand, StartTls, TotpCommand, UserCommand, import,
};
use crate::auth::password::{self, Hasher};
use crate::auth::policy;
use crate::auth::second_factor::{self, Origin};
use crate::auth::totp::{self, Secret};
use crate::clock;
use crate::email;
use crate::error::{Error, invalid};
use crate::store::{
    AuditEntry, AuditEvent, LdapChanges, NewUser, Realm, RealmChanges, Store, User,
};

/// Audit details say who acted: the CLI has no client address.
const BY_OPERATOR: &str = "by operator";

fn record(
    store: &Store,
    event: AuditEvent,
    realm: &Realm,
    user_id: Option<i64>,
    detail: String,
) -> Result<(), Error> {
    let entry = AuditEntry {
        detail: Some(detail),
        ..AuditEntry::new(event, Some(realm.id), user_id)
    };
    Ok(store.audit(&entry)?)
}

pub fn realm(store: &Store, command: RealmCommand) -> Result<(), Error> {
    let (subdomain, changes) = match command {
        RealmCommand::Create { subdomain, name } => {
            validate_subdomain(&subdomain)?;
            let realm = store.create_realm(&subdomain, &name)?;
            return record(
                store,
                AuditEvent::RealmCreated,
                &realm,
                None,
                format!("{BY_OPERATOR}: name {name:?}"),
            );
        }
        RealmCommand::List { json } => return list_realms(store, json),
        RealmCommand::Deactivate { subdomain } => (
            subdomain,
            RealmChanges {
                deactivated: Some(true),
                ..RealmChanges::default()
            },
        ),
        RealmCommand::Reactivate { subdomain } => (
            subdomain,
            RealmChanges {
                deactivated: Some(false),
                ..RealmChanges::default()
            },
        ),
        RealmCommand::Set {
            subdomain,
            name,
            description,
            icon,
            password_auth,
            email_auth,
            ldap,
            web,
        } => (
            subdomain,
            RealmChanges {
                name,
                description,
                icon_url: icon,
                password_auth_enabled: password_auth.map(|v| v == OnOff::On),
                deactivated: None,
                email_auth_enabled: email_auth.map(|v| v == OnOff::On),
                ldap: ldap_changes(ldap)?,
                web_login_enabled: web.web_login.map(|v| v == OnOff::On),
                web_login_display_name: web.web_login_name,
                require_2fa: web.require_2fa.map(|v| v == OnOff::On),
            },
        ),
    };
    let realm = store.require_realm(&subdomain)?;
    store.update_realm(&realm, &changes)?;
    record(
        store,
        AuditEvent::RealmChanged,
        &realm,
        None,
        format!("{BY_OPERATOR}: {}", changes.describe()),
    )
}

fn ldap_changes(args: LdapArgs) -> Result<LdapChanges, Error> {
    if let Some(url) = args.ldap_url.as_ref().filter(|url| !url.is_empty())
        && !(url.starts_with("ldap://") || url.starts_with("ldaps://"))
    {
        return invalid!(
            "invalid LDAP URL {url:?}: expected ldap://host[:port] or ldaps://host[:port]"
        );
    }
    if let Some(filter) = &args.ldap_user_filter
        && !filter.contains("%(user)s")
    {
        return invalid!("the LDAP user filter {filter:?} must contain %(user)s");
    }
    // The secret never travels in argv: a file, else the environment.
    let bind_password = match &args.ldap_bind_password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Io(format!("cannot read {}", path.display()), e))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => std::env::var("ZULIP_AUTH_LDAP_BIND_PASSWORD").ok(),
    };
    Ok(LdapChanges {
        // Setting a URL turns LDAP on, unless --ldap off says otherwise.
        enabled: args
            .ldap
            .map(|v| v == OnOff::On)
            .or(args.ldap_url.as_ref().map(|url| !url.is_empty())),
        url: args.ldap_url,
        ca_file: args.ldap_ca_file,
        starttls_required: args.ldap_starttls.map(|v| v == StartTls::Require),
        bind_dn: args.ldap_bind_dn,
        bind_password,
        user_search: args.ldap_user_search,
        user_filter: args.ldap_user_filter,
        append_domain: args.ldap_append_domain,
        email_attr: args.ldap_email_attr,
        full_name_attr: args.ldap_full_name_attr,
        create_users: args.ldap_create_users.map(|v| v == OnOff::On),
    })
}

/// A DNS label, or several joined by dots: it becomes part of a host name.
fn validate_subdomain(subdomain: &str) -> Result<(), Error> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if subdomain.split('.').all(label_ok) {
        Ok(())
    } else {
        invalid!("invalid subdomain {subdomain:?}: use lowercase letters, digits and inner hyphens")
    }
}

fn list_realms(store: &Store, json: bool) -> Result<(), Error> {
    #[derive(Serialize)]
    struct Row {
        subdomain: String,
        name: String,
        deactivated: bool,
        password_auth_enabled: bool,
        email_auth_enabled: bool,
        ldap_enabled: bool,
        users: i64,
    }
    let rows = store
        .realms()?
        .into_iter()
        .map(|r| {
            Ok(Row {
                users: store.user_count(r.id)?,
                ldap_enabled: r.ldap_backend().is_some(),
                subdomain: r.subdomain,
                name: r.name,
                deactivated: r.deactivated,
                password_auth_enabled: r.password_auth_enabled,
                email_auth_enabled: r.email_auth_enabled,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if json {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
        return Ok(());
    }
    print_table(
        &[
            "SUBDOMAIN",
            "NAME",
            "STATE",
            "PASSWORD AUTH",
            "EMAIL",
            "LDAP",
            "USERS",
        ],
        rows.iter().map(|r| {
            vec![
                if r.subdomain.is_empty() {
                    "(root)".into()
                } else {
                    r.subdomain.clone()
                },
                r.name.clone(),
                if r.deactivated {
                    "deactivated"
                } else {
                    "active"
                }
                .into(),
                if r.password_auth_enabled { "on" } else { "off" }.into(),
                if r.email_auth_enabled { "on" } else { "off" }.into(),
                if r.ldap_enabled { "on" } else { "off" }.into(),
                r.users.to_string(),
            ]
        }),
    );
    Ok(())
}

pub fn user(store: &Store, hasher: &Hasher, command: UserCommand) -> Result<(), Error> {
    match command {
        UserCommand::Create {
            email,
            realm,
            full_name,
            role,
            password_stdin: _,
        } => {
            if !email::is_valid(&email) {
                return invalid!("invalid email address {email:?}");
            }
            let realm = store.require_realm(&realm.subdomain)?;
            let password = acceptable(read_password_line()?)?;
            let user = NewUser {
                password: Some(hasher.hash(&password)),
                email,
                full_name,
                role: role.code(),
                is_active: true,
                api_key: None,
            };
            let id = store.create_user(&realm, &user)?;
            record(
                store,
                AuditEvent::UserCreated,
                &realm,
                Some(id),
                BY_OPERATOR.to_owned(),
            )?;
            println!("{id}");
            Ok(())
        }
        UserCommand::List { realm, json } => {
            list_users(store, &store.require_realm(&realm.subdomain)?, json)
        }
        UserCommand::Show { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            show_user(&realm, &user, second_factor::is_enrolled(store, &user)?);
            Ok(())
        }
        UserCommand::Totp(command) => totp(store, command),
        UserCommand::SetPassword {
            email,
            realm,
            password_stdin,
        } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let password = acceptable(if password_stdin {
                read_password_line()?
            } else {
                prompt_password_twice()?
            })?;
            store.set_password_hash(user.id, &hasher.hash(&password))?;
            // As upstream: a new password forgets the failed attempts against the old one.
            store.clear_username_buckets(&user.delivery_email)?;
            record(
                store,
                AuditEvent::PasswordChanged,
                &realm,
                Some(user.id),
                BY_OPERATOR.to_owned(),
            )
        }
        UserCommand::RotateKey { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let key = store.rotate_api_key(user.id)?;
            record(
                store,
                AuditEvent::KeyRotated,
                &realm,
                Some(user.id),
                BY_OPERATOR.to_owned(),
            )?;
            println!("{key}");
            Ok(())
        }
        UserCommand::Import { file, realm } => {
            let realm = store.require_realm(&realm.subdomain)?;
            import::run(store, &realm, &file)
        }
        UserCommand::Deactivate { email, realm } => set_active(store, &realm, &email, false),
        UserCommand::Reactivate { email, realm } => set_active(store, &realm, &email, true),
    }
}

fn find_user(store: &Store, realm: &RealmArg, email: &str) -> Result<(Realm, User), Error> {
    let realm = store.require_realm(&realm.subdomain)?;
    let user = store.require_user(&realm, email)?;
    Ok((realm, user))
}

fn set_active(store: &Store, realm: &RealmArg, email: &str, active: bool) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    store.set_user_active(user.id, active)?;
    let event = if active {
        AuditEvent::UserReactivated
    } else {
        AuditEvent::UserDeactivated
    };
    record(store, event, &realm, Some(user.id), BY_OPERATOR.to_owned())
}

/// The password, if Zulip's policy accepts it.
fn acceptable(password: String) -> Result<String, Error> {
    match policy::check(&password) {
        Ok(()) => Ok(password),
        Err(weakness) => invalid!("password rejected: {weakness}"),
    }
}

/// The first line of stdin, without its line ending.
fn read_password_line() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Io("cannot read the password from stdin".into(), e))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return invalid!("empty password: give it on the first line of stdin");
    }
    Ok(password.to_owned())
}

fn prompt_password_twice() -> Result<String, Error> {
    if !std::io::stdin().is_terminal() {
        return invalid!("stdin is not a terminal: pass the password with --password-stdin");
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map_err(|e| Error::Io("cannot read the password".into(), e))
    };
    let first = prompt("New password: ")?;
    if prompt("Repeat it: ")? != first {
        return invalid!("the two passwords differ");
    }
    Ok(first)
}

#[derive(Serialize)]
struct UserRow<'a> {
    id: i64,
    email: &'a str,
    full_name: &'a str,
    role: &'static str,
    is_active: bool,
    has_api_key: bool,
    password: String,
    date_joined: &'a str,
}

impl<'a> UserRow<'a> {
    fn new(user: &'a User) -> UserRow<'a> {
        UserRow {
            id: user.id,
            email: &user.delivery_email,
            full_name: &user.full_name,
            role: crate::store::ROLES
                .iter()
                .find(|(_, code)| *code == user.role)
                .map_or("member", |(name, _)| name),
            is_active: user.is_active,
            has_api_key: user.api_key.is_some(),
            password: password::describe(user.password.as_deref()),
            date_joined: &user.date_joined,
        }
    }
}

fn list_users(store: &Store, realm: &Realm, json: bool) -> Result<(), Error> {
    let users = store.users_of_realm(realm.id)?;
    let rows: Vec<UserRow<'_>> = users.iter().map(UserRow::new).collect();
    if json {
        println!("{}", serde_json::to_string(&rows).expect("rows serialize"));
        return Ok(());
    }
    print_table(
        &["ID", "EMAIL", "FULL NAME", "ROLE", "STATE", "KEY"],
        rows.iter().map(|r| {
            vec![
                r.id.to_string(),
                r.email.to_owned(),
                r.full_name.to_owned(),
                r.role.to_owned(),
                if r.is_active { "active" } else { "deactivated" }.into(),
                if r.has_api_key { "yes" } else { "no" }.into(),
            ]
        }),
    );
    Ok(())
}

/// `user totp`: the secret is printed once, here, and never again.
fn totp(store: &Store, command: TotpCommand) -> Result<(), Error> {
    match command {
        TotpCommand::Enroll { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let secret = Secret::generate();
            let entry = AuditEntry::new(AuditEvent::TotpEnrolled, None, None);
            second_factor::enrol(store, &realm, &user, &secret, None, Origin::Operator, entry)?;
            let uri = secret.otpauth_uri(second_factor::issuer(&realm), &user.delivery_email);
            println!("{uri}");
            print!("{}", totp::qr_terminal(&uri));
            println!();
            Ok(())
        }
        TotpCommand::Disable { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let entry = AuditEntry::new(AuditEvent::TotpRemoved, None, None);
            if second_factor::remove(store, &realm, &user, Origin::Operator, entry)? {
                Ok(())
            } else {
                invalid!("user {email:?} has no second factor")
            }
        }
    }
}

fn show_user(realm: &Realm, user: &User, has_totp: bool) {
    let row = UserRow::new(user);
    let realm_name = if realm.subdomain.is_empty() {
        "(root)"
    } else {
        &realm.subdomain
    };
    for (label, value) in [
        ("id", row.id.to_string()),
        ("email", row.email.to_owned()),
        ("realm", realm_name.to_owned()),
        ("full name", row.full_name.to_owned()),
        ("role", row.role.to_owned()),
        (
            "state",
            if row.is_active {
                "active"
            } else {
                "deactivated"
            }
            .into(),
        ),
        (
            "api key",
            if row.has_api_key {
                "minted"
            } else {
                "none yet"
            }
            .into(),
        ),
        ("password", row.password),
        ("2fa", if has_totp { "TOTP" } else { "none" }.into()),
        ("joined", row.date_joined.to_owned()),
    ] {
        println!("{label:<10} {value}");
    }
}

pub fn db(store: &Store, command: DbCommand) -> Result<(), Error> {
    match command {
        DbCommand::Backup { dest } => backup(store, &dest),
        DbCommand::Check => {
            let problems = store.integrity_check()?;
            let version = store.schema_version()?;
            if problems != ["ok"] {
                return invalid!(
                    "integrity check failed (schema version {version}): {}",
                    problems.join("; ")
                );
            }
            println!("integrity: ok");
            println!("schema version: {version}");
            Ok(())
        }
    }
}

fn backup(store: &Store, dest: &Path) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    // Created here, empty and private, so the copy is never readable by others, and an
    // existing file is never overwritten.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|e| Error::Io(format!("cannot create {}", dest.display()), e))?;
    store.backup_to(dest)?;
    println!(
        "backed up to {} (schema version {})",
        dest.display(),
        store.schema_version()?
    );
    Ok(())
}

pub fn show_audit(
    store: &Store,
    user: Option<&str>,
    realm: &RealmArg,
    since: Option<Duration>,
    json: bool,
) -> Result<(), Error> {
    let user_id = match user {
        Some(email) => Some(find_user(store, realm, email)?.1.id),
        None => None,
    };
    let since = since.map_or(0.0, |d| clock::now() - d.as_secs_f64());
    let rows = store.audit_rows(since, user_id)?;
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row).expect("rows serialize"));
        }
        return Ok(());
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    print_table(
        &[
            "TIME (UTC)",
            "EVENT",
            "REALM",
            "USER",
            "REASON",
            "ADDRESS",
            "DETAIL",
        ],
        rows.iter().map(|r| {
            vec![
                clock::iso8601(r.at),
                r.event.clone(),
                r.realm
                    .as_deref()
                    .map_or("-", |s| if s.is_empty() { "(root)" } else { s })
                    .to_owned(),
                dash(&r.email),
                dash(&r.reason),
                dash(&r.remote_addr),
                dash(&r.detail),
            ]
        }),
    );
    Ok(())
}

/// Left-aligned columns, two spaces apart.
fn print_table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows)
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
