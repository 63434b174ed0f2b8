//! A user's TOTP key as stored (`schema.sql` migration 5), with its replay guard (web.md §4).

/// A user's TOTP key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpDevice {
    /// Base32; never logged (hence no `Debug`).
    pub secret: String,
    /// The newest accepted step (epoch seconds / 30), if any: a code of it or of an older
    /// step is a replay.
    pub last_step: Option<i64>,
}
