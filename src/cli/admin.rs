//! The admin commands: realms, users, the database and the audit trail. Each prints its
//! result on stdout and reports bad input as one [`Error`] line; every change is audited.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{
    DbCommand, KeyMode, LdapArgs, OnOff, PasskeyCommand, RealmArg, RealmCommand, TotpCommand,
    UserCommand, import, no_controls, outln, validated,
};
use crate::auth::Origin;
use crate::auth::password::{self, Argon2Config, Hasher};
use crate::auth::recovery;
use crate::auth::second_factor;
use crate::auth::totp::{self, Secret};
use crate::auth::{self, devices, jwt, key, passkeys, policy, reset};
use crate::clock;
use crate::dns;
use crate::email;
use crate::error::{Error, invalid};
use crate::site::ExternalUrl;
use crate::store::limits::username_key;
use crate::store::{
    AuditEntry, AuditEvent, AuditFilter, Database, LdapSettings, NewUser, Realm, RealmChanges,
    Store, StoreResult, User, UserChanges,
};
use crate::text::escape_controls;

/// Audit details say who acted: the CLI has no client address.
const BY_OPERATOR: &str = "by operator";

/// An operator's audit row.
fn entry(
    event: AuditEvent,
    realm: Option<&Realm>,
    user_id: Option<i64>,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        detail: Some(detail),
        ..AuditEntry::new(event, realm.map(|r| r.id), user_id)
    }
}

/// An operator's audit row about one user, with no more detail than that.
fn on_user(event: AuditEvent, realm: &Realm, user: &User) -> AuditEntry {
    entry(event, Some(realm), Some(user.id), BY_OPERATOR.to_owned())
}

pub fn realm(store: &Store, command: RealmCommand) -> Result<(), Error> {
    let (subdomain, changes) = match command {
        RealmCommand::Create { subdomain, name } => {
            validate_subdomain(&subdomain)?;
            no_controls("realm name", &name)?;
            let audit = entry(
                AuditEvent::RealmCreated,
                None,
                None,
                format!("{BY_OPERATOR}: name {name:?}"),
            );
            store.create_realm(&subdomain, &name, &audit)?;
            return Ok(());
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
            jwt,
            keys,
        } => {
            if let Some(name) = &name {
                no_controls("realm name", name)?;
            }
            let changes = RealmChanges {
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
                jwt_key: jwt_key(jwt.jwt_key_file.as_deref())?,
                jwt_algorithms: jwt.jwt_algorithms,
                jwt_require_exp: jwt.jwt_require_exp.map(|v| v == OnOff::On),
                jwt_max_lifetime: jwt.jwt_max_lifetime,
                api_keys_per_device: keys.api_keys.map(|v| v == KeyMode::PerDevice),
                api_key_idle_days: keys.api_key_idle_days,
                login_mail: keys.login_mail.map(|v| v == OnOff::On),
                passkeys: web.passkeys.map(|v| v == OnOff::On),
            };
            (subdomain, changes)
        }
    };
    let realm = store.require_realm(&subdomain)?;
    if changes.ldap.enabled == Some(true) {
        let url = changes.ldap.url.as_ref().or(realm.ldap.url.as_ref());
        if url.is_none_or(String::is_empty) {
            return invalid!(
                "--ldap on needs a directory: realm {} has no LDAP URL (add --ldap-url URL)",
                shell_word(&subdomain)
            );
        }
    }
    let changes = checked_jwt(&realm, changes)?;
    let audit = entry(
        AuditEvent::RealmChanged,
        Some(&realm),
        None,
        format!("{BY_OPERATOR}: {}", changes.describe()),
    );
    store.update_realm(realm.id, &changes, &audit)?;
    let after = store.require_realm(&subdomain)?;
    warn_of_passkeys_off(store, &realm, &after)?;
    if auth::accepts_passwords(&realm) && !auth::accepts_passwords(&after) {
        // Applied all the same: a realm without password login is a valid state (Zulip's
        // PASSWORD_AUTH_DISABLED answer), but rarely the intended one.
        eprintln!(
            "zulip-auth: warning: nobody can sign in to realm {0} any more: no password \
             backend is in force; undo with: zulip-auth realm set {0}{1}",
            shell_word(&subdomain),
            undo(&realm, &changes)
        );
    }
    Ok(())
}

/// One line when passkeys were turned off for users whose only second factor is a passkey:
/// their passkeys stay (the account page and `user show` list them), but the sign-in no
/// longer asks for them (web.md §9).
fn warn_of_passkeys_off(store: &Store, before: &Realm, after: &Realm) -> Result<(), Error> {
    let stranded = passkeys::users_stranded(store, before, after)?;
    if stranded > 0 {
        let now = match after.require_2fa {
            true => "set up a TOTP key at their next sign-in",
            false => "sign in with their password alone",
        };
        eprintln!(
            "zulip-auth: warning: {stranded} user(s) of realm {0} have no second factor but a \
             passkey: they now {now}; undo with: zulip-auth realm set {0} --passkeys on",
            shell_word(&after.subdomain),
        );
    }
    Ok(())
}

/// A JWT key file's contents: `''` turns the JWT login off. The key is not checked here
/// but with the algorithms in force, in [`checked_jwt`].
fn jwt_key(path: Option<&str>) -> Result<Option<String>, Error> {
    match path {
        None => Ok(None),
        Some("") => Ok(Some(String::new())),
        Some(path) => {
            let bytes =
                std::fs::read(path).map_err(|e| Error::Io(format!("cannot read {path}"), e))?;
            match String::from_utf8(bytes) {
                Ok(text) => Ok(Some(text)),
                Err(_) => invalid!(
                    "the JWT key file {path} is not UTF-8 text: give a shared secret or a PEM public key"
                ),
            }
        }
    }
}

/// Refuses a key and algorithms that cannot go together, with what the realm keeps of
/// either; the algorithms are stored as PyJWT names them.
fn checked_jwt(realm: &Realm, mut changes: RealmChanges) -> Result<RealmChanges, Error> {
    if changes.jwt_key.is_none() && changes.jwt_algorithms.is_none() {
        return Ok(changes);
    }
    let algorithms = changes
        .jwt_algorithms
        .as_deref()
        .unwrap_or(&realm.jwt_algorithms);
    let algorithms =
        jwt::parse_algorithms(algorithms).map_err(|e| Error::Invalid(e.to_string()))?;
    if changes.jwt_algorithms.is_some() {
        changes.jwt_algorithms = Some(jwt::algorithm_names(&algorithms));
    }
    let key = changes.jwt_key.as_ref().or(realm.jwt_key.as_ref());
    if let Some(key) = key.filter(|key| !key.is_empty()) {
        jwt::Key::new(key.as_bytes(), algorithms).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    Ok(changes)
}

/// The flags that put back the sign-in methods `changes` turned off.
fn undo(before: &Realm, changes: &RealmChanges) -> String {
    let on_off = |v: bool| if v { "on" } else { "off" };
    let mut flags = String::new();
    let flags_changed = [
        (
            "password-auth",
            before.password_auth_enabled,
            changes.password_auth_enabled,
        ),
        (
            "email-auth",
            before.email_auth_enabled,
            changes.email_auth_enabled,
        ),
        ("ldap", before.ldap.is_on(), changes.ldap.enabled),
    ];
    for (flag, was, now) in flags_changed {
        if now.is_some_and(|now| now != was) {
            flags.push_str(&format!(" --{flag} {}", on_off(was)));
        }
    }
    if let (Some(url), Some(_)) = (&before.ldap.url, &changes.ldap.url) {
        flags.push_str(&format!(" --ldap-url {}", shell_word(url)));
    }
    flags
}

/// `text` as one word for a POSIX shell: single-quoted unless it is plainly safe.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@=,".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

fn ldap_changes(args: LdapArgs) -> Result<LdapSettings, Error> {
    let mut settings = args.settings;
    if let Some(url) = settings.url.as_ref().filter(|url| !url.is_empty()) {
        let shown = crate::text::url_without_secrets(url);
        if !(url.starts_with("ldap://") || url.starts_with("ldaps://")) {
            return invalid!(
                "invalid LDAP URL {shown:?}: expected ldap://host[:port] or ldaps://host[:port]"
            );
        }
        // The audit trail records the URL: no password may ride in it.
        if url.contains('@') {
            return invalid!(
                "invalid LDAP URL {shown:?}: the bind DN and password do not go in the URL (--ldap-bind-dn, ZULIP_AUTH_LDAP_BIND_PASSWORD)"
            );
        }
    }
    if let Some(filter) = &settings.user_filter
        && !filter.contains("%(user)s")
    {
        return invalid!("the LDAP user filter {filter:?} must contain %(user)s");
    }
    // The secret never travels in argv: a file, else the environment.
    settings.bind_password = super::read_secret(
        args.ldap_bind_password_file.as_deref(),
        "ZULIP_AUTH_LDAP_BIND_PASSWORD",
    )?;
    // Setting a URL turns LDAP on, unless --ldap off says otherwise.
    settings.enabled = settings
        .enabled
        .or(settings.url.as_ref().map(|url| !url.is_empty()));
    Ok(settings)
}

/// DNS labels joined by dots, in lowercase: it becomes part of a host name.
fn validate_subdomain(subdomain: &str) -> Result<(), Error> {
    let lowercase = !subdomain.bytes().any(|b| b.is_ascii_uppercase());
    if lowercase && subdomain.split('.').all(dns::is_label) {
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
        web_login_enabled: bool,
        require_2fa: bool,
        users: i64,
    }
    let rows: Vec<Row> = store
        .realms()?
        .into_iter()
        // What is in force, not the stored flags: password auth is on only when a backend
        // checks passwords, and each backend only under password auth.
        .map(|(r, users)| Row {
            users,
            password_auth_enabled: auth::accepts_passwords(&r),
            email_auth_enabled: r.email_backend(),
            ldap_enabled: r.ldap_backend().is_some(),
            web_login_enabled: r.advertises_web_login(),
            require_2fa: r.require_2fa,
            subdomain: r.subdomain,
            name: r.name,
            deactivated: r.deactivated,
        })
        .collect();
    if json {
        return outln!("{}", json_line(&rows)?);
    }
    print_table(
        &[
            "SUBDOMAIN",
            "NAME",
            "STATE",
            "PASSWORD AUTH",
            "EMAIL",
            "LDAP",
            "WEB LOGIN",
            "2FA",
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
                if r.web_login_enabled { "on" } else { "off" }.into(),
                if r.require_2fa {
                    "required"
                } else {
                    "optional"
                }
                .into(),
                r.users.to_string(),
            ]
        }),
    )
}

pub fn user(store: &Store, argon2: Argon2Config, command: UserCommand) -> Result<(), Error> {
    // Only the commands that hash need usable argon2 settings.
    let hasher = || validated(argon2).map(Hasher::new);
    match command {
        UserCommand::Create {
            email,
            realm,
            full_name,
            role,
            password_stdin,
            no_password,
        } => {
            if !email::is_valid(&email) {
                return invalid!("invalid email address {email:?}");
            }
            no_controls("full name", &full_name)?;
            let realm = store.require_realm(&realm.subdomain)?;
            let password = if no_password {
                None
            } else {
                let hasher = hasher()?;
                Some(hasher.hash(&new_password(password_stdin)?))
            };
            let user = NewUser {
                password,
                email,
                full_name,
                role,
                is_active: true,
                api_key: None,
            };
            for id in store.create_users(realm.id, &[user], BY_OPERATOR)? {
                outln!("{id}")?;
            }
            Ok(())
        }
        UserCommand::List { realm, json } => {
            list_users(store, &store.require_realm(&realm.subdomain)?, json)
        }
        UserCommand::Show { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let totp = second_factor::has_totp(store, &user)?;
            let passkeys = passkeys::list(store, &user)?.len();
            show_user(&realm, &user, &second_factors(totp, passkeys))
        }
        UserCommand::Totp(command) => totp(store, command),
        UserCommand::SetPassword {
            email,
            realm,
            password_stdin,
        } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let hasher = hasher()?;
            let password = new_password(password_stdin)?;
            let audit = on_user(AuditEvent::PasswordChanged, &realm, &user);
            // As upstream: a new password forgets the failed attempts against the old one.
            let bucket = username_key(&user.delivery_email);
            store.set_password(user.id, &hasher.hash(&password), &bucket, &audit)?;
            Ok(())
        }
        UserCommand::ResetLink {
            email,
            realm,
            external_url,
            lifetime,
        } => reset_link(store, &realm, &email, external_url, lifetime.lifetime),
        UserCommand::RotateKey { email, realm } => rotate_key(store, &realm, &email),
        UserCommand::Keys { email, realm } => list_keys(store, &realm, &email),
        UserCommand::Passkeys { email, realm } => list_passkeys(store, &realm, &email),
        UserCommand::Passkey(PasskeyCommand::Remove { email, id, realm }) => {
            remove_passkey(store, &realm, &email, id)
        }
        UserCommand::RevokeKey {
            email,
            id,
            all,
            realm,
        } => revoke_key(store, &realm, &email, id.filter(|_| !all)),
        UserCommand::Import { file, realm } => {
            let realm = store.require_realm(&realm.subdomain)?;
            import::run(store, &realm, &file)
        }
        UserCommand::Deactivate { email, realm } => set_active(store, &realm, &email, false),
        UserCommand::Reactivate { email, realm } => set_active(store, &realm, &email, true),
        UserCommand::Set {
            email,
            realm,
            role,
            full_name,
            new_email,
        } => {
            let changes = UserChanges {
                role,
                full_name,
                email: new_email,
            };
            change_user(store, &realm, &email, changes)
        }
        UserCommand::Delete { email, realm, yes } => delete_user(store, &realm, &email, yes),
        UserCommand::Unlock { email, realm } => unlock_user(store, &realm, &email),
    }
}

fn reset_link(
    store: &Store,
    realm: &RealmArg,
    email: &str,
    external_url: Option<String>,
    lifetime: Duration,
) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    if let Err(why) = reset::eligibility(&realm, &user) {
        return invalid!("no reset link for {email:?}: {why}");
    }
    let prefix = match external_url {
        Some(url) => ExternalUrl::parse(&url)
            .map_err(Error::Invalid)?
            .realm_url(&realm.subdomain),
        None => String::new(),
    };
    let token = reset::issue(store, &user, clock::now(), lifetime)?;
    outln!("{prefix}{}", reset::path(&token))
}

fn rotate_key(store: &Store, realm: &RealmArg, email: &str) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    let audit = on_user(AuditEvent::KeyRotated, &realm, &user);
    let key = key::with_fresh_key(|new_key| {
        store.replace_api_key(user.id, new_key, &audit)?;
        Ok(new_key.to_owned())
    })?;
    outln!("{key}")
}

/// `user keys` (wire.md §9.4).
fn list_keys(store: &Store, realm: &RealmArg, email: &str) -> Result<(), Error> {
    let (_, user) = find_user(store, realm, email)?;
    let when = |t: i64| clock::iso8601(t as f64);
    print_table(
        &["ID", "NAME", "METHOD", "CREATED", "LAST USED"],
        devices::list(store, &user, None)?.into_iter().map(|k| {
            vec![
                k.id.to_string(),
                k.name,
                k.method,
                when(k.created),
                k.last_used.map_or_else(|| "-".to_owned(), when),
            ]
        }),
    )
}

/// `user passkeys` (web.md §9).
fn list_passkeys(store: &Store, realm: &RealmArg, email: &str) -> Result<(), Error> {
    let (_, user) = find_user(store, realm, email)?;
    print_table(
        &["ID", "NAME", "ADDED", "LAST USED"],
        passkeys::list(store, &user)?.into_iter().map(|p| {
            vec![
                p.id.to_string(),
                p.record.name,
                clock::iso8601(p.record.created),
                p.record
                    .last_used
                    .map_or_else(|| "-".to_owned(), clock::iso8601),
            ]
        }),
    )
}

/// `user passkey remove`.
fn remove_passkey(store: &Store, realm: &RealmArg, email: &str, id: i64) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    let context = entry(
        AuditEvent::PasskeyRemoved,
        Some(&realm),
        Some(user.id),
        BY_OPERATOR.to_owned(),
    );
    if !passkeys::remove(store, &realm, &user, id, &context)? {
        return invalid!("{email:?} has no passkey {id} (see: zulip-auth user passkeys)");
    }
    Ok(())
}

/// `user revoke-key`: the key `id`, or every key without one (wire.md §9.5).
fn revoke_key(store: &Store, realm: &RealmArg, email: &str, id: Option<i64>) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    let detail = match id {
        Some(id) => format!("{BY_OPERATOR}: key {id}"),
        None => format!("{BY_OPERATOR}: every key"),
    };
    let audit = entry(AuditEvent::KeyRevoked, Some(&realm), Some(user.id), detail);
    match id {
        Some(id) => {
            if !devices::revoke(store, &user, id, &audit)? {
                return invalid!("{email:?} has no key {id} (see: zulip-auth user keys)");
            }
        }
        None => store.revoke_all_keys(user.id, &audit)?,
    }
    Ok(())
}

/// `user set`: each change checked as at creation, before anything is looked up or written.
fn change_user(
    store: &Store,
    realm: &RealmArg,
    email: &str,
    changes: UserChanges,
) -> Result<(), Error> {
    if let Some(new_email) = &changes.email
        && !email::is_valid(new_email)
    {
        return invalid!("invalid email address {new_email:?}");
    }
    if let Some(full_name) = &changes.full_name {
        no_controls("full name", full_name)?;
    }
    let (realm, user) = find_user(store, realm, email)?;
    let detail = format!("{BY_OPERATOR}: {}", changes.describe());
    let audit = entry(AuditEvent::UserChanged, Some(&realm), Some(user.id), detail);
    Ok(store.change_user(user.id, &changes, &audit)?)
}

fn delete_user(store: &Store, realm: &RealmArg, email: &str, yes: bool) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    if !yes {
        confirm_deletion(&user)?;
    }
    // The row says who was deleted by id only: the address goes with the account.
    let audit = entry(
        AuditEvent::UserDeleted,
        Some(&realm),
        Some(user.id),
        format!("{BY_OPERATOR}: user id {}", user.id),
    );
    Ok(store.delete_user(user.id, &username_key(&user.delivery_email), &audit)?)
}

fn unlock_user(store: &Store, realm: &RealmArg, email: &str) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    let audit = on_user(AuditEvent::UserUnlocked, &realm, &user);
    Ok(store.clear_bucket(&username_key(&user.delivery_email), &audit)?)
}

/// Asks on the terminal before a user is deleted; without one, `--yes` must say it.
fn confirm_deletion(user: &User) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return invalid!(
            "stdin is not a terminal: pass --yes to delete {:?}",
            user.delivery_email
        );
    }
    eprint!(
        "Delete {:?} for good, with their keys, sessions, second factor and recovery codes? Type yes: ",
        user.delivery_email
    );
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Io("cannot read the answer".into(), e))?;
    if answer.trim() != "yes" {
        return invalid!("not deleted: the answer was not \"yes\"");
    }
    Ok(())
}

fn find_user(store: &Store, realm: &RealmArg, email: &str) -> Result<(Realm, User), Error> {
    let realm = store.require_realm(&realm.subdomain)?;
    let user = store.require_user(&realm, email)?;
    Ok((realm, user))
}

fn set_active(store: &Store, realm: &RealmArg, email: &str, active: bool) -> Result<(), Error> {
    let (realm, user) = find_user(store, realm, email)?;
    let event = if active {
        AuditEvent::UserReactivated
    } else {
        AuditEvent::UserDeactivated
    };
    let audit = on_user(event, &realm, &user);
    Ok(store.set_user_active(user.id, active, &audit)?)
}

/// A new password from the first line of stdin, or prompted twice on the terminal.
fn new_password(from_stdin: bool) -> Result<String, Error> {
    acceptable(if from_stdin {
        read_password_line()?
    } else {
        prompt_password_twice()?
    })
}

/// The password, if a login could ever send it and Zulip's policy accepts it.
fn acceptable(password: String) -> Result<String, Error> {
    // The API refuses a NUL in any parameter (wire.md §3.4), so such a password could never log in.
    if password.contains('\0') {
        return invalid!("password rejected: it contains a NUL character, which no login can send");
    }
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
            role: user.role.name(),
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
        return outln!("{}", json_line(&rows)?);
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
    )
}

/// `user totp`: the secret is printed once, here, and never again.
fn totp(store: &Store, command: TotpCommand) -> Result<(), Error> {
    // The operator has no client address; the audit detail says who acted.
    let context = AuditEntry::new(AuditEvent::TotpEnrolled, None, None);
    match command {
        TotpCommand::Enroll {
            email,
            realm,
            replace,
        } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            let had_factor = second_factor::is_enrolled(store, &user)?;
            if !replace && second_factor::has_totp(store, &user)? {
                return invalid!(
                    "user {email:?} has a second factor already: add --replace to replace it"
                );
            }
            let secret = Secret::generate();
            second_factor::enrol(
                store,
                &realm,
                &user,
                &secret,
                None,
                Origin::Operator,
                &context,
            )?;
            let codes = recovery::after_first_factor(
                store,
                &realm,
                &user,
                had_factor,
                Origin::Operator,
                &context,
            )?;
            let uri = secret.otpauth_uri(second_factor::issuer(&realm), &user.delivery_email);
            let mut text = format!("{uri}\n{}\n", totp::qr_terminal(&uri));
            for code in codes.iter().flatten() {
                text.push_str(code);
                text.push('\n');
            }
            write_stdout(&text)
        }
        TotpCommand::RecoveryCodes { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            if !second_factor::is_enrolled(store, &user)? {
                return invalid!("user {email:?} has no second factor to recover");
            }
            let codes = recovery::new_set(store, &realm, &user, Origin::Operator, &context)?;
            write_stdout(&(codes.join("\n") + "\n"))
        }
        TotpCommand::Disable { email, realm } => {
            let (realm, user) = find_user(store, &realm, &email)?;
            if second_factor::remove(store, &realm, &user, Origin::Operator, &context)? {
                Ok(())
            } else {
                invalid!("user {email:?} has no second factor")
            }
        }
    }
}

/// Writes what a command prints; a closed pipe (`| head -n 1`) is no error, since what the
/// command did is done either way.
fn write_stdout(text: &str) -> Result<(), Error> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Io("cannot write to stdout".into(), e))
        }
        _ => Ok(()),
    }
}

/// A user's second factors in words: `TOTP`, `2 passkeys`, both, or `none`.
fn second_factors(totp: bool, passkeys: usize) -> String {
    let passkeys = match passkeys {
        0 => None,
        1 => Some("1 passkey".to_owned()),
        n => Some(format!("{n} passkeys")),
    };
    let factors: Vec<String> = totp
        .then(|| "TOTP".to_owned())
        .into_iter()
        .chain(passkeys)
        .collect();
    match factors.is_empty() {
        true => "none".to_owned(),
        false => factors.join(", "),
    }
}

fn show_user(realm: &Realm, user: &User, second_factors: &str) -> Result<(), Error> {
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
        ("2fa", second_factors.to_owned()),
        ("joined", row.date_joined.to_owned()),
    ] {
        outln!("{label:<10} {}", escape_controls(&value))?;
    }
    Ok(())
}

/// `open` gives the `--db` store; `db copy` opens its own two instead.
pub fn db(open: impl FnOnce() -> StoreResult<Store>, command: DbCommand) -> Result<(), Error> {
    match command {
        DbCommand::Backup { dest } => backup(&open()?, &dest),
        DbCommand::Copy { from, to, force } => {
            copy(&Database::from_arg(from)?, &Database::from_arg(to)?, force)
        }
        DbCommand::Prune { audit_retention } => {
            let store = open()?;
            // Beside a running server: no more urgent than its logins' hashing.
            crate::http::lower_priority();
            let mut walk = crate::auth::retention::AuditWalk::default();
            let deleted = walk.round(&store, audit_retention.duration())?;
            outln!(
                "pruned {deleted} audit rows older than {} days",
                audit_retention.days
            )
        }
        DbCommand::Vacuum { full } => {
            let store = open()?;
            let before = store.size_on_disk()?;
            store.vacuum(full)?;
            let after = store.size_on_disk()?;
            outln!(
                "vacuumed{}: {:.1} MiB before, {:.1} MiB after",
                if full { " (full)" } else { "" },
                mib(before),
                mib(after)
            )
        }
        DbCommand::Check => {
            let store = open()?;
            let problems = store.integrity_problems()?;
            let version = store.schema_version()?;
            if !problems.is_empty() {
                return invalid!(
                    "integrity check failed (schema version {version}): {}",
                    problems.join("; ")
                );
            }
            outln!("integrity: ok")?;
            outln!("schema version: {version}")
        }
    }
}

#[expect(clippy::cast_precision_loss, reason = "a size shown to one decimal")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
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
    outln!(
        "backed up to {} (schema version {})",
        dest.display(),
        store.schema_version()?
    )
}

/// `db copy`: every table, ids kept, with the number of rows of each.
fn copy(from: &Database, to: &Database, force: bool) -> Result<(), Error> {
    if from.to_string() == to.to_string() {
        return invalid!("the source and the target are the same database: {from}");
    }
    let source = from.open_existing()?;
    let target = to.open()?;
    let counts = crate::store::copy::copy(&*source, &*target, force)?;
    let counts: Vec<String> = counts
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!("copied from {from} to {to}: {}", counts.join(", "));
    Ok(())
}

pub fn show_audit(
    store: &Store,
    user: Option<&str>,
    realm: Option<&str>,
    since: Option<Duration>,
    json: bool,
) -> Result<(), Error> {
    let realm = realm
        .map(|subdomain| store.require_realm(subdomain))
        .transpose()?;
    let user_id = match user {
        Some(email) => {
            let realm = match &realm {
                Some(realm) => realm.clone(),
                None => store.require_realm("")?,
            };
            Some(store.require_user(&realm, email)?.id)
        }
        None => None,
    };
    let filter = AuditFilter {
        since: since.map_or(0.0, |d| clock::now() - d.as_secs_f64()),
        realm_id: realm.map(|r| r.id),
        user_id,
    };
    let rows = store.audit_rows(&filter)?;
    if json {
        for row in &rows {
            outln!("{}", json_line(row)?)?;
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
            "INSTANCE",
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
                dash(&r.instance),
                dash(&r.detail),
            ]
        }),
    )
}

/// Left-aligned columns, two spaces apart, control characters escaped.
pub(super) fn print_table(
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), Error> {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| (*h).to_owned()).collect())
        .chain(rows.map(|row| {
            row.iter()
                .map(|cell| escape_controls(cell).into_owned())
                .collect()
        }))
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
        outln!("{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

/// A row as one line of JSON; our rows are plain data, so this fails only if serde does.
pub(super) fn json_line<T: serde::Serialize>(row: &T) -> Result<String, Error> {
    serde_json::to_string(row).map_err(|e| Error::Invalid(format!("cannot write JSON: {e}")))
}
