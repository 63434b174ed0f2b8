//! Zulip's mobile web-auth flow (web.md §1): the app opens the sign-in page with a one-time
//! pad, `mobile_flow_otp`, and finishes when the page redirects to `zulip://login` with the
//! API key encrypted by that pad.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::web::form::Form;
use crate::web::page::Refusal;

pub const FIELD: &str = "mobile_flow_otp";
/// Zulip serves a desktop flow too; it hands out a browser session, so it is refused here.
pub const DESKTOP_FIELD: &str = "desktop_flow_otp";
const PAD_HEX_DIGITS: usize = 64;

/// What Python's `urllib.parse.urlencode` leaves as it is, which Zulip builds the URL with.
const URLENCODE_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The app's pad: 32 bytes, as the 64 hex digits it sent (kept as sent, to travel on in the
/// second step's hidden field).
#[derive(Clone, PartialEq, Eq)]
pub struct Pad(String);

/// Never the pad itself: it decrypts the key.
impl std::fmt::Debug for Pad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pad(REDACTED)")
    }
}

impl Pad {
    /// The pad of a request's fields: `None` without one, a 400 for a malformed one or for
    /// the desktop flow.
    pub fn from_fields(
        mobile: Option<&str>,
        desktop: Option<&str>,
    ) -> Result<Option<Pad>, Refusal> {
        match (mobile, desktop) {
            (Some(_), Some(_)) => Err(Refusal {
                status: 400,
                message: "Can't use both mobile_flow_otp and desktop_flow_otp together.",
            }),
            (None, Some(_)) => Err(Refusal {
                status: 400,
                message: "The desktop sign-in flow is not supported.",
            }),
            (None, None) => Ok(None),
            (Some(otp), None)
                if otp.len() == PAD_HEX_DIGITS && otp.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Some(Pad(otp.to_owned())))
            }
            (Some(_), None) => Err(Refusal {
                status: 400,
                message: "Invalid OTP",
            }),
        }
    }

    /// The pad of a query string's or a form's fields, as [`Pad::from_fields`] reads them.
    pub fn of(form: &Form) -> Result<Option<Pad>, Refusal> {
        Pad::from_fields(form.get(FIELD), form.get(DESKTOP_FIELD))
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// Zulip's `otp_encrypt_api_key`: the key's ASCII bytes XOR the pad's bytes, as
    /// lowercase hex.
    fn encrypt(&self, api_key: &str) -> String {
        // Checked as 64 hex digits when the pad was read.
        let digit = |d: u8| {
            char::from(d)
                .to_digit(16)
                .and_then(|v| u8::try_from(v).ok())
        };
        let pad = self.0.as_bytes().chunks(2).map(|pair| {
            pair.iter()
                .fold(0u8, |byte, &d| byte << 4 | digit(d).unwrap_or(0))
        });
        api_key
            .bytes()
            .zip(pad)
            .map(|(k, p)| format!("{:02x}", k ^ p))
            .collect()
    }

    /// `zulip://login?otp_encrypted_api_key=…&email=…&user_id=…&realm=…`, in that order.
    pub fn finish_url(&self, api_key: &str, email: &str, user_id: i64, realm_url: &str) -> String {
        let encode = |value: &str| utf8_percent_encode(value, URLENCODE_SAFE).to_string();
        format!(
            "zulip://login?otp_encrypted_api_key={}&email={}&user_id={user_id}&realm={}",
            self.encrypt(api_key),
            encode(email),
            encode(realm_url),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pad(text: &str) -> Result<Option<Pad>, Refusal> {
        Pad::from_fields(Some(text), None)
    }

    #[test]
    fn only_64_hex_digits_make_a_pad() {
        assert!(pad(&"0".repeat(64)).unwrap().is_some());
        assert!(pad(&"aB".repeat(32)).unwrap().is_some());
        for bad in ["", "0", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            assert_eq!(pad(bad).unwrap_err().message, "Invalid OTP");
        }
        assert_eq!(Pad::from_fields(None, None).unwrap(), None);
        assert_eq!(Pad::from_fields(None, Some("x")).unwrap_err().status, 400);
        let both = Pad::from_fields(Some(&"0".repeat(64)), Some("x"));
        assert!(both.unwrap_err().message.starts_with("Can't use both"));
    }

    #[test]
    fn the_finish_url_is_zulips() {
        let zeros = pad(&"0".repeat(64)).unwrap().unwrap();
        let url = zeros.finish_url(
            &"a".repeat(32),
            "iago@example.com",
            5,
            "http://127.0.0.1:9991",
        );
        assert_eq!(
            url,
            format!(
                "zulip://login?otp_encrypted_api_key={}&email=iago%40example.com&user_id=5&realm=http%3A%2F%2F127.0.0.1%3A9991",
                "61".repeat(32)
            )
        );
        let ones = pad(&"ff".repeat(32)).unwrap().unwrap();
        assert_eq!(ones.encrypt("aA"), "9ebe");
        assert_eq!(format!("{ones:?}"), "Pad(REDACTED)");
    }
}
