//! What the store holds, as the rest of the server sees it: realms, users, roles and audit
//! records. No engine's types appear here.

use std::fmt;

use super::ldap::LdapSettings;

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
    pub ldap: LdapSettings,
    /// Whether `server_settings` lists the browser sign-in (web.md §2).
    pub web_login_enabled: bool,
    /// The "Sign in with …" button's name, if not the realm's name.
    pub web_login_display_name: Option<String>,
    /// Phone logins only through the browser, with a second factor (web.md §2).
    pub require_2fa: bool,
    /// Zulip's JWT login (wire.md §17): the key file's contents, a shared secret or a PEM
    /// public key; `None` is off.
    pub jwt_key: Option<String>,
    /// The algorithms accepted with the key, comma-separated as `--jwt-algorithms` takes them.
    pub jwt_algorithms: String,
    /// Ours: whether a token must carry `exp`.
    pub jwt_require_exp: bool,
    /// Ours: how far ahead `exp` may lie, in seconds.
    pub jwt_max_lifetime: i64,
    /// Every login makes a key of its own (wire.md §9.5); else one key per user, as Zulip.
    pub api_keys_per_device: bool,
    /// A device's key unused this many days is revoked by the pruner.
    pub api_key_idle_days: i64,
    /// A mail to the user after every new login (web.md §8.1).
    pub login_mail: bool,
    /// Passkeys offered (web.md §9), where the server has an external URL.
    pub passkeys: bool,
}

impl Realm {
    /// The name on the app's "Sign in with …" button.
    pub fn web_login_name(&self) -> &str {
        self.web_login_display_name.as_deref().unwrap_or(&self.name)
    }

    /// Whether `server_settings` offers the browser sign-in: on request, and always when it
    /// is the apps' only way in.
    pub fn advertises_web_login(&self) -> bool {
        self.web_login_enabled || self.require_2fa
    }

    /// Whether local password hashes are checked.
    pub fn email_backend(&self) -> bool {
        self.password_auth_enabled && self.email_auth_enabled
    }

    /// The directory to check passwords against, when LDAP is on and configured.
    pub fn ldap_backend(&self) -> Option<&LdapSettings> {
        Some(&self.ldap).filter(|l| self.password_auth_enabled && l.is_on())
    }

    /// As Zulip's: false only when LDAP derives emails from usernames.
    pub fn require_email_format_usernames(&self) -> bool {
        !self
            .ldap_backend()
            .is_some_and(|l| l.append_domain.is_some() || l.email_attr.is_some())
    }
}

/// Zulip's roles, with its numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Moderator,
    Member,
    Guest,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Moderator,
        Role::Member,
        Role::Guest,
    ];

    pub const fn code(self) -> i64 {
        match self {
            Role::Owner => 100,
            Role::Admin => 200,
            Role::Moderator => 300,
            Role::Member => 400,
            Role::Guest => 600,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Member => "member",
            Role::Guest => "guest",
        }
    }

    pub fn from_code(code: i64) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Owners and administrators.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: i64,
    pub realm_id: i64,
    pub delivery_email: String,
    pub full_name: String,
    pub role: Role,
    pub is_active: bool,
    /// The stored hash string, exactly as stored: a login's writes are conditional on it.
    pub password: Option<String>,
    pub api_key: Option<String>,
    pub date_joined: String,
}

/// A user to add: created by an operator, imported from Zulip, or made at a first LDAP login.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUser {
    pub email: String,
    pub full_name: String,
    pub role: Role,
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
    pub ldap: LdapSettings,
    pub web_login_enabled: Option<bool>,
    /// `""` goes back to the realm's name.
    pub web_login_display_name: Option<String>,
    pub require_2fa: Option<bool>,
    /// `""` turns the JWT login off.
    pub jwt_key: Option<String>,
    pub jwt_algorithms: Option<String>,
    pub jwt_require_exp: Option<bool>,
    pub jwt_max_lifetime: Option<i64>,
    pub api_keys_per_device: Option<bool>,
    pub api_key_idle_days: Option<i64>,
    pub login_mail: Option<bool>,
    pub passkeys: Option<bool>,
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
            self.web_login_enabled
                .map(|v| format!("web login {}", on_off(v))),
            self.web_login_display_name
                .as_ref()
                .map(|v| format!("web login name {v:?}")),
            self.require_2fa
                .map(|v| format!("require 2fa {}", on_off(v))),
            self.jwt_key.as_ref().map(|v| {
                if v.is_empty() {
                    "jwt off"
                } else {
                    "jwt key changed"
                }
                .to_owned()
            }),
            self.jwt_algorithms
                .as_ref()
                .map(|v| format!("jwt algorithms {v}")),
            self.jwt_require_exp
                .map(|v| format!("jwt require exp {}", on_off(v))),
            self.jwt_max_lifetime
                .map(|v| format!("jwt max lifetime {v}")),
            self.api_keys_per_device
                .map(|v| format!("api keys {}", if v { "per-device" } else { "per-user" })),
            self.api_key_idle_days
                .map(|v| format!("api key idle days {v}")),
            self.login_mail.map(|v| format!("login mail {}", on_off(v))),
            self.passkeys.map(|v| format!("passkeys {}", on_off(v))),
        ]
        .into_iter()
        .flatten()
        .chain(self.ldap.describe())
        .collect();
        if parts.is_empty() {
            "nothing changed".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub full_name: Option<String>,
    /// Checked as at creation by the caller; unique in the realm without regard to case.
    pub email: Option<String>,
}

impl UserChanges {
    /// The changes in words, for the audit trail: the role, but neither names nor addresses,
    /// which a deletion must be able to take away with the account.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            self.role.map(|role| format!("role {}", role.name())),
            self.full_name
                .as_ref()
                .map(|_| "full name changed".to_owned()),
            self.email.as_ref().map(|_| "email changed".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join(", ")
    }
}

/// What the audit trail records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    LoginSuccess,
    LoginFailure,
    KeyMinted,
    KeyRotated,
    /// A device's key revoked: by its user, by the operator, or by a limit (wire.md §9.5).
    KeyRevoked,
    PasswordChanged,
    UserCreated,
    UserDeactivated,
    UserReactivated,
    UserChanged,
    /// Its row names the user by id only.
    UserDeleted,
    /// The user's rate-limit history cleared.
    UserUnlocked,
    RealmCreated,
    RealmChanged,
    TotpEnrolled,
    /// An accepted code; a wrong one is a `LoginFailure` with reason `WRONG_CODE`.
    TotpUsed,
    TotpRemoved,
    /// A new set of recovery codes, which ends the old one (web.md §4.1).
    RecoveryCodesMade,
    /// A recovery code accepted in place of a TOTP code.
    RecoveryCodeUsed,
    /// A user turned the mail for every new login on or off (web.md §8.1).
    LoginMailChanged,
    /// A passkey registered, signed in, or removed (web.md §9).
    PasskeyAdded,
    PasskeyUsed,
    PasskeyRemoved,
    /// A passkey whose signature counter did not move forward: a cloned authenticator.
    PasskeyCloned,
}

impl AuditEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvent::LoginSuccess => "login_success",
            AuditEvent::LoginFailure => "login_failure",
            AuditEvent::KeyMinted => "key_minted",
            AuditEvent::KeyRotated => "key_rotated",
            AuditEvent::KeyRevoked => "key_revoked",
            AuditEvent::PasswordChanged => "password_changed",
            AuditEvent::UserCreated => "user_created",
            AuditEvent::UserDeactivated => "user_deactivated",
            AuditEvent::UserReactivated => "user_reactivated",
            AuditEvent::UserChanged => "user_changed",
            AuditEvent::UserDeleted => "user_deleted",
            AuditEvent::UserUnlocked => "user_unlocked",
            AuditEvent::RealmCreated => "realm_created",
            AuditEvent::RealmChanged => "realm_changed",
            AuditEvent::TotpEnrolled => "totp_enrolled",
            AuditEvent::TotpUsed => "totp_used",
            AuditEvent::TotpRemoved => "totp_removed",
            AuditEvent::RecoveryCodesMade => "recovery_codes_made",
            AuditEvent::RecoveryCodeUsed => "recovery_code_used",
            AuditEvent::LoginMailChanged => "login_mail_changed",
            AuditEvent::PasskeyAdded => "passkey_added",
            AuditEvent::PasskeyUsed => "passkey_used",
            AuditEvent::PasskeyRemoved => "passkey_removed",
            AuditEvent::PasskeyCloned => "passkey_cloned",
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

    /// The same context (time, address, client) for another event.
    pub fn with_event(&self, event: AuditEvent) -> AuditEntry {
        AuditEntry {
            event,
            ..self.clone()
        }
    }
}

/// Which audit rows to read back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AuditFilter {
    /// Epoch seconds; rows at or after it.
    pub since: f64,
    pub realm_id: Option<i64>,
    pub user_id: Option<i64>,
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
    /// The instance that wrote the row (`--instance-name`).
    pub instance: Option<String>,
}
