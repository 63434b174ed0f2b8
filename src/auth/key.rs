//! API keys: 32 characters of `[A-Za-z0-9]`, each drawn uniformly from the OS generator
//! (wire.md §9.1). Keys are minted here; the store only stores the keys it is given.

use crate::auth::token;
use crate::store::{AuditEntry, Store, StoreError, StoreResult};

pub const KEY_LENGTH: usize = 32;
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// The largest multiple of 62 that fits in a byte: bytes at or above it are redrawn, so
/// every character is equally likely.
const ACCEPT_BELOW: u8 = 248;

pub fn generate() -> String {
    let mut key = String::with_capacity(KEY_LENGTH);
    while key.len() < KEY_LENGTH {
        let buf = token::random_bytes::<64>();
        for &b in buf.iter().filter(|&&b| b < ACCEPT_BELOW) {
            if key.len() == KEY_LENGTH {
                break;
            }
            key.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    key
}

/// Runs `store` with a fresh key, drawing again while the store finds it already in use
/// (astronomically unlikely).
pub fn with_fresh_key<T>(mut store: impl FnMut(&str) -> StoreResult<T>) -> StoreResult<T> {
    loop {
        match store(&generate()) {
            Err(StoreError::KeyInUse) => {}
            other => return other,
        }
    }
}

/// A new key for the user in place of the old, which fails at once (wire.md §9.4); `audit`
/// is the `key_rotated` row.
pub fn replace(store: &Store, user_id: i64, audit: &AuditEntry) -> StoreResult<String> {
    with_fresh_key(|new_key| {
        store.replace_api_key(user_id, new_key, audit)?;
        Ok(new_key.to_owned())
    })
}

pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_LENGTH && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = generate();
        assert!(is_well_formed(&a), "{a}");
        assert_ne!(a, generate());
    }

    #[test]
    fn upstream_vectors() {
        assert!(!is_well_formed("TooShort"));
        assert!(!is_well_formed("32LONGXXXXXXXXXXXXXXXXXXXXXXXXX-"));
        assert!(!is_well_formed(&"a".repeat(33)));
        assert!(is_well_formed("VIzRVw2CspUOnEm9Yu5vQiQtJNkvETkp"));
    }

    #[test]
    fn every_character_is_used() {
        let mut seen = [false; 128];
        for _ in 0..200 {
            for b in generate().bytes() {
                seen[usize::from(b)] = true;
            }
        }
        assert!(ALPHABET.iter().all(|&b| seen[usize::from(b)]));
    }
}
