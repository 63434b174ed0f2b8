//! The reset desk. A reset request is answered at once with the same page whatever the
//! address, and handed here: one thread, with its own store connection, looks the address up,
//! makes the link and sends the message. No answer waits on that lookup or on the relay, so
//! its timing tells nothing about accounts (web.md §6). A failure is logged, never shown.
//!
//! The same thread sends the mail for every new login (web.md §8.1), after the answer, so a
//! login never waits on the relay nor fails with it. A login's outcome carries its notices
//! as plain values, and the page or endpoint that answers it posts them here ([`post`]).

use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use log::{error, info, warn};
use maud::{DOCTYPE, html};

use crate::auth::devices;
use crate::auth::notice::{self, Folding, LoginNotice, Told};
use crate::auth::reset;
use crate::clock;
use crate::error::Error;
use crate::mail::{Mail, Postman};
use crate::store::{Database, Realm, Store, StoreResult, User};

/// Requests waiting for the desk. Beyond this the request is dropped and logged: the limits
/// per address and per email already bound what one client can queue.
const QUEUE: usize = 256;

/// One reset request, as the page received it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetRequest {
    pub realm_id: i64,
    /// The realm's URL as the person reached it, for the link.
    pub realm_url: String,
    pub email: String,
    pub client: Option<IpAddr>,
    /// Epoch seconds.
    pub at: f64,
}

/// What the desk's thread is handed.
#[derive(Debug, Clone, PartialEq)]
enum Job {
    Reset(ResetRequest),
    Notice(LoginNotice),
}

/// Where pages hand reset requests, and logins their notices.
#[derive(Debug, Clone)]
pub struct ResetDesk {
    queue: SyncSender<Job>,
}

impl ResetDesk {
    /// Starts the desk's thread on its own connection to `db`.
    pub fn start(db: &Database, postman: Postman, lifetime: Duration) -> Result<ResetDesk, Error> {
        let store = Store::open_for_requests(db)?;
        let (queue, requests) = mpsc::sync_channel(QUEUE);
        thread::Builder::new()
            .name("reset-desk".into())
            .spawn(move || serve(&store, &postman, lifetime, &requests))
            .map_err(|e| Error::Io("cannot start the reset-mail thread".into(), e))?;
        Ok(ResetDesk { queue })
    }

    pub fn submit(&self, request: ResetRequest) {
        self.hand(Job::Reset(request), "reset request");
    }

    fn hand(&self, job: Job, what: &str) {
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => warn!("{what} dropped: {QUEUE} already queued"),
            Err(TrySendError::Disconnected(_)) => warn!("{what} dropped: the desk stopped"),
        }
    }
}

/// Posts a login's notices, after its answer, when mail is set up (`desk`); without mail
/// they are dropped.
pub fn post(desk: Option<&ResetDesk>, notices: Vec<LoginNotice>) {
    if let Some(desk) = desk {
        for notice in notices {
            let what = match notice.told {
                Told::Login => "login mail",
                Told::RecoveryCode => "recovery code mail",
            };
            desk.hand(Job::Notice(notice), what);
        }
    }
}

/// How long after its request the desk starts on it: by then the answer is on its way, so
/// the desk's lookup and writes do not share the cores and the write lock with it.
const START_AFTER: f64 = 0.2;

fn serve(store: &Store, postman: &Postman, lifetime: Duration, jobs: &Receiver<Job>) {
    let mut folding = Folding::default();
    for job in jobs {
        let at = match &job {
            Job::Reset(request) => request.at,
            Job::Notice(login) => login.at,
        };
        let wait = at + START_AFTER - clock::now();
        if wait > 0.0 {
            thread::sleep(Duration::from_secs_f64(wait.min(START_AFTER)));
        }
        // A bug in one job must not stop the desk for every later one.
        let done = catch_unwind(AssertUnwindSafe(|| match &job {
            Job::Reset(request) => handle(store, postman, lifetime, request),
            Job::Notice(login) => match login.told {
                Told::Login => mail_login(store, postman, &mut folding, login),
                Told::RecoveryCode => mail_recovery(store, postman, login),
            },
        }));
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("mail job not handled: {e}"),
            Err(_) => error!("mail job panicked"),
        }
    }
}

/// The realm and user a notice is about, as they are now.
fn noticed(store: &Store, login: &LoginNotice) -> StoreResult<Option<(Realm, User)>> {
    let Some(realm) = store.realm_by_id(login.realm_id)? else {
        return Ok(None);
    };
    // The same account still: not one made since under the address of a deleted one.
    let user = store
        .user_by_email(realm.id, &login.email)?
        .filter(|user| user.id == login.user_id);
    Ok(user.map(|user| (realm, user)))
}

fn send(postman: &Postman, mail: &Mail, what: &str, user: &User) {
    match postman.send(mail) {
        Ok(()) => info!("{what} sent to user {}", user.id),
        Err(e) => warn!("{what} to user {} not sent: {e}", user.id),
    }
}

/// web.md §8.1: the login's user is mailed unless the rules say otherwise.
fn mail_login(
    store: &Store,
    postman: &Postman,
    folding: &mut Folding,
    login: &LoginNotice,
) -> StoreResult<()> {
    let Some((realm, user)) = noticed(store, login)? else {
        return Ok(());
    };
    if notice::due(&realm, &user, store.login_mail_off(user.id)?, login) && !folding.folds(login) {
        send(
            postman,
            &login_mail(&realm, &user, login),
            "login mail",
            &user,
        );
    }
    Ok(())
}

/// web.md §4.1: a recovery code's use, always told.
fn mail_recovery(store: &Store, postman: &Postman, login: &LoginNotice) -> StoreResult<()> {
    let Some((realm, user)) = noticed(store, login)? else {
        return Ok(());
    };
    let left = store.recovery_codes_left(user.id)?;
    let mut mail = login_mail(&realm, &user, login);
    mail.subject = format!(
        "A recovery code was used for your Zulip account in {}",
        realm.name
    );
    let used = format!(
        "A recovery code was used in place of your authenticator's code; {left} of your codes \
         are left. If you lost your authenticator, make a new set of codes on your account page."
    );
    mail.text = format!("{used}\n\n{}", mail.text);
    mail.html = mail
        .html
        .replacen("<body>", &format!("<body><p>{used}</p>"), 1);
    send(postman, &mail, "recovery code mail", &user);
    Ok(())
}

/// web.md §8.1's message: the organization, when (UTC), how, from which device and address.
pub fn login_mail(realm: &Realm, user: &User, login: &LoginNotice) -> Mail {
    let when = format!(
        "{} UTC",
        clock::iso8601(login.at)
            .trim_end_matches('Z')
            .replace('T', " ")
    );
    let device = devices::device_name(login.user_agent.as_deref());
    let whence = login
        .client
        .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    let facts = [
        ("Organization", realm.name.as_str()),
        ("Account", user.delivery_email.as_str()),
        ("Time", when.as_str()),
        ("Method", login.method),
        ("Device", device.as_str()),
        ("Address", whence.as_str()),
    ];
    let mut text = format!(
        "A new login to your Zulip account {} in {}.\n\n",
        user.delivery_email, realm.name
    );
    for (label, value) in facts {
        text.push_str(&format!("{label}: {value}\n"));
    }
    text.push_str(
        "\nIf this was you, there is nothing to do. If not, change your password and sign out \
         every device on your account page.\n",
    );
    let html = html! {
        (DOCTYPE)
        html {
            body {
                p { "A new login to your Zulip account " b { (user.delivery_email) } " in " (realm.name) "." }
                ul { @for (label, value) in facts { li { (label) ": " (value) } } }
                p {
                    "If this was you, there is nothing to do. If not, change your password and "
                    "sign out every device on your account page."
                }
            }
        }
    }
    .into_string();
    Mail {
        to: user.delivery_email.clone(),
        subject: format!("A new login to your Zulip account in {}", realm.name),
        text,
        html,
    }
}

fn handle(
    store: &Store,
    postman: &Postman,
    lifetime: Duration,
    request: &ResetRequest,
) -> StoreResult<()> {
    let Some(realm) = store.realm_by_id(request.realm_id)? else {
        return Ok(());
    };
    let Some(user) = store.user_by_email(realm.id, &request.email)? else {
        info!("password reset requested for an address without an account; nothing sent");
        return Ok(());
    };
    if let Err(why) = reset::eligibility(&realm, &user) {
        info!(
            "password reset requested for user {}, but {why}; nothing sent",
            user.id
        );
        return Ok(());
    }
    let token = reset::issue(store, &user, clock::now(), lifetime)?;
    let link = format!("{}{}", request.realm_url, reset::path(&token));
    match postman.send(&reset_mail(&realm, &user, request, &link, lifetime)) {
        Ok(()) => info!("password reset link sent to user {}", user.id),
        Err(e) => warn!("password reset mail to user {} not sent: {e}", user.id),
    }
    Ok(())
}

/// web.md §6's message: the realm, the address, when and whence, the link, and what to do if
/// the person did not ask.
pub fn reset_mail(
    realm: &Realm,
    user: &User,
    request: &ResetRequest,
    link: &str,
    lifetime: Duration,
) -> Mail {
    let when = clock::iso8601(request.at);
    let whence = request
        .client
        .map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string());
    let valid = in_words(lifetime);
    let text = format!(
        "Somebody (possibly you) requested a new password for the Zulip account {email} on {url}.\n\
         \n\
         The request came from {whence} at {when}.\n\
         \n\
         To set a new password, open this link within {valid}. It works once:\n\
         {link}\n\
         \n\
         If you do not recognize this activity, you can safely ignore this email.\n",
        email = user.delivery_email,
        url = request.realm_url,
    );
    let email = &user.delivery_email;
    let url = &request.realm_url;
    let html = html! {
        (DOCTYPE)
        html {
            body {
                p {
                    "Somebody (possibly you) requested a new password for the Zulip account "
                    b { (email) } " on " a href=(url) { (url) } "."
                }
                p { "The request came from " (whence) " at " (when) "." }
                p {
                    "To set a new password, open this link within " (valid) ". It works once:"
                    br;
                    a href=(link) { (link) }
                }
                p { "If you do not recognize this activity, you can safely ignore this email." }
            }
        }
    }
    .into_string();
    Mail {
        to: user.delivery_email.clone(),
        subject: format!("Password reset request for {}", realm.name),
        text,
        html,
    }
}

/// `1 hour`, `30 minutes`, `90 seconds`.
fn in_words(lifetime: Duration) -> String {
    let seconds = lifetime.as_secs();
    let (n, unit) = if seconds.is_multiple_of(3600) {
        (seconds / 3600, "hour")
    } else if seconds.is_multiple_of(60) {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_in_words() {
        assert_eq!(in_words(Duration::from_secs(3600)), "1 hour");
        assert_eq!(in_words(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(in_words(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(in_words(Duration::from_secs(1)), "1 second");
    }
}
