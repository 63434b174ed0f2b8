//! The `realm` table's columns, which both engines read and update in the same order: the
//! base columns, then the LDAP settings, then the browser sign-in's settings, then the JWT
//! login's.

use super::ldap::LdapSettings;

/// The columns every realm had before LDAP and the web sign-in, in reading order.
pub const BASE: [&str; 8] = [
    "id",
    "subdomain",
    "name",
    "description",
    "icon_url",
    "deactivated",
    "password_auth_enabled",
    "email_auth_enabled",
];

/// The browser sign-in's settings (migration 5), after the LDAP settings.
pub const WEB: [&str; 3] = ["web_login_enabled", "web_login_display_name", "require_2fa"];

/// The JWT login's settings (migration 8), after the web ones.
pub const JWT: [&str; 4] = [
    "jwt_key",
    "jwt_algorithms",
    "jwt_require_exp",
    "jwt_max_lifetime",
];

/// The settings of migration 9, after the JWT ones: per-device keys, how many days a
/// device's key may stay unused (wire.md §9.5), and the mail for every new login (web.md §8.1).
pub const KEYS: [&str; 3] = ["api_keys_per_device", "api_key_idle_days", "login_mail"];

/// Passkeys on or off (migration 11, web.md §9), after the keys' settings.
pub const PASSKEYS: [&str; 1] = ["passkeys"];

/// How many columns a realm row has.
pub const COUNT: usize =
    BASE.len() + LdapSettings::COLUMNS.len() + WEB.len() + JWT.len() + KEYS.len() + PASSKEYS.len();

/// Index of the first LDAP column in a row.
pub const FIRST_LDAP: usize = BASE.len();

/// Index of the first web column in a row.
pub const FIRST_WEB: usize = FIRST_LDAP + LdapSettings::COLUMNS.len();

/// Index of the first JWT column in a row.
pub const FIRST_JWT: usize = FIRST_WEB + WEB.len();

/// Index of the first keys column in a row.
pub const FIRST_KEYS: usize = FIRST_JWT + JWT.len();

/// Index of the passkeys column in a row.
pub const FIRST_PASSKEYS: usize = FIRST_KEYS + KEYS.len();

/// Every column a realm is read from, in row order, prefixed with `r.`.
pub fn select_list() -> String {
    BASE.iter()
        .copied()
        .chain(LdapSettings::COLUMNS.iter().map(|&(name, _)| name))
        .chain(WEB)
        .chain(JWT)
        .chain(KEYS)
        .chain(PASSKEYS)
        .map(|c| format!("r.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `UPDATE realm` that sets what a change sets and leaves the rest: `$1` is the id, then
/// one parameter per changeable column.
pub fn update() -> String {
    let sets: Vec<String> = [
        "name",
        "description",
        "icon_url",
        "password_auth_enabled",
        "deactivated",
        "email_auth_enabled",
    ]
    .into_iter()
    .chain(LdapSettings::COLUMNS.iter().map(|&(name, _)| name))
    .chain(WEB)
    .chain(JWT)
    .chain(KEYS)
    .chain(PASSKEYS)
    .enumerate()
    .map(|(i, c)| format!("{c} = coalesce(${}, {c})", i + 2))
    .collect();
    format!("UPDATE realm SET {} WHERE id = $1", sets.join(", "))
}
