//! Password hashes: new ones are argon2id PHC strings with the configured parameters;
//! stored ones verify with their own parameters, including Django's `argon2$…` form and
//! Zulip's original `pbkdf2_sha256$…` (wire.md §10.1).
//!
//! Every verification costs one argon2 computation, also when there is nothing to verify
//! against (unknown user, unusable hash): then a dummy hash made at start-up with the
//! configured parameters is verified instead, so timing does not reveal which accounts exist
//! (wire.md §10.4).

use std::cell::RefCell;
use std::time::Instant;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64ct::{Base64, Base64Unpadded, Encoding};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::token;
use crate::metrics;

/// Passwords longer than this are never hashed: they count as a mismatch (wire.md §3.4).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Caps on parameters read from stored strings, so a hostile or corrupt row cannot make one
/// verification take gigabytes or minutes.
const MAX_STORED_M_KIB: u32 = 1024 * 1024;
const MAX_STORED_T: u32 = 64;
const MAX_STORED_P: u32 = 16;
const MAX_STORED_PBKDF2_ITERATIONS: u32 = 10_000_000;
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

/// The argon2id cost parameters new hashes are made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Config {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Default for Argon2Config {
    fn default() -> Argon2Config {
        Argon2Config {
            m_kib: 19456,
            t: 2,
            p: 1,
        }
    }
}

impl Argon2Config {
    pub fn validate(self) -> Result<Argon2Config, String> {
        let ok = self.m_kib <= MAX_STORED_M_KIB
            && (1..=MAX_STORED_T).contains(&self.t)
            && (1..=MAX_STORED_P).contains(&self.p)
            && Params::new(self.m_kib, self.t, self.p, Some(OUTPUT_BYTES)).is_ok();
        if ok {
            Ok(self)
        } else {
            Err(format!(
                "invalid argon2 parameters m={},t={},p={}: need 8·p ≤ m ≤ {MAX_STORED_M_KIB} KiB, 1 ≤ t ≤ {MAX_STORED_T}, 1 ≤ p ≤ {MAX_STORED_P}",
                self.m_kib, self.t, self.p
            ))
        }
    }
}

/// A stored hash, parsed.
#[derive(Debug, Clone, PartialEq)]
enum StoredHash {
    Argon2 {
        algorithm: Algorithm,
        version: Version,
        m_kib: u32,
        t: u32,
        p: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Django's `pbkdf2_sha256$ITERATIONS$SALT$HASH`: Zulip's original hasher.
    Pbkdf2 {
        iterations: u32,
        salt: String,
        hash: Vec<u8>,
    },
    /// Empty, `!…` (Django's unusable password), or a format we do not support.
    Unusable,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; `needs_rehash` when the stored hash is not exactly what the
    /// configured parameters would produce (wire.md §10.2).
    Match {
        needs_rehash: bool,
    },
    Mismatch,
}

/// Hashes and verifies passwords with one configuration and its dummy hash.
#[derive(Debug, Clone)]
pub struct Hasher {
    config: Argon2Config,
    dummy: StoredHash,
}

impl Hasher {
    /// The dummy hash has the configured parameters and a random salt and output: verifying
    /// against it costs what a real verification costs, and no password can match it. So
    /// start-up spends no hash computation on it.
    pub fn new(config: Argon2Config) -> Hasher {
        let salt = token::random_bytes::<SALT_BYTES>().to_vec();
        let hash = token::random_bytes::<OUTPUT_BYTES>().to_vec();
        Hasher {
            config,
            dummy: StoredHash::Argon2 {
                algorithm: Algorithm::Argon2id,
                version: Version::V0x13,
                m_kib: config.m_kib,
                t: config.t,
                p: config.p,
                salt,
                hash,
            },
        }
    }

    /// Times `samples` verifications of a hash made with this configuration.
    pub fn time_verifications(&self, samples: usize) -> Vec<std::time::Duration> {
        let stored = parse(&self.hash("bench-hash password"));
        (0..samples)
            .map(|_| {
                let started = std::time::Instant::now();
                assert!(self.verify_parsed(&stored, b"bench-hash password"));
                started.elapsed()
            })
            .collect()
    }

    /// A fresh argon2id PHC string for `password`.
    #[allow(
        clippy::expect_used,
        reason = "the configuration passed Argon2Config::validate, which asks argon2 itself \
                  whether these parameters and this output length hash"
    )]
    pub fn hash(&self, password: &str) -> String {
        let salt = token::random_bytes::<SALT_BYTES>();
        let Argon2Config { m_kib, t, p } = self.config;
        let mut out = [0u8; OUTPUT_BYTES];
        self.compute(
            Algorithm::Argon2id,
            Version::V0x13,
            (m_kib, t, p),
            password.as_bytes(),
            &salt,
            &mut out,
        )
        .expect("validated parameters always hash");
        format!(
            "$argon2id$v=19$m={m_kib},t={t},p={p}${}${}",
            Base64Unpadded::encode_string(&salt),
            Base64Unpadded::encode_string(&out)
        )
    }

    /// Checks `password` against `stored` (`None` for a user we do not know). Always costs
    /// one argon2 verification.
    pub fn verify(&self, stored: Option<&str>, password: &str) -> Verdict {
        let parsed = stored.map_or(StoredHash::Unusable, parse);
        if matches!(parsed, StoredHash::Unusable) || password.len() > MAX_PASSWORD_BYTES {
            self.spend_dummy_verification();
            return Verdict::Mismatch;
        }
        match self.verify_parsed(&parsed, password.as_bytes()) {
            true => Verdict::Match {
                needs_rehash: self.needs_rehash(&parsed),
            },
            false => Verdict::Mismatch,
        }
    }

    /// One verification against the dummy hash, for requests that have no hash to check.
    pub fn spend_dummy_verification(&self) {
        self.verify_parsed(&self.dummy, b"");
    }

    fn needs_rehash(&self, parsed: &StoredHash) -> bool {
        match parsed {
            StoredHash::Argon2 {
                algorithm,
                version,
                m_kib,
                t,
                p,
                hash,
                ..
            } => {
                *algorithm != Algorithm::Argon2id
                    || *version != Version::V0x13
                    || (*m_kib, *t, *p) != (self.config.m_kib, self.config.t, self.config.p)
                    || hash.len() != OUTPUT_BYTES
            }
            StoredHash::Pbkdf2 { .. } | StoredHash::Unusable => true,
        }
    }

    fn verify_parsed(&self, parsed: &StoredHash, password: &[u8]) -> bool {
        let started = Instant::now();
        let matched = self.verify_parsed_untimed(parsed, password);
        metrics::verification(started.elapsed());
        matched
    }

    fn verify_parsed_untimed(&self, parsed: &StoredHash, password: &[u8]) -> bool {
        match parsed {
            StoredHash::Argon2 {
                algorithm,
                version,
                m_kib,
                t,
                p,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                self.compute(
                    *algorithm,
                    *version,
                    (*m_kib, *t, *p),
                    password,
                    salt,
                    &mut out,
                )
                .is_ok()
                    && bool::from(out.ct_eq(hash))
            }
            StoredHash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), *iterations, &mut out);
                bool::from(out.ct_eq(hash))
            }
            StoredHash::Unusable => false,
        }
    }

    /// One argon2 computation. Each thread keeps the memory of the configured size and
    /// reuses it, so a login allocates no 19 MiB block; larger stored parameters (imported
    /// hashes) get a temporary allocation.
    fn compute(
        &self,
        algorithm: Algorithm,
        version: Version,
        (m_kib, t, p): (u32, u32, u32),
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), argon2::Error> {
        thread_local! {
            static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
        }
        #[cfg(test)]
        COMPUTED.set(COMPUTED.get() + 1);
        let params = Params::new(m_kib, t, p, Some(out.len()))?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let needed = params.block_count();
        let configured = Params::new(self.config.m_kib, self.config.t, self.config.p, None)
            .map_or(0, |p| p.block_count());
        if needed > configured {
            return argon2.hash_password_into(password, salt, out);
        }
        MEMORY.with_borrow_mut(|memory| {
            if memory.len() < needed {
                memory.resize(needed, Block::new());
            }
            argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..needed])
        })
    }
}

#[cfg(test)]
thread_local! {
    /// Argon2 computations this thread ran: for tests of steps that must never hash.
    pub static COMPUTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Whether a stored hash can ever match a password (imports count those that cannot).
pub fn is_usable(stored: &str) -> bool {
    parse(stored) != StoredHash::Unusable
}

/// What kind of hash is stored, for operators; never the hash itself.
pub fn describe(stored: Option<&str>) -> String {
    match stored.map(parse) {
        Some(StoredHash::Argon2 {
            algorithm,
            version,
            m_kib,
            t,
            p,
            hash,
            ..
        }) => format!(
            "{} v={} m={m_kib},t={t},p={p} ({}-byte output)",
            algorithm.as_str(),
            u32::from(version),
            hash.len()
        ),
        Some(StoredHash::Pbkdf2 { iterations, .. }) => {
            format!("pbkdf2_sha256 {iterations} iterations (legacy, re-hashed at next login)")
        }
        Some(StoredHash::Unusable) | None => "none usable".to_owned(),
    }
}

/// Parses a stored hash: a PHC argon2 string, optionally behind Django's `argon2` prefix, or
/// Django's PBKDF2 form.
fn parse(stored: &str) -> StoredHash {
    let parsed = match stored.strip_prefix("pbkdf2_sha256$") {
        Some(rest) => parse_pbkdf2(rest),
        None => parse_argon2_phc(stored.strip_prefix("argon2").unwrap_or(stored)),
    };
    parsed.unwrap_or(StoredHash::Unusable)
}

/// `ITERATIONS$SALT$HASH`: the salt is used as its UTF-8 bytes, the hash is padded base64.
fn parse_pbkdf2(rest: &str) -> Option<StoredHash> {
    let mut fields = rest.split('$');
    let iterations: u32 = fields.next()?.parse().ok()?;
    let salt = fields.next()?.to_owned();
    let hash = Base64::decode_vec(fields.next()?).ok()?;
    let sane = fields.next().is_none()
        && (1..=MAX_STORED_PBKDF2_ITERATIONS).contains(&iterations)
        && !salt.is_empty()
        && (16..=64).contains(&hash.len());
    sane.then_some(StoredHash::Pbkdf2 {
        iterations,
        salt,
        hash,
    })
}

/// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`; a missing `v=` means version 0x10.
fn parse_argon2_phc(phc: &str) -> Option<StoredHash> {
    let mut fields = phc.strip_prefix('$')?.split('$');
    let algorithm = match fields.next()? {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => Algorithm::Argon2d,
        _ => return None,
    };
    let mut field = fields.next()?;
    let version = match field.strip_prefix("v=") {
        Some(v) => {
            field = fields.next()?;
            match v {
                "19" => Version::V0x13,
                "16" => Version::V0x10,
                _ => return None,
            }
        }
        None => Version::V0x10,
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for param in field.split(',') {
        let (name, value) = param.split_once('=')?;
        let value: u32 = value.parse().ok()?;
        match name {
            "m" => m = Some(value),
            "t" => t = Some(value),
            "p" => p = Some(value),
            _ => return None,
        }
    }
    let (m_kib, t, p) = (m?, t?, p?);
    let salt = Base64Unpadded::decode_vec(fields.next()?).ok()?;
    let hash = Base64Unpadded::decode_vec(fields.next()?).ok()?;
    let sane = fields.next().is_none()
        && m_kib <= MAX_STORED_M_KIB
        && (1..=MAX_STORED_T).contains(&t)
        && (1..=MAX_STORED_P).contains(&p)
        && (8..=64).contains(&salt.len())
        && (4..=64).contains(&hash.len())
        && Params::new(m_kib, t, p, Some(hash.len())).is_ok();
    sane.then_some(StoredHash::Argon2 {
        algorithm,
        version,
        m_kib,
        t,
        p,
        salt,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Argon2Config = Argon2Config {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[test]
    fn hash_then_verify() {
        let hasher = Hasher::new(SMALL);
        let stored = hasher.hash("Correct-Horse-9");
        assert!(stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify(Some(&stored), "Correct-Horse-9"),
            Verdict::Match {
                needs_rehash: false
            }
        );
        assert_eq!(hasher.verify(Some(&stored), "wrong"), Verdict::Mismatch);
        let django = format!("argon2{stored}");
        assert_eq!(
            hasher.verify(Some(&django), "Correct-Horse-9"),
            Verdict::Match {
                needs_rehash: false
            }
        );
        let stronger = Hasher::new(Argon2Config {
            m_kib: 128,
            ..SMALL
        });
        assert_eq!(
            stronger.verify(Some(&stored), "Correct-Horse-9"),
            Verdict::Match { needs_rehash: true }
        );
    }

    #[test]
    fn django_form_with_16_byte_output_verifies_and_needs_rehash() {
        let hasher = Hasher::new(SMALL);
        let mut out = [0u8; 16];
        hasher
            .compute(
                Algorithm::Argon2id,
                Version::V0x13,
                (512, 2, 2),
                b"password",
                b"somesaltsomesalt",
                &mut out,
            )
            .unwrap();
        let stored = format!(
            "argon2$argon2id$v=19$m=512,t=2,p=2${}${}",
            Base64Unpadded::encode_string(b"somesaltsomesalt"),
            Base64Unpadded::encode_string(&out)
        );
        assert_eq!(
            hasher.verify(Some(&stored), "password"),
            Verdict::Match { needs_rehash: true }
        );
    }

    #[test]
    fn reused_memory_gives_the_same_hash_as_fresh_memory() {
        let hasher = Hasher::new(SMALL);
        let argon2 = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, Some(32)).unwrap(),
        );
        let mut fresh = [0u8; 32];
        argon2
            .hash_password_into(b"pw", b"saltsaltsalt", &mut fresh)
            .unwrap();
        for _ in 0..2 {
            let mut reused = [0u8; 32];
            hasher
                .compute(
                    Algorithm::Argon2id,
                    Version::V0x13,
                    (64, 1, 1),
                    b"pw",
                    b"saltsaltsalt",
                    &mut reused,
                )
                .unwrap();
            assert_eq!(reused, fresh);
        }
    }

    #[test]
    fn unusable_and_hostile_hashes_never_match() {
        let hasher = Hasher::new(SMALL);
        for stored in [
            "",
            "!abc",
            "md5$salt$hash",
            "sha1$a$b",
            "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=42$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        ] {
            assert_eq!(
                hasher.verify(Some(stored), ""),
                Verdict::Mismatch,
                "{stored}"
            );
        }
        assert_eq!(hasher.verify(None, "x"), Verdict::Mismatch);
    }

    #[test]
    fn overlong_password_is_a_mismatch() {
        let hasher = Hasher::new(SMALL);
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let stored = hasher.hash(&long);
        assert_eq!(hasher.verify(Some(&stored), &long), Verdict::Mismatch);
    }
}
