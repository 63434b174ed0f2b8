//! The model read out of a result row ([`Row`]), once for both engines.

use super::StoreResult;
use super::keys::DeviceKey;
use super::ldap::{Column, LdapSettings};
use super::login_step::LoginStep;
use super::model::{Realm, Role, User};
use super::realm_columns;
use super::sql::{Row, out_of_range};

/// How many columns a user is read from ([`select_user!`]): what a query selects after them
/// starts here.
pub const USER_COLUMNS: usize = 9;

/// `SELECT` and the user's columns (of `"user" u`), then the rest of the statement: the one
/// list of a user's columns, in [`user`]'s order.
macro_rules! select_user {
    ($($rest:expr),* $(,)?) => {
        concat!(
            "SELECT u.id, u.realm_id, u.delivery_email, u.full_name, u.role, u.is_active, ",
            "u.password, u.api_key, u.date_joined ",
            $($rest),*
        )
    };
}
pub(crate) use select_user;

/// A realm, from the columns of [`realm_columns::select_list`]. An empty optional text is
/// no value.
pub fn realm(row: &dyn Row) -> StoreResult<Realm> {
    realm_at(row, 0)
}

/// [`realm`], from the columns starting at column `at` (after a user's, in a join).
pub fn realm_at(row: &dyn Row, at: usize) -> StoreResult<Realm> {
    let first = at + realm_columns::FIRST_LDAP;
    let ldap = LdapSettings::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, &(_, is_flag))| {
            Ok(if is_flag {
                Column::Flag(row.maybe_flag(first + i)?)
            } else {
                Column::Text(row.maybe_text(first + i)?)
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let optional = |i| -> StoreResult<Option<String>> {
        Ok(row
            .maybe_text(at + i)?
            .filter(|value: &String| !value.is_empty()))
    };
    let web = realm_columns::FIRST_WEB;
    let jwt = realm_columns::FIRST_JWT;
    let keys = at + realm_columns::FIRST_KEYS;
    Ok(Realm {
        id: row.int(at)?,
        subdomain: row.text(at + 1)?,
        name: row.text(at + 2)?,
        description: row.text(at + 3)?,
        icon_url: optional(4)?,
        deactivated: row.flag(at + 5)?,
        password_auth_enabled: row.flag(at + 6)?,
        email_auth_enabled: row.flag(at + 7)?,
        ldap: LdapSettings::from_columns(ldap),
        web_login_enabled: row.flag(at + web)?,
        web_login_display_name: optional(web + 1)?,
        require_2fa: row.flag(at + web + 2)?,
        jwt_key: optional(jwt)?,
        jwt_algorithms: row.text(at + jwt + 1)?,
        jwt_require_exp: row.flag(at + jwt + 2)?,
        jwt_max_lifetime: row.int(at + jwt + 3)?,
        api_keys_per_device: row.flag(keys)?,
        api_key_idle_days: row.int(keys + 1)?,
        login_mail: row.flag(keys + 2)?,
        passkeys: row.flag(at + realm_columns::FIRST_PASSKEYS)?,
    })
}

/// A user, from the first [`USER_COLUMNS`] columns ([`select_user!`]).
pub fn user(row: &dyn Row) -> StoreResult<User> {
    let code = row.int(4)?;
    Ok(User {
        id: row.int(0)?,
        realm_id: row.int(1)?,
        delivery_email: row.text(2)?,
        full_name: row.text(3)?,
        role: Role::from_code(code).ok_or_else(|| out_of_range(4, code))?,
        is_active: row.flag(5)?,
        password: row.maybe_text(6)?,
        api_key: row.maybe_text(7)?,
        date_joined: row.text(8)?,
    })
}

/// A web sign-in step with its user: the user's columns, then the step's.
pub fn login_step(row: &dyn Row) -> StoreResult<(LoginStep, User)> {
    let user = user(row)?;
    let at = |i: usize| USER_COLUMNS + i;
    let step = LoginStep {
        user_id: user.id,
        username: row.text(at(0))?,
        verified_hash: row.maybe_text(at(1))?,
        rehash: row.maybe_text(at(2))?,
        enrol_secret: row.maybe_text(at(3))?,
        finishes_login: row.flag(at(4))?,
        expires_at: row.real(at(5))?,
        method: row.text(at(6))?,
    };
    Ok((step, user))
}

/// The columns a device's key is read from (of `api_key k`), in [`device_key`]'s order.
macro_rules! device_key_columns {
    () => {
        "k.id, k.user_id, k.method, k.user_agent, k.name, k.created_at, k.last_used_at"
    };
}
pub(crate) use device_key_columns;

/// How many columns [`device_key_columns!`] lists.
pub const DEVICE_KEY_COLUMNS: usize = 7;

/// A device's key from [`device_key_columns!`] starting at column `first`; `None` when its
/// id is NULL (the user's own key, in a lookup that finds either).
pub fn device_key(row: &dyn Row, first: usize) -> StoreResult<Option<DeviceKey>> {
    let Some(id) = row.maybe_int(first)? else {
        return Ok(None);
    };
    Ok(Some(DeviceKey {
        id,
        user_id: row.int(first + 1)?,
        method: row.text(first + 2)?,
        user_agent: row.maybe_text(first + 3)?,
        name: row.maybe_text(first + 4)?,
        created_at: row.real(first + 5)?,
        last_used_at: row.maybe_real(first + 6)?,
    }))
}
