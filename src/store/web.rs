//! The web sign-in's records (`schema.sql` migration 5): a user's TOTP key with its replay
//! guard, and the step a browser is at between its password and its code, which any
//! instance can take up (web.md §3).

/// A user's TOTP key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpDevice {
    /// Base32; never logged (hence no `Debug`).
    pub secret: String,
    /// The newest accepted step (epoch seconds / 30), if any: a code of it or of an older
    /// step is a replay.
    pub last_step: Option<i64>,
}

/// What a step token (kept only as its digest) stands for.
#[derive(Clone, PartialEq)]
pub struct LoginStep {
    pub user_id: i64,
    /// The username as typed at the password step: the rate-limit bucket of the codes.
    pub username: String,
    /// The stored hash the password step verified, and its upgrade if one is due.
    pub verified_hash: Option<String>,
    pub rehash: Option<String>,
    /// `None`: a code of the user's key. Some: a first code of this new key (base32), which
    /// then becomes theirs. Never logged.
    pub enrol_secret: Option<String>,
    /// Whether an accepted code finishes a sign-in (else a signed-in user enrols).
    pub finishes_login: bool,
    pub expires_at: f64,
}
