//! Passkeys as the store keeps them (`schema.sql` migration 11, web.md §9): a user's
//! credentials and the ceremonies between their two requests. Plain data; `auth::passkey`
//! makes and reads the webauthn-rs values inside.

/// What the store keeps between a ceremony's two requests, under the digest of the id the
/// browser holds: taken (read and deleted at once) when the answer comes, so a ceremony is
/// finished at most once; pruned after `expires_at`. Any instance can finish a ceremony
/// another began.
#[derive(Debug, Clone, PartialEq)]
pub struct Ceremony {
    /// SHA-256 of the id handed to the browser (`auth::token::digest`).
    pub id_digest: String,
    /// Serialised by `auth::passkey`; opaque to the store.
    pub state: String,
    pub expires_at: f64,
}

/// A registered passkey. `passkey` is webauthn-rs' own serialised form (public key, flags,
/// its copy of the counter); `counter` is the highest signature counter accepted so far,
/// which the store compares and sets atomically with [`Used`]'s (see there).
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialRecord {
    /// The credential id, base64url without padding: unique across the server.
    pub credential_id: String,
    /// The user handle the authenticator keeps (a UUID): the same for all of a user's
    /// passkeys.
    pub user_handle: String,
    pub passkey: String,
    /// Chosen by the user.
    pub name: String,
    pub created: f64,
    pub last_used: Option<f64>,
    pub counter: u32,
}

/// A passkey of a user's as listed: the row's id (what `user passkey remove` and the
/// account page name it by) and the record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPasskey {
    pub id: i64,
    pub user_id: i64,
    pub record: CredentialRecord,
}

/// A passkey that signed in: what the store writes back (`last_used`, `counter`, the
/// updated `passkey`). The store writes it only while the stored counter is still below
/// `counter` (or both are 0: an authenticator without a counter), so two instances
/// finishing at once cannot set it backwards; a write that matches nothing is the same
/// clone, seen late.
#[derive(Debug, Clone, PartialEq)]
pub struct Used {
    pub credential_id: String,
    pub counter: u32,
    pub passkey: String,
    pub at: f64,
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
}
