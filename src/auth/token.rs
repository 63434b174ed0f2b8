//! Secrets handed to a person (a reset link's token, a session id): 256 random bits, as
//! URL-safe base64, and stored only as their SHA-256 digest, so a copy of the database holds
//! nothing that opens an account. A digest is looked up by equality: it is not secret itself,
//! so no constant-time comparison is needed.

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};

const SECRET_BYTES: usize = 32;

/// `N` bytes from the OS generator: the one place every secret, key, salt and token of the
/// program draws from.
#[allow(
    clippy::expect_used,
    reason = "without the OS generator no secret can be made and nothing can stand in for one; \
              a request's panic is answered 500 by the handler's catch_unwind"
)]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random generator is available");
    bytes
}

/// A fresh secret and its digest.
pub fn fresh() -> (String, String) {
    let bytes = random_bytes::<SECRET_BYTES>();
    let secret = Base64UrlUnpadded::encode_string(&bytes);
    let digest = digest(&secret);
    (secret, digest)
}

/// What the store keeps for `secret`: lowercase hex of its SHA-256.
pub fn digest(secret: &str) -> String {
    base16ct::lower::encode_string(&Sha256::digest(secret.as_bytes()))
}

/// Whether `text` could be a secret made by [`fresh`]: checked before any lookup.
pub fn is_well_formed(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_secrets_are_distinct_and_well_formed() {
        let (a, da) = fresh();
        let (b, _) = fresh();
        assert_ne!(a, b);
        assert!(is_well_formed(&a) && is_well_formed(&b));
        assert_eq!(da, digest(&a));
        assert_eq!(da.len(), 64);
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&format!("{}=", &a[..42])));
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
