//! The second factor: TOTP as Zulip's web two-factor login uses it (web.md §4): RFC 6238
//! with HMAC-SHA1, six digits, 30-second steps, one step of tolerance either side, and a
//! 20-byte random key. A code is accepted once: the step it matched must be later than the
//! last accepted one, which the store keeps beside the secret.

use crate::auth::token;
use std::fmt;

use qrcode::QrCode;
use qrcode::render::{svg, unicode};
use totp_rs::{Algorithm, Totp};

pub const DIGITS: usize = 6;
const STEP_SECONDS: u64 = 30;
const SKEW_STEPS: u16 = 1;
const SECRET_BYTES: usize = 20;

/// A TOTP key. Its `Debug` says nothing, so a secret cannot reach a log by accident; the
/// base32 form is for the store and for enrolment only.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

impl Secret {
    /// A fresh key from the OS generator.
    pub fn generate() -> Secret {
        Secret(token::random_bytes::<SECRET_BYTES>().to_vec())
    }

    /// The key as stored: RFC 4648 base32 without padding, as in the otpauth URI.
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.0.as_slice()).to_base32()
    }

    /// A stored key; `None` if the text is not one this module wrote.
    pub fn from_base32(text: &str) -> Option<Secret> {
        let secret = totp_rs::Secret::try_from_base32(text).ok()?;
        (secret.as_bytes().len() == SECRET_BYTES).then(|| Secret(secret.as_bytes().to_vec()))
    }

    #[allow(
        clippy::expect_used,
        reason = "the parameters are constants of RFC 6238, the secret is SECRET_BYTES long \
                  and label_part leaves no colon: the builder's checks cannot fail"
    )]
    fn totp(&self, issuer: Option<&str>, account: &str) -> Totp {
        totp_rs::Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECONDS)
            .with_secret(self.0.clone())
            .with_issuer(issuer.map(label_part))
            .with_account_name(label_part(account))
            .build()
            .expect("the parameters are RFC 6238's and the label has no colon")
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER`, which authenticator apps
    /// read as SHA-1, six digits and 30 s.
    #[allow(
        clippy::expect_used,
        reason = "to_url fails only on an empty account name, which label_part never leaves"
    )]
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        self.totp(Some(issuer), account)
            .to_url()
            .expect("the account name is not empty")
    }

    /// The code for the step holding `epoch_seconds` (what an authenticator app shows).
    pub fn code_at(&self, epoch_seconds: u64) -> String {
        self.totp(None, "-").generate(epoch_seconds).to_string()
    }

    /// The step `code` belongs to, if it is right at `epoch_seconds` (one step either side)
    /// and that step is later than `last_accepted`; else `None`, a wrong code or a replay.
    pub fn accepts(
        &self,
        code: &str,
        epoch_seconds: u64,
        last_accepted: Option<u64>,
    ) -> Option<u64> {
        // Apps show "123 456"; people type it so.
        let code: String = code.split_whitespace().collect();
        let step = self.totp(None, "-").check(&code, epoch_seconds)?;
        last_accepted.is_none_or(|last| step > last).then_some(step)
    }
}

/// The otpauth label separates issuer and account with a colon, so neither may hold one.
fn label_part(text: &str) -> String {
    let cleaned = text.replace(':', " ").trim().to_owned();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

/// The URI as an SVG element for an HTML page (no XML declaration), dark on white with
/// the quiet zone QR readers need; empty for a URI too long for a QR code (the key is shown
/// as text beside it).
pub fn qr_svg(uri: &str) -> String {
    let Ok(code) = QrCode::new(uri.as_bytes()) else {
        return String::new();
    };
    let image = code
        .render::<svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    match image.split_once("?>") {
        Some((_, element)) => element.to_owned(),
        None => image,
    }
}

/// The URI as half-height Unicode blocks, light modules drawn, for a dark or light terminal
/// alike (the quiet zone keeps it readable on either); a sentence instead for a URI too long
/// for a QR code.
pub fn qr_terminal(uri: &str) -> String {
    let Ok(code) = QrCode::new(uri.as_bytes()) else {
        return "(too long for a QR code: enter the key by hand)".to_owned();
    };
    code.render::<unicode::Dense1x2>()
        .dark_color(unicode::Dense1x2::Light)
        .light_color(unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 key, "12345678901234567890".
    fn rfc_secret() -> Secret {
        Secret(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc_6238_vectors_truncated_to_six_digits() {
        // The RFC's eight-digit codes; six digits are their last six.
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(rfc_secret().code_at(time), code, "at {time}");
        }
    }

    #[test]
    fn one_step_of_skew_and_no_replay() {
        let secret = Secret::generate();
        let now = 1_700_000_015;
        let step = now / STEP_SECONDS;
        let previous = secret.code_at(now - 30);
        let next = secret.code_at(now + 30);
        assert_eq!(secret.accepts(&previous, now, None), Some(step - 1));
        assert_eq!(secret.accepts(&next, now, None), Some(step + 1));
        assert_eq!(secret.accepts(&secret.code_at(now - 60), now, None), None);
        assert_eq!(secret.accepts(&secret.code_at(now + 60), now, None), None);
        let current = secret.code_at(now);
        assert_eq!(secret.accepts(&current, now, Some(step - 1)), Some(step));
        // The same code again, or an older one still in the window: refused.
        assert_eq!(secret.accepts(&current, now, Some(step)), None);
        assert_eq!(secret.accepts(&previous, now, Some(step)), None);
        assert_eq!(secret.accepts("12345", now, None), None);
        let spaced = format!(" {} {} ", &current[..3], &current[3..]);
        assert_eq!(secret.accepts(&spaced, now + 30, None), Some(step));
        assert_eq!(secret.accepts("+12345", now, None), None);
    }

    #[test]
    fn uri_and_base32_round_trip() {
        let secret = Secret::generate();
        let stored = secret.to_base32();
        assert_eq!(stored.len(), 32);
        assert_eq!(Secret::from_base32(&stored), Some(secret.clone()));
        assert_eq!(Secret::from_base32("not base32!"), None);
        let uri = secret.otpauth_uri("Lear: Co", "king@lear.example");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/Lear%20%20Co:king%40lear.example?secret={stored}&issuer=Lear%20%20Co"
            )
        );
        assert_eq!(format!("{secret:?}"), "Secret(REDACTED)");
    }

    #[test]
    fn qr_codes_render() {
        let uri = Secret::generate().otpauth_uri("Zulip", "iago@example.com");
        let svg = qr_svg(&uri);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        let terminal = qr_terminal(&uri);
        assert!(terminal.lines().count() > 10);
    }
}
