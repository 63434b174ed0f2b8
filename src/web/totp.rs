//! The second factor on a page (web.md §4): a new key to scan or type, and the field for a
//! six-digit code, as the sign-in and the account page both show them.

use maud::{Markup, PreEscaped, html};

use crate::auth::second_factor;
use crate::auth::totp::{self, Secret};
use crate::store::Realm;

/// The code's field, Django two-factor's name.
pub const CODE_FIELD: &str = "otp_token";

/// A code that is not right now.
pub const WRONG_CODE: &str =
    "That code is not right. Enter the code your authenticator app shows now.";

/// The field for a six-digit code, as phones fill it from an authenticator or a message.
/// It sits under a key to scan, so it takes no focus; the sign-in's code field, where the
/// code is the page's point, is [`code_or_recovery_input`].
pub fn code_input() -> Markup {
    html! {
        label for="otp_token" { "Code" }
        input #otp_token type="text" name=(CODE_FIELD) inputmode="numeric" pattern="[0-9]{6}"
            maxlength=(totp::DIGITS) autocomplete="one-time-code" required;
    }
}

/// The same field where a recovery code is accepted too (web.md §4.1): six digits, or two
/// groups of four letters and digits.
pub fn code_or_recovery_input() -> Markup {
    html! {
        label for="otp_token" { "Code, or a recovery code" }
        input #otp_token type="text" name=(CODE_FIELD)
            pattern="[0-9]{6}|[A-Za-z0-9]{4}-[A-Za-z0-9]{4}" maxlength="9"
            autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required autofocus;
    }
}

/// A new key for the account `email`, as a QR code and as text in groups of four.
pub fn new_key(realm: &Realm, email: &str, secret: &Secret) -> Markup {
    let uri = secret.otpauth_uri(second_factor::issuer(realm), email);
    let key: Vec<char> = secret.to_base32().chars().collect();
    let grouped: Vec<String> = key.chunks(4).map(|c| c.iter().collect()).collect();
    html! {
        p {
            "Scan this QR code with an authenticator app, or enter the key below by hand, "
            "then type the code it shows."
        }
        // The SVG is drawn by the qrcode crate from the URI alone: no text of a person's in it.
        div class="qr" role="img" aria-label="QR code of the key" {
            (PreEscaped(totp::qr_svg(&uri)))
        }
        p { "Key: " code class="secret" { (grouped.join(" ")) } }
    }
}
