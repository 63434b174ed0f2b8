//! A signed-in person turning a second factor on from the account page (web.md §4): an offer
//! of a new key, made only when they ask for one and kept in the store under their session,
//! so a session holds at most one (a new request replaces it) and a page merely viewed
//! stores nothing; then its first code, which turns the factor on and spends the offer. The
//! page asks for the password in the same form (`auth::account`), as for every change there.

use crate::auth::Origin;
use crate::auth::login::{Deferred, Method};
use crate::auth::recovery;
use crate::auth::second_factor;
use crate::auth::signin::stored_step;
use crate::auth::token;
use crate::auth::totp::Secret;
use crate::clock;
use crate::store::{AuditEntry, LoginStep, Realm, Store, StoreResult, User};

/// Why an offer's first code turned nothing on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferRefusal {
    /// Not a code of the offered key now: the same offer may be tried again.
    WrongCode,
    /// The session has no live offer (none made, spent, too old), or a factor is on since.
    Expired,
}

/// The store's key of the session's offer: derived from the session id, which only the
/// browser's cookie holds, so a session has one place for an offer and nobody else finds it.
fn offer_key(session_id: &str) -> String {
    token::digest(&format!("enrolment offer of session {session_id}"))
}

/// A new key offered to `user` in this session, replacing the session's older offer.
pub fn offer(store: &Store, session_id: &str, user: &User) -> StoreResult<Secret> {
    let key = offer_key(session_id);
    store.take_login_step(&key)?;
    let secret = Secret::generate();
    let deferred = Deferred {
        user_id: user.id,
        username: user.delivery_email.clone(),
        verified_hash: None,
        rehash: None,
        method: Method::Web,
    };
    let step = LoginStep {
        enrol_secret: Some(secret.to_base32()),
        ..stored_step(deferred, false)
    };
    store.create_login_step(&key, &step)?;
    Ok(secret)
}

/// The session's live offer to `user`, if there is one.
pub fn offered(store: &Store, session_id: &str, user: &User) -> StoreResult<Option<Secret>> {
    let found = store.login_step(&offer_key(session_id), clock::now())?;
    Ok(found
        .filter(|(step, owner)| owner.id == user.id && !step.finishes_login)
        .and_then(|(step, _)| step.enrol_secret)
        .and_then(|text| Secret::from_base32(&text)))
}

/// Turns the factor on with a first code of the session's offer, which is spent, and makes
/// the user's recovery codes (their first factor: web.md §4.1), answered to be shown once.
/// The caller has checked the password.
pub fn turn_on(
    store: &Store,
    realm: &Realm,
    user: &User,
    session_id: &str,
    code: &str,
    context: &AuditEntry,
) -> StoreResult<Result<Vec<String>, OfferRefusal>> {
    let Some(secret) = offered(store, session_id, user)? else {
        return Ok(Err(OfferRefusal::Expired));
    };
    let key = offer_key(session_id);
    // An offer stands only while the user has no factor: one turned on since (by the
    // operator, or a sign-in under --require-2fa) is never replaced.
    if second_factor::has_totp(store, user)? {
        store.take_login_step(&key)?;
        return Ok(Err(OfferRefusal::Expired));
    }
    let Some(first) = second_factor::check_first_code(&secret, code) else {
        return Ok(Err(OfferRefusal::WrongCode));
    };
    // Of two requests racing with one offer, only the one that takes it turns it on.
    if !store.take_login_step(&key)? {
        return Ok(Err(OfferRefusal::Expired));
    }
    // A passkey is a factor too: its recovery codes stay.
    let had_factor = second_factor::is_enrolled(store, user)?;
    second_factor::enrol(
        store,
        realm,
        user,
        &secret,
        Some(first),
        Origin::Web,
        context,
    )?;
    let codes = recovery::after_first_factor(store, realm, user, had_factor, Origin::Web, context)?;
    Ok(Ok(codes.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::login::tests::setup;
    use crate::store::AuditEvent;

    #[test]
    fn a_session_holds_one_offer_and_its_first_code_turns_it_on_once() {
        let (_dir, store, _, realm) = setup();
        let user = store.require_user(&realm, "iago@example.com").unwrap();
        let audit = AuditEntry::new(AuditEvent::TotpEnrolled, Some(realm.id), Some(user.id));
        let now = clock::now() as u64;
        assert!(offered(&store, "session", &user).unwrap().is_none());
        let older = offer(&store, "session", &user).unwrap();
        let newer = offer(&store, "session", &user).unwrap();
        assert_ne!(older, newer);
        assert_eq!(
            offered(&store, "session", &user).unwrap(),
            Some(newer.clone())
        );
        assert!(offered(&store, "another session", &user).unwrap().is_none());
        let turn_on = |secret: &Secret| {
            let code = secret.code_at(now);
            turn_on(&store, &realm, &user, "session", &code, &audit).unwrap()
        };
        assert_eq!(turn_on(&older), Err(OfferRefusal::WrongCode));
        assert!(!second_factor::is_enrolled(&store, &user).unwrap());
        let codes = turn_on(&newer).unwrap();
        assert_eq!(codes.len(), recovery::COUNT);
        assert_eq!(recovery::left(&store, &user).unwrap(), 10);
        assert!(second_factor::is_enrolled(&store, &user).unwrap());
        assert_eq!(turn_on(&newer), Err(OfferRefusal::Expired));
    }
}
