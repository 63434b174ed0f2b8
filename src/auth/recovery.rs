//! Recovery codes for the second factor (web.md §4.1): ten single-use codes, shown once and
//! kept as digests, each accepted once in place of a TOTP code. A user's first second factor
//! of any kind makes a set ([`after_first_factor`]); a new set ends the old one.

use crate::auth::Origin;
use crate::auth::token;
use crate::store::{AuditEntry, AuditEvent, Realm, Store, StoreResult, User};

/// Codes in a set.
pub const COUNT: usize = 10;
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// The largest multiple of 36 that fits in a byte: bytes at or above it are redrawn.
const ACCEPT_BELOW: u8 = 252;

/// One code: two groups of four lowercase letters and digits joined by a dash.
fn generate() -> String {
    let mut chars = Vec::with_capacity(8);
    while chars.len() < 8 {
        let buf = token::random_bytes::<16>();
        for &b in buf.iter().filter(|&&b| b < ACCEPT_BELOW) {
            if chars.len() < 8 {
                chars.push(char::from(ALPHABET[usize::from(b % 36)]));
            }
        }
    }
    let (first, second) = chars.split_at(4);
    format!(
        "{}-{}",
        first.iter().collect::<String>(),
        second.iter().collect::<String>()
    )
}

/// What was typed, as a recovery code would be stored: trimmed and lowercase; `None` when
/// it has not the shape of one (six digits are a TOTP code).
pub fn normalized(typed: &str) -> Option<String> {
    let code = typed.trim().to_ascii_lowercase();
    let shaped = code.len() == 9
        && code.bytes().enumerate().all(|(i, b)| match i {
            4 => b == b'-',
            _ => b.is_ascii_lowercase() || b.is_ascii_digit(),
        });
    shaped.then_some(code)
}

/// A code's digest: bound to its user, so equal codes of two users are two rows.
fn digest(user: &User, code: &str) -> String {
    token::digest(&format!("recovery code of user {}: {code}", user.id))
}

/// An audit row of `event` about `user` of `realm`, with `context`'s time and client: the
/// one shape of every audit row about a user's factors (here, `second_factor`, `passkeys`).
pub(crate) fn entry(
    context: &AuditEntry,
    event: AuditEvent,
    realm: &Realm,
    user: &User,
) -> AuditEntry {
    AuditEntry {
        realm_id: Some(realm.id),
        user_id: Some(user.id),
        ..context.with_event(event)
    }
}

/// A new set for the user, ending the old one; the codes, to be shown once.
pub fn new_set(
    store: &Store,
    realm: &Realm,
    user: &User,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<Vec<String>> {
    let codes: Vec<String> = (0..COUNT).map(|_| generate()).collect();
    let hashes: Vec<String> = codes.iter().map(|c| digest(user, c)).collect();
    let audit = AuditEntry {
        detail: Some(origin.detail().to_owned()),
        ..entry(context, AuditEvent::RecoveryCodesMade, realm, user)
    };
    store.replace_recovery_codes(user.id, &hashes, context.at, &audit)?;
    Ok(codes)
}

/// The one rule for every kind of factor (TOTP now, passkeys later): a user's first second
/// factor makes a set of codes. `had_factor` tells whether the user had one before this
/// enrolment; the new codes, if any, to be shown once.
pub fn after_first_factor(
    store: &Store,
    realm: &Realm,
    user: &User,
    had_factor: bool,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<Option<Vec<String>>> {
    if had_factor {
        return Ok(None);
    }
    new_set(store, realm, user, origin, context).map(Some)
}

/// Whether `typed` is one of the user's live codes; an accepted code dies at once, and its
/// use is audited.
pub fn use_code(
    store: &Store,
    realm: &Realm,
    user: &User,
    typed: &str,
    origin: Origin,
    context: &AuditEntry,
) -> StoreResult<bool> {
    let Some(code) = normalized(typed) else {
        return Ok(false);
    };
    if !store.take_recovery_code(user.id, &digest(user, &code))? {
        return Ok(false);
    }
    let left = store.recovery_codes_left(user.id)?;
    store.audit(&AuditEntry {
        detail: Some(format!("{}; {left} left", origin.detail())),
        ..entry(context, AuditEvent::RecoveryCodeUsed, realm, user)
    })?;
    Ok(true)
}

pub fn left(store: &Store, user: &User) -> StoreResult<i64> {
    store.recovery_codes_left(user.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::tests::setup;

    #[test]
    fn codes_have_the_shape_and_are_distinct() {
        let a = generate();
        assert_eq!(normalized(&a).as_deref(), Some(a.as_str()));
        assert_ne!(a, generate());
        assert_eq!(normalized(" 4F7Q-9K2M ").as_deref(), Some("4f7q-9k2m"));
        for bad in [
            "123456",
            "4f7q9k2m",
            "4f7q-9k2",
            "4f7q_9k2m",
            "4f7q-9k2m0",
            "éf7q-9k2m",
        ] {
            assert_eq!(normalized(bad), None, "{bad}");
        }
    }

    #[test]
    fn accepted_once_and_a_new_set_ends_the_old() {
        let (_dir, store, _, realm) = setup();
        let user = store.require_user(&realm, "iago@example.com").unwrap();
        let context = AuditEntry::new(AuditEvent::RecoveryCodesMade, Some(realm.id), Some(user.id));
        let first = after_first_factor(&store, &realm, &user, false, Origin::Web, &context)
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), COUNT);
        assert_eq!(
            after_first_factor(&store, &realm, &user, true, Origin::Web, &context).unwrap(),
            None
        );
        let used =
            |code: &str| use_code(&store, &realm, &user, code, Origin::Web, &context).unwrap();
        assert!(used(&first[0].to_uppercase()));
        assert!(!used(&first[0]));
        assert_eq!(left(&store, &user).unwrap(), 9);
        let second = new_set(&store, &realm, &user, Origin::Operator, &context).unwrap();
        assert!(!used(&first[1]));
        assert!(used(&second[1]));
        assert_eq!(left(&store, &user).unwrap(), 9);
    }
}
