//! The two kinds of failure: `ApiError` is what an HTTP client sees, `Error` is what the
//! command line reports before exiting non-zero.
//!
//! Every client-visible message lives here, once, so the exact strings of the wire spec
//! cannot drift apart between handlers.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::store::StoreError;

/// A Zulip-shaped error response: it knows its status, `msg`, `code` and data keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub msg: Cow<'static, str>,
    pub code: Option<&'static str>,
    pub var_name: Option<&'static str>,
    /// Seconds until a rate-limited request may be retried (E6 only).
    pub retry_after: Option<f64>,
    /// The Basic-auth 401s carry `WWW-Authenticate: Basic realm="zulip"` (wire.md §9.2).
    pub www_authenticate: bool,
    /// The kind of store fault behind it, if one is (the `kind` label of
    /// `zulip_auth_db_errors_total`), counted where the error reaches the wire.
    pub db_error: Option<&'static str>,
}

/// Serialized in Zulip's key order: `result`, `msg`, data keys, `code`, trailing extras.
#[derive(Serialize)]
struct ErrorBody<'a> {
    result: &'static str,
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    var_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(rename = "retry-after", skip_serializing_if = "Option::is_none")]
    retry_after: Option<f64>,
}

const BAD_REQUEST: &str = "BAD_REQUEST";

/// The `Retry-After` of [`ApiError::unavailable`].
pub const UNAVAILABLE_RETRY_AFTER: &str = "5";

impl ApiError {
    const fn new(status: u16, msg: &'static str, code: &'static str) -> ApiError {
        ApiError {
            status,
            msg: Cow::Borrowed(msg),
            code: Some(code),
            var_name: None,
            retry_after: None,
            www_authenticate: false,
            db_error: None,
        }
    }

    /// E2/E3: a required parameter is absent.
    pub fn missing_argument(name: &'static str) -> ApiError {
        let msg = match name {
            "username" => "Missing 'username' argument",
            "password" => "Missing 'password' argument",
            _ => "Missing argument",
        };
        ApiError {
            var_name: Some(name),
            ..ApiError::new(400, msg, "REQUEST_VARIABLE_MISSING")
        }
    }

    /// E4: no realm for the request's Host.
    pub const fn nonexistent_subdomain() -> ApiError {
        ApiError::new(404, "Invalid subdomain", "NONEXISTENT_SUBDOMAIN")
    }

    /// `server_settings` on a Host without a realm.
    pub const fn invalid_subdomain() -> ApiError {
        ApiError::new(400, "Invalid subdomain", BAD_REQUEST)
    }

    /// E5.
    pub const fn invalid_email() -> ApiError {
        ApiError::new(400, "Enter a valid email address.", BAD_REQUEST)
    }

    /// E6: over the per-username or per-address limit.
    pub fn rate_limited(retry_after: f64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                429,
                "API usage exceeded rate limit; see https://zulip.com/api/http-headers#rate-limiting-response-headers",
                "RATE_LIMIT_HIT",
            )
        }
    }

    /// wire.md §8: the queue of costly requests is full; answered at once, nothing recorded.
    pub fn overloaded() -> ApiError {
        ApiError::rate_limited(1.0)
    }

    /// E7.
    pub const fn user_deactivated() -> ApiError {
        ApiError::new(401, "Account is deactivated", "USER_DEACTIVATED")
    }

    /// E8.
    pub const fn realm_deactivated() -> ApiError {
        ApiError::new(
            401,
            "This organization has been deactivated",
            "REALM_DEACTIVATED",
        )
    }

    /// E9.
    pub const fn password_auth_disabled() -> ApiError {
        ApiError::new(
            401,
            "Password authentication is disabled in this organization",
            "PASSWORD_AUTH_DISABLED",
        )
    }

    /// E10.
    pub const fn password_reset_required() -> ApiError {
        ApiError::new(
            401,
            "Your password has been disabled and needs to be reset",
            "PASSWORD_RESET_REQUIRED",
        )
    }

    /// E11: the one answer for every credential failure, so none of them can be told apart.
    pub const fn authentication_failed() -> ApiError {
        ApiError::new(
            401,
            "Your username or password is incorrect",
            "AUTHENTICATION_FAILED",
        )
    }

    /// E12: carries no `code`, as upstream's.
    pub const fn internal() -> ApiError {
        ApiError {
            status: 500,
            msg: Cow::Borrowed("Internal server error"),
            code: None,
            var_name: None,
            retry_after: None,
            www_authenticate: false,
            db_error: None,
        }
    }

    /// wire.md §3.6: the store cannot be used right now. Retried after
    /// [`UNAVAILABLE_RETRY_AFTER`] seconds, which only the header says.
    pub const fn unavailable() -> ApiError {
        ApiError::new(503, "Service temporarily unavailable", BAD_REQUEST)
    }

    pub const fn not_found() -> ApiError {
        ApiError::new(404, "Not Found", BAD_REQUEST)
    }

    /// wire.md §4.1 step 0: a Host that is not a name, an address, and an optional port.
    pub const fn invalid_host() -> ApiError {
        ApiError::new(400, "Invalid host", BAD_REQUEST)
    }

    pub const fn body_too_large() -> ApiError {
        ApiError::new(413, "Request body too large", BAD_REQUEST)
    }

    /// The body could not be read (a broken chunked encoding, or the client went away).
    pub const fn unreadable_body() -> ApiError {
        ApiError::new(400, "Invalid request body", BAD_REQUEST)
    }

    pub const fn too_many_parameters() -> ApiError {
        ApiError::new(400, "Too many parameters", BAD_REQUEST)
    }

    pub const fn invalid_characters() -> ApiError {
        ApiError::new(400, "Invalid characters in request parameters", BAD_REQUEST)
    }

    pub const fn invalid_utf8() -> ApiError {
        ApiError::new(400, "Invalid UTF-8 in request parameters", BAD_REQUEST)
    }

    /// `PATCH /api/v1/settings`: the password is the directory's (web.md §5, check 1).
    pub const fn password_managed_by_ldap() -> ApiError {
        ApiError::new(400, "Your Zulip password is managed in LDAP", BAD_REQUEST)
    }

    /// A parameter that must be a JSON boolean, as Zulip's typed parameters word it.
    pub fn not_a_boolean(name: &'static str) -> ApiError {
        ApiError {
            msg: Cow::Owned(format!("{name} is not a boolean")),
            ..ApiError::new(400, "", BAD_REQUEST)
        }
    }

    /// wire.md §17, row 2.
    pub const fn jwt_disabled() -> ApiError {
        ApiError::new(
            400,
            "JWT authentication is not enabled for this organization",
            BAD_REQUEST,
        )
    }

    /// wire.md §17, row 3.
    pub const fn no_jwt() -> ApiError {
        ApiError::new(400, "No JSON web token passed in request", BAD_REQUEST)
    }

    /// wire.md §17, row 4.
    pub const fn bad_jwt() -> ApiError {
        ApiError::new(400, "Bad JSON web token", BAD_REQUEST)
    }

    /// wire.md §17, row 5.
    pub const fn jwt_without_email() -> ApiError {
        ApiError::new(
            400,
            "No email specified in JSON web token claims",
            BAD_REQUEST,
        )
    }

    /// web.md §5, check 2: the per-username limit, in whole seconds as Python's `int()`.
    pub fn too_many_attempts(retry_after: f64) -> ApiError {
        ApiError {
            msg: Cow::Owned(format!(
                "You're making too many attempts! Try again in {} seconds.",
                retry_after as u64
            )),
            ..ApiError::new(400, "", BAD_REQUEST)
        }
    }

    /// web.md §5, check 3.
    pub const fn wrong_old_password() -> ApiError {
        ApiError::new(400, "Wrong password!", BAD_REQUEST)
    }

    /// web.md §5, check 4.
    pub const fn new_password_too_weak() -> ApiError {
        ApiError::new(400, "New password is too weak!", BAD_REQUEST)
    }

    /// Django's 405 body (wire.md §3.2): `allowed_methods` instead of a code, and no newline.
    pub fn method_not_allowed_body(allowed: &[&str]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            result: &'static str,
            msg: &'static str,
            allowed_methods: &'a [&'a str],
        }
        let body = Body {
            result: "error",
            msg: "Method Not Allowed",
            allowed_methods: allowed,
        };
        // Strings only: serializing cannot fail, and an empty body would do no harm.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The compact JSON body, ending in one newline.
    pub fn to_json(&self) -> Vec<u8> {
        let body = ErrorBody {
            result: "error",
            msg: &self.msg,
            var_name: self.var_name,
            code: self.code,
            retry_after: self.retry_after,
        };
        // Room for the longest message without growing.
        let mut bytes = Vec::with_capacity(256);
        // Strings and a float (serde_json writes a non-finite one as null): cannot fail.
        if serde_json::to_writer(&mut bytes, &body).is_err() {
            bytes.clear();
        }
        bytes.push(b'\n');
        bytes
    }
}

/// The refusals of the routes a key authenticates (wire.md §9.2), in the order they are checked.
impl ApiError {
    /// A failed Basic-auth check of `users/me` or `regenerate` (wire.md §9.2).
    const fn unauthorized(msg: &'static str) -> ApiError {
        ApiError {
            status: 401,
            msg: Cow::Borrowed(msg),
            code: Some("UNAUTHORIZED"),
            var_name: None,
            retry_after: None,
            www_authenticate: true,
            db_error: None,
        }
    }

    /// §9.2: no `Authorization` header.
    pub const fn not_logged_in() -> ApiError {
        ApiError::unauthorized("Not logged in: API authentication or user session required")
    }

    /// §9.2: a Basic header that does not decode to `email:key`.
    pub const fn invalid_basic_header() -> ApiError {
        ApiError::unauthorized("Invalid authorization header for basic auth")
    }

    /// §9.2: a key that cannot be one.
    pub const fn malformed_api_key() -> ApiError {
        ApiError::unauthorized("Malformed API key")
    }

    /// §9.2: no user has this key (with this email).
    pub const fn invalid_api_key() -> ApiError {
        ApiError::unauthorized("Invalid API key")
    }

    /// §9.5: no key of the caller's has this id (another user's included).
    pub const fn invalid_api_key_id() -> ApiError {
        ApiError::new(400, "Invalid API key ID", BAD_REQUEST)
    }

    /// §9.2: the key's realm is deactivated.
    pub const fn key_realm_deactivated() -> ApiError {
        ApiError::unauthorized("This organization has been deactivated")
    }

    /// §9.2: the key's user is deactivated.
    pub const fn key_user_deactivated() -> ApiError {
        ApiError::unauthorized("Account is deactivated")
    }

    /// §9.2: the key's realm is not the Host's.
    pub const fn key_of_another_realm() -> ApiError {
        ApiError::unauthorized("Account is not associated with this subdomain")
    }

    /// §9.2 step 3: another scheme than Basic.
    pub const fn basic_auth_required() -> ApiError {
        ApiError::new(
            400,
            "This endpoint requires HTTP basic authentication.",
            BAD_REQUEST,
        )
    }
}

/// A store failure inside a request, logged here: the store being unavailable is the 503
/// of wire.md §3.6; anything else is a bug, answered with the bare 500 that leaks nothing.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        log::error!("store error: {err}");
        let (answer, kind) = match err {
            StoreError::Unavailable(_) => (ApiError::unavailable(), "unavailable"),
            StoreError::Refused(_) => (ApiError::internal(), "refused"),
            StoreError::KeyInUse => (ApiError::internal(), "key_in_use"),
        };
        ApiError {
            db_error: Some(kind),
            ..answer
        }
    }
}

/// What the command line reports: one line, then a non-zero exit.
#[derive(Debug)]
pub enum Error {
    /// The operator asked for something that cannot be done (unknown realm, bad email, ...).
    Invalid(String),
    /// The server could not start (its HTTP server, its mail transport), or a fault stopped
    /// it; systemd restarts it on the non-zero exit.
    Startup(String),
    Store(StoreError),
    Io(String, std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(msg) | Error::Startup(msg) => f.write_str(msg),
            Error::Store(err) => write!(f, "{err}"),
            Error::Io(context, err) => write!(f, "{context}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Error {
        Error::Store(err)
    }
}

/// Shorthand for `Err(Error::Invalid(..))` with a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        Err($crate::error::Error::Invalid(format!($($arg)*)))
    };
}
pub(crate) use invalid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_matches_zulip() {
        assert_eq!(
            ApiError::missing_argument("username").to_json(),
            b"{\"result\":\"error\",\"msg\":\"Missing 'username' argument\",\"var_name\":\"username\",\"code\":\"REQUEST_VARIABLE_MISSING\"}\n"
        );
        assert_eq!(
            ApiError::internal().to_json(),
            b"{\"result\":\"error\",\"msg\":\"Internal server error\"}\n"
        );
    }

    #[test]
    fn retry_after_is_a_python_repr_float() {
        let body = String::from_utf8(ApiError::rate_limited(1800.0).to_json()).unwrap();
        assert!(body.ends_with(",\"code\":\"RATE_LIMIT_HIT\",\"retry-after\":1800.0}\n"));
    }
}
