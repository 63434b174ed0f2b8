//! Every page's path, in one place, so that pages link to one another and the route table
//! names them without any page importing another.

use crate::auth::reset;

/// The sign-in (web.md §3).
pub const LOGIN: &str = "/accounts/login/";

/// Sign-in through a realm's OpenID provider (web.md §10): the start, by the provider's name
/// (or without, for the realm's only one), and the provider's return URL, Zulip's.
pub const OIDC_LOGIN: &str = "/accounts/login/social/oidc";
pub const OIDC_SIGNUP: &str = "/accounts/register/social/oidc";
pub const OIDC_CALLBACK: &str = "/complete/oidc/";

/// The start of a sign-in through the provider `name`.
pub fn oidc_login(name: &str) -> String {
    format!("{OIDC_LOGIN}/{name}")
}

/// `signup_url` of the provider `name`, which starts a sign-in as its `login_url` does.
pub fn oidc_signup(name: &str) -> String {
    format!("{OIDC_SIGNUP}/{name}")
}

/// The account page (web.md §7) and the paths its forms post to.
pub const SETTINGS: &str = "/accounts/settings/";
pub const API_KEY: &str = "/accounts/settings/api-key";
pub const REGENERATE: &str = "/accounts/settings/api-key/regenerate";
pub const ZULIPRC: &str = "/accounts/settings/zuliprc";
pub const PASSWORD: &str = "/accounts/settings/password";
/// Keys per device (wire.md §9.5): one device signed out, every one, and a key for a new one.
pub const DEVICE_SIGN_OUT: &str = "/accounts/settings/devices/sign-out";
pub const SIGN_OUT_EVERYWHERE: &str = "/accounts/settings/devices/sign-out-everywhere";
/// The user's switch of the mail for every new login (web.md §8.1).
pub const LOGIN_MAIL: &str = "/accounts/settings/login-mail";
/// Turning the second factor on: an offer of a key, then its first code (web.md §4).
pub const TWO_FACTOR_ON: &str = "/accounts/settings/two-factor/";
pub const TWO_FACTOR_OFF: &str = "/accounts/settings/two-factor/remove";
/// A new set of recovery codes (web.md §4.1), after the password.
pub const RECOVERY_CODES: &str = "/accounts/settings/two-factor/recovery-codes";
pub const LOGOUT: &str = "/accounts/logout/";
/// Passkeys (web.md §9): adding one after the password, removing one (its confirmation on
/// GET), and the one script of the pages that offer them.
pub const PASSKEY_ADD: &str = "/accounts/settings/passkeys/add";
pub const PASSKEY_REMOVE: &str = "/accounts/settings/passkeys/remove";
pub const PASSKEY_SCRIPT: &str = "/static/passkey.js";

/// The forgotten-password pages (web.md §6); a link is a path below [`RESET_REQUEST`].
pub const RESET_REQUEST: &str = reset::PATH_PREFIX;
pub const RESET_SENT: &str = "/accounts/password/reset/done/";
pub const RESET_DONE: &str = "/accounts/password/done/";
