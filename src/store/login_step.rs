//! The step a browser is at between its password and its code (`schema.sql` migration 5),
//! which any instance can take up (web.md §3).

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
    /// The method word of the sign-in's first step (`web`, `oidc`).
    pub method: String,
}
