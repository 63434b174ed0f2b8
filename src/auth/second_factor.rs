//! A user's second factor as the rest of the program sees it: enrolling, checking a code
//! (once: the replay guard lives in the store, so instances agree) and removing it, each
//! audited with where it came from (web.md §4).

use crate::auth::Origin;
use crate::auth::recovery;
use crate::auth::totp::Secret;
use crate::clock;
use crate::store::{AuditEntry, AuditEvent, Realm, Store, StoreResult, User};

/// The issuer an authenticator app shows above the code: the realm's name.
pub fn issuer(realm: &Realm) -> &str {
    &realm.name
}

/// Whether the user has a second factor of any kind: a TOTP key or a passkey (web.md §9).
pub fn is_enrolled(store: &Store, user: &User) -> StoreResult<bool> {
    Ok(for_sign_in(store, user, true)?.any())
}

/// The second factors a sign-in can ask a user for.
pub struct Factors {
    pub totp: bool,
    pub passkey: bool,
}

impl Factors {
    pub fn any(&self) -> bool {
        self.totp || self.passkey
    }
}

/// The user's second factors that a sign-in can ask for, where the realm offers passkeys or
/// not (`passkeys_offered`): a factor the realm does not offer does not count, so a user
/// whose only factor is a passkey is not sent to a step they cannot pass (web.md §9).
pub fn for_sign_in(store: &Store, user: &User, passkeys_offered: bool) -> StoreResult<Factors> {
    Ok(Factors {
        totp: has_totp(store, user)?,
        passkey: passkeys_offered && !store.passkeys(user.id)?.is_empty(),
    })
}

/// Whether the user has a TOTP key.
pub fn has_totp(store: &Store, user: &User) -> StoreResult<bool> {
    Ok(store.totp_device(user.id)?.is_some())
}

/// An audit row about `user`'s second factor: `context` gives the client, if any.
fn entry(
    context: &AuditEntry,
    event: AuditEvent,
    realm: &Realm,
    user: &User,
    origin: Origin,
) -> AuditEntry {
    AuditEntry {
        detail: Some(origin.detail().to_owned()),
        ..recovery::entry(context, event, realm, user)
    }
}

/// Makes `secret` the user's key, active at once. `first_step` is the step of the code that
/// confirmed it, which may not be used again.
pub fn enrol(
    store: &Store,
    realm: &Realm,
    user: &User,
    secret: &Secret,
    first_step: Option<u64>,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<()> {
    let audit = entry(context, AuditEvent::TotpEnrolled, realm, user, origin);
    store.set_totp_device(
        user.id,
        &secret.to_base32(),
        first_step.map(step_to_i64),
        &audit,
    )
}

/// Removes the user's key; false if they had none.
pub fn remove(
    store: &Store,
    realm: &Realm,
    user: &User,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<bool> {
    let audit = entry(context, AuditEvent::TotpRemoved, realm, user, origin);
    store.delete_totp_device(user.id, &audit)
}

/// Whether `code` is right for the user's key now and not used before, or is one of their
/// recovery codes; an accepted code is used up at once, and audited.
pub fn check_code(
    store: &Store,
    realm: &Realm,
    user: &User,
    code: &str,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<bool> {
    // The same field takes six digits or a recovery code (web.md §4.1).
    if recovery::normalized(code).is_some() {
        return recovery::use_code(store, realm, user, code, origin, context);
    }
    let Some(device) = store.totp_device(user.id)? else {
        return Ok(false);
    };
    let Some(secret) = Secret::from_base32(&device.secret) else {
        log::error!("user {} has an unreadable TOTP key", user.id);
        return Ok(false);
    };
    let last = device.last_step.and_then(|s| u64::try_from(s).ok());
    let Some(step) = secret.accepts(code, now_seconds(), last) else {
        return Ok(false);
    };
    if !store.accept_totp_step(user.id, step_to_i64(step))? {
        // Another request accepted this step first.
        return Ok(false);
    }
    store.audit(&entry(context, AuditEvent::TotpUsed, realm, user, origin))?;
    Ok(true)
}

/// The step a first code of a new key matched, if it is right now.
pub fn check_first_code(secret: &Secret, code: &str) -> Option<u64> {
    secret.accepts(code, now_seconds(), None)
}

fn now_seconds() -> u64 {
    // Epoch seconds fit in u64, and the fraction does not matter for 30 s steps.
    clock::now().max(0.0) as u64
}

fn step_to_i64(step: u64) -> i64 {
    i64::try_from(step).unwrap_or(i64::MAX)
}
