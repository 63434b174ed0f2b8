//! A user's passkeys over the store (web.md §9): the relying party a realm offers, enrolling
//! (with the recovery codes of a first factor), listing and removing, and the checks of the
//! sign-in's passkey steps, each audited. The ceremonies themselves are `auth::passkey`'s;
//! the sign-in's steps that use these are `auth::signin`'s.

use std::net::IpAddr;

use crate::auth::Origin;
use crate::auth::passkey::{
    Assertion, Ceremony, CredentialRecord, Error, RelyingParty, Started, StoredPasskey,
    Unavailable, Used,
};
use crate::auth::ratelimit;
use crate::auth::recovery::{self, entry};
use crate::auth::second_factor;
use crate::auth::token;
use crate::clock;
use crate::site::Site;
use crate::store::{AuditEntry, AuditEvent, Bucket, Realm, Rule, Store, StoreResult, User};
use crate::text;

/// A browser's answer to a ceremony: the id it was given, and the credential as JSON.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub ceremony: &'a str,
    pub credential: &'a str,
}

/// A passkey's name when the user gave none.
const DEFAULT_NAME: &str = "Passkey";

/// The relying party of `realm`: none without an external URL that can be one, nor where
/// the realm turned passkeys off.
pub fn relying_party(site: &Site, realm: &Realm) -> Result<RelyingParty, Unavailable> {
    if !realm.passkeys {
        return Err(Unavailable::TurnedOff);
    }
    RelyingParty::for_realm(site, realm.id, &realm.subdomain, &realm.name)
}

/// How many active users of the realm a change from `before` to `after` leaves without a
/// second factor the sign-in asks for: those whose only factor is a passkey, when the change
/// turns passkeys off (web.md §9). The operator is warned.
pub fn users_stranded(store: &Store, before: &Realm, after: &Realm) -> StoreResult<i64> {
    if before.passkeys && !after.passkeys {
        store.users_with_only_passkeys(after.id)
    } else {
        Ok(0)
    }
}

/// The user's passkeys, oldest first.
pub fn list(store: &Store, user: &User) -> StoreResult<Vec<StoredPasskey>> {
    store.passkeys(user.id)
}

/// How many ceremonies a client address may begin: each is a row for 5 minutes, and a
/// sign-in without a username is begun by anyone (web.md §9).
const CEREMONIES_PER_ADDRESS: Rule = Rule {
    limit: 60,
    window: 300.0,
};

/// A begun ceremony kept in the store, if the client's address has room for one; its
/// options for the browser.
fn keep(
    store: &Store,
    client: Option<IpAddr>,
    started: Result<Started, Error>,
) -> StoreResult<Result<String, Error>> {
    let started = match started {
        Ok(started) => started,
        Err(error) => return Ok(Err(error)),
    };
    let bucket = Bucket {
        key: format!("passkey-{}", ratelimit::address_key(client)),
        rule: CEREMONIES_PER_ADDRESS,
    };
    if store.count_if_room(&[bucket], clock::now())?.is_some() {
        return Ok(Err(Error::TooManyCeremonies));
    }
    store.begin_ceremony(&started.ceremony)?;
    Ok(Ok(started.options))
}

/// The ceremony the browser names by `id`, taken from the store: `None` for an id that is
/// none of ours, never begun, or finished already.
fn take(store: &Store, id: &str) -> StoreResult<Option<Ceremony>> {
    if !token::is_well_formed(id) {
        return Ok(None);
    }
    store.take_ceremony(&token::digest(id))
}

fn records(passkeys: Vec<StoredPasskey>) -> Vec<CredentialRecord> {
    passkeys.into_iter().map(|stored| stored.record).collect()
}

/// Begins registering a passkey for `user`, who has confirmed who they are.
pub fn start_enrolment(
    store: &Store,
    rp: &RelyingParty,
    user: &User,
    client: Option<IpAddr>,
) -> StoreResult<Result<String, Error>> {
    let existing = records(list(store, user)?);
    let started = rp.start_registration(
        user.id,
        &user.delivery_email,
        &user.full_name,
        &existing,
        clock::now(),
    );
    keep(store, client, started)
}

/// Finishes registering the passkey the browser answered for the ceremony,
/// named `name` (cleaned; a default if empty), audited as `passkey_added`. A user's first
/// second factor makes their recovery codes (web.md §4.1), answered to be shown once.
pub fn finish_enrolment(
    store: &Store,
    rp: &RelyingParty,
    realm: &Realm,
    user: &User,
    answer: Answer<'_>,
    name: &str,
    context: &AuditEntry,
) -> StoreResult<Result<Option<Vec<String>>, Error>> {
    let taken = take(store, answer.ceremony)?;
    let name = text::stored_name(name, text::MAX_NAME).unwrap_or_else(|| DEFAULT_NAME.into());
    let record =
        match rp.finish_registration(taken, user.id, answer.credential, &name, clock::now()) {
            Ok(record) => record,
            Err(error) => return Ok(Err(error)),
        };
    let had_factor = second_factor::is_enrolled(store, user)?;
    // No name in the trail: it outlives the account (as UserChanges::describe).
    let audit = entry(context, AuditEvent::PasskeyAdded, realm, user);
    if !store.add_passkey(user.id, &record, &audit)? {
        return Ok(Err(Error::AlreadyRegistered));
    }
    let codes = recovery::after_first_factor(store, realm, user, had_factor, Origin::Web, context)?;
    Ok(Ok(codes))
}

/// Removes the user's passkey `id`, audited as `passkey_removed`; false if they have none
/// such.
pub fn remove(
    store: &Store,
    realm: &Realm,
    user: &User,
    id: i64,
    context: &AuditEntry,
) -> StoreResult<bool> {
    let audit = AuditEntry {
        detail: Some(format!(
            "passkey {id}: {}",
            context.detail.as_deref().unwrap_or("")
        )),
        ..entry(context, AuditEvent::PasskeyRemoved, realm, user)
    };
    store.remove_passkey(user.id, id, &audit)
}

/// Begins asking `user`, past their password, for one of their passkeys.
pub fn start_second_factor(
    store: &Store,
    rp: &RelyingParty,
    user: &User,
    client: Option<IpAddr>,
) -> StoreResult<Result<String, Error>> {
    let credentials = records(list(store, user)?);
    let started = rp.start_second_factor(user.id, &credentials, clock::now());
    keep(store, client, started)
}

/// Whether the browser's answer to the ceremony is one of `user`'s passkeys,
/// now: used ([`accept_use`]); a counter that did not move is audited as `passkey_cloned`.
pub fn check_second_factor(
    store: &Store,
    rp: &RelyingParty,
    realm: &Realm,
    user: &User,
    answer: Answer<'_>,
    context: &AuditEntry,
) -> StoreResult<Result<(), Error>> {
    let taken = take(store, answer.ceremony)?;
    let assertion = match Assertion::parse(answer.credential) {
        Ok(assertion) => assertion,
        Err(error) => return Ok(Err(error)),
    };
    let credentials = records(list(store, user)?);
    let used = rp.finish_second_factor(taken, user.id, &assertion, &credentials, clock::now());
    match unless_cloned(store, realm, user, used, context)? {
        Ok(used) => accept_use(store, realm, user, &used, context),
        Err(error) => Ok(Err(error)),
    }
}

/// Begins a sign-in without a username.
pub fn start_password_free(
    store: &Store,
    rp: &RelyingParty,
    client: Option<IpAddr>,
) -> StoreResult<Result<String, Error>> {
    keep(store, client, rp.start_password_free(clock::now()))
}

/// The owner of the passkey that answered the ceremony, if it signs them in by
/// itself: verified by the authenticator (UV), so both factors (web.md §9), with the use
/// that [`accept_use`] records once the login is accepted (the owner active, the address
/// admitted): nothing is recorded here but a clone, audited.
pub fn check_password_free(
    store: &Store,
    rp: &RelyingParty,
    realm: &Realm,
    answer: Answer<'_>,
    context: &AuditEntry,
) -> StoreResult<Result<(User, Used), Error>> {
    let taken = take(store, answer.ceremony)?;
    let assertion = match Assertion::parse(answer.credential) {
        Ok(assertion) => assertion,
        Err(error) => return Ok(Err(error)),
    };
    let Some((stored, owner)) = store.passkey_owner(realm.id, &assertion.credential_id())? else {
        // The ceremony is spent all the same.
        return Ok(Err(Error::UnknownCredential));
    };
    let used = rp
        .finish_password_free(taken, &assertion, Some(&stored.record), clock::now())
        .and_then(|used| match used.counts_as_two_factors() {
            true => Ok(used),
            false => Err(Error::NotVerified),
        });
    Ok(unless_cloned(store, realm, &owner, used, context)?.map(|used| (owner, used)))
}

/// A verified assertion, or a clone audited.
fn unless_cloned(
    store: &Store,
    realm: &Realm,
    user: &User,
    used: Result<Used, Error>,
    context: &AuditEntry,
) -> StoreResult<Result<Used, Error>> {
    if let Err(Error::ClonedAuthenticator) = used {
        audit_clone(store, realm, user, context)?;
    }
    Ok(used)
}

fn audit_clone(store: &Store, realm: &Realm, user: &User, context: &AuditEntry) -> StoreResult<()> {
    store.audit(&AuditEntry {
        reason: Some(Error::ClonedAuthenticator.reason().to_owned()),
        ..entry(context, AuditEvent::PasskeyCloned, realm, user)
    })
}

/// A verified assertion of `user`'s accepted: written back (last use, counter) only while
/// its counter still moves forward, in one statement, and audited as `passkey_used`. Of two
/// requests with the same counter (a cloned authenticator racing), one is accepted; the
/// other is the clone, audited as `passkey_cloned`.
pub fn accept_use(
    store: &Store,
    realm: &Realm,
    user: &User,
    used: &Used,
    context: &AuditEntry,
) -> StoreResult<Result<(), Error>> {
    if !store.use_passkey(used)? {
        audit_clone(store, realm, user, context)?;
        return Ok(Err(Error::ClonedAuthenticator));
    }
    store.audit(&entry(context, AuditEvent::PasskeyUsed, realm, user))?;
    Ok(Ok(()))
}
