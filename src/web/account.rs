//! The account page (web.md §7) and the browser session behind it: who is signed in, their
//! API key and `zuliprc` after the password is entered again, a new key, a new password,
//! the second factor on and off (web.md §4), and signing out. Every form posts the CSRF
//! token; every change asks for the password in the same form, which counts against the
//! per-username limit as a login does. Only asking for a new second factor's key does not,
//! and stores at most one offer per session.

use maud::{Markup, html};

use crate::auth::Origin;
use crate::auth::account::{self, PasswordRefusal};
use crate::auth::enrolment::{self, OfferRefusal};
use crate::auth::passkey::{StoredPasskey, Unavailable};
use crate::auth::passkeys;
use crate::auth::recovery;
use crate::auth::second_factor;
use crate::auth::totp::Secret;
use crate::auth::{devices, key, session};
use crate::clock;
use crate::error::ApiError;
use crate::http::{LogContext, Request, Response};
use crate::store::{
    AuditEntry, AuditEvent, IdentityProvider, Realm, Store, StoreError, StoreResult, User,
};
use crate::text;
use crate::web::Context;
use crate::web::cookie::{self, SameSite};
use crate::web::csrf::{self, Csrf};
use crate::web::form::Form;
use crate::web::oidc;
use crate::web::page::{self, Banner, NO_REALM, Refusal, hidden, layout, password_field};
use crate::web::passkey;
use crate::web::paths;
use crate::web::totp;

const ON_THE_PAGE: &str = "by the user, on the account page";
const ALREADY_REVOKED: &str = "That key was already revoked.";
const PASSKEY_GONE: &str = "That passkey was already removed.";
const OFFER_EXPIRED: &str =
    "That key is no longer on offer. Set up two-factor authentication again for a new one.";

/// What signing in on the login page ends with, without the app's pad: a new session and
/// the account page.
pub fn sign_in(ctx: &Context<'_>, user: &User, realm_url: &str) -> Result<Response, Refusal> {
    let cookie = session_cookie(ctx, user, realm_url)?;
    Ok(page::redirect(paths::SETTINGS.to_owned()).header("Set-Cookie", cookie))
}

/// The same end after a redirect from another site (an identity provider's, web.md §10.2):
/// a browser sends no SameSite=Strict cookie along a cross-site redirect, so the session is
/// handed over on a page that moves on to the account page by itself, a same-site step.
pub fn sign_in_across_sites(
    ctx: &Context<'_>,
    user: &User,
    realm_url: &str,
) -> Result<Response, Refusal> {
    let cookie = session_cookie(ctx, user, realm_url)?;
    let markup = page::layout(
        None,
        "Signed in",
        html! {
            p { "You are signed in." }
            a.button href=(paths::SETTINGS) { "Continue to your account" }
        },
    );
    Ok(page::html(200, markup)
        .header("Refresh", format!("0; url={}", paths::SETTINGS))
        .header("Set-Cookie", cookie))
}

/// A new session for `user`, as the `Set-Cookie` value that hands it to the browser.
fn session_cookie(ctx: &Context<'_>, user: &User, realm_url: &str) -> StoreResult<String> {
    let id = session::start(ctx.store, user, clock::now())?;
    Ok(cookie::set(
        session::COOKIE,
        &id,
        Some(ctx.sessions.lifetime as u64),
        SameSite::Strict,
        cookie::is_secure(realm_url),
    ))
}

/// The person signed in on this browser.
struct SignedIn {
    user: User,
    realm: Realm,
    realm_url: String,
    session_id: String,
    /// What the forms ask for to re-confirm a change (web.md §10.5).
    reconfirm_by: Reconfirm,
}

/// How a signed-in person re-confirms a change (web.md §10.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconfirm {
    Password,
    /// No password: a recent sign-in, or a code of their TOTP key.
    SignInOrCode,
    /// No password and no TOTP key: a recent sign-in.
    SignIn,
}

impl Reconfirm {
    fn of(store: &Store, realm: &Realm, user: &User) -> StoreResult<Reconfirm> {
        Ok(if account::has_password(realm, user) {
            Reconfirm::Password
        } else if second_factor::has_totp(store, user)? {
            Reconfirm::SignInOrCode
        } else {
            Reconfirm::SignIn
        })
    }

    /// The field that re-confirms a change: the password; for a user without one, an
    /// optional code (a recent sign-in needs none), or nothing.
    fn field(self, id: &str, name: &str, label: &str, autocomplete: &str) -> Markup {
        match self {
            Reconfirm::Password => password_field(id, name, label, autocomplete),
            Reconfirm::SignInOrCode => html! {
                label for=(id) { "Code from your authenticator app, unless you signed in just now" }
                input type="text" id=(id) name=(name) inputmode="numeric" autocomplete="one-time-code"
                    autocapitalize="none" spellcheck="false";
            },
            Reconfirm::SignIn => html! {},
        }
    }
}

/// Answers the account page and its forms.
pub fn serve(ctx: &Context<'_>, request: &Request, log: &mut LogContext) -> Response {
    // The page is read; its forms post to the other paths. A destructive action's path
    // shows its confirmation on GET.
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    let post = request.method == "POST";
    let refused = match request.path.as_str() {
        paths::SETTINGS => (!get).then(|| page::method_not_allowed(false)),
        paths::LOGOUT
        | paths::REGENERATE
        | paths::DEVICE_SIGN_OUT
        | paths::SIGN_OUT_EVERYWHERE
        | paths::PASSKEY_REMOVE => (!get && !post).then(|| page::method_not_allowed(true)),
        _ => (!post)
            .then(|| page::plain(405, "This page answers POST only.").header("Allow", "POST")),
    };
    if let Some(refused) = refused {
        return refused;
    }
    respond(ctx, request, log).unwrap_or_else(Refusal::page)
}

fn respond(
    ctx: &Context<'_>,
    request: &Request,
    log: &mut LogContext,
) -> Result<Response, Refusal> {
    let (realm, realm_url) = ctx.realm(request, log)?.ok_or(NO_REALM)?;
    let form = match request.method.as_str() {
        "POST" => {
            let form = Form::from_body(request)?;
            Csrf::check(request, &form)?;
            Some(form)
        }
        _ => None,
    };
    let live = match cookie::get(request, session::COOKIE) {
        Some(id) => session::current(ctx.store, id, clock::now(), ctx.sessions)?
            .filter(|(_, session_realm)| session_realm.id == realm.id)
            .map(|(user, _)| (user, id.to_owned())),
        None => None,
    };
    let Some((user, session_id)) = live else {
        return Ok(page::redirect(paths::LOGIN.to_owned()));
    };
    log.user_id = Some(user.id);
    let reconfirm_by = Reconfirm::of(ctx.store, &realm, &user)?;
    let who = SignedIn {
        user,
        realm,
        realm_url,
        session_id,
        reconfirm_by,
    };
    let view = View {
        ctx,
        request,
        who: &who,
    };
    let Some(form) = form else {
        return match request.path.as_str() {
            paths::LOGOUT => Ok(view.confirm_sign_out()),
            paths::REGENERATE => Ok(view.confirm_new_key(None)),
            paths::DEVICE_SIGN_OUT => view.confirm_device_sign_out(&Form::from_query(request)?),
            paths::SIGN_OUT_EVERYWHERE => Ok(view.confirm_sign_out_everywhere()),
            paths::PASSKEY_REMOVE => view.confirm_passkey_removal(None),
            _ => view.page(Notice::None),
        };
    };
    let outcome = match request.path.as_str() {
        paths::LOGOUT => return view.sign_out(),
        paths::PASSWORD => view.change_password(&form),
        paths::TWO_FACTOR_ON => view.turn_on_second_factor(&form),
        paths::TWO_FACTOR_OFF => view.remove_second_factor(&form),
        paths::RECOVERY_CODES => view.new_recovery_codes(&form),
        paths::DEVICE_SIGN_OUT => view.sign_out_device(&form),
        paths::SIGN_OUT_EVERYWHERE => view.sign_out_everywhere(),
        paths::LOGIN_MAIL => view.set_login_mail(&form),
        paths::PASSKEY_ADD => view.add_passkey(&form),
        paths::PASSKEY_REMOVE => view.remove_passkey(&form),
        path => view.with_password(&form, path),
    };
    match outcome {
        Ok(response) => Ok(response),
        Err(Failure::Page(refusal)) => Err(refusal),
        // A new key is asked for on its confirmation: a wrong password stays there.
        Err(Failure::Password(refusal)) if request.path == paths::REGENERATE => {
            Ok(view.confirm_new_key(Some(&password_message(refusal))))
        }
        Err(Failure::Password(refusal)) if request.path == paths::PASSKEY_REMOVE => {
            view.confirm_passkey_removal(Some(&password_message(refusal)))
        }
        Err(Failure::Password(refusal)) => view.page(Notice::Error(password_message(refusal))),
    }
}

/// The words for a refused password on the page.
fn password_message(refusal: PasswordRefusal) -> String {
    match refusal {
        PasswordRefusal::TooWeak => "The password is too weak.".into(),
        PasswordRefusal::TooManyAttempts(retry_after) => page::try_again(retry_after),
        PasswordRefusal::SignInAgain => "Please confirm it is you first: sign in again through \
                                         your identity provider, then repeat this within 5 minutes."
            .into(),
        PasswordRefusal::WrongCode => totp::WRONG_CODE.into(),
        refusal => ApiError::from(refusal).msg.into_owned(),
    }
}

/// The account page's sections, in the order people come for them (web.md §7). A form
/// posts to its path with its section's fragment, so that the answer, shown in that
/// section, is where the person is looking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Key,
    Password,
    TwoFactor,
    Passkeys,
    LoginMail,
    Devices,
}

impl Section {
    /// The section of the form posted to `path`.
    fn of(path: &str) -> Option<Section> {
        match path {
            paths::API_KEY | paths::ZULIPRC | paths::REGENERATE => Some(Section::Key),
            paths::PASSWORD => Some(Section::Password),
            paths::TWO_FACTOR_ON | paths::TWO_FACTOR_OFF | paths::RECOVERY_CODES => {
                Some(Section::TwoFactor)
            }
            paths::PASSKEY_ADD | paths::PASSKEY_REMOVE => Some(Section::Passkeys),
            paths::LOGIN_MAIL => Some(Section::LoginMail),
            paths::DEVICE_SIGN_OUT | paths::SIGN_OUT_EVERYWHERE => Some(Section::Devices),
            _ => None,
        }
    }

    fn id(self) -> &'static str {
        match self {
            Section::Key => "api-key",
            Section::Password => "password",
            Section::TwoFactor => "two-factor",
            Section::Passkeys => "passkeys",
            Section::LoginMail => "login-mail",
            Section::Devices => "devices",
        }
    }

    /// The action of a form of this section that posts to `path`.
    fn action(self, path: &str) -> String {
        format!("{path}#{}", self.id())
    }
}

/// Why a form was not done: a password refused, shown on the page, or a page-level refusal.
enum Failure {
    Password(PasswordRefusal),
    Page(Refusal),
}

impl From<PasswordRefusal> for Failure {
    fn from(refusal: PasswordRefusal) -> Failure {
        match refusal {
            PasswordRefusal::Store(e) => Failure::Page(e.into()),
            other => Failure::Password(other),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Page(refusal)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Page(e.into())
    }
}

enum Notice {
    None,
    Error(String),
    Done(&'static str),
    ApiKey(String),
    RecoveryCodes(Vec<String>),
}

/// One request of a signed-in person.
struct View<'a> {
    ctx: &'a Context<'a>,
    request: &'a Request,
    who: &'a SignedIn,
}

/// The account forms' actions: each checks what it must, changes one thing, and answers with
/// a page.
impl View<'_> {
    fn audit(&self, event: AuditEvent) -> AuditEntry {
        AuditEntry {
            detail: Some(ON_THE_PAGE.to_owned()),
            ..self
                .ctx
                .client
                .audit(event, &self.who.realm, Some(self.who.user.id))
        }
    }

    /// The password, checked as a login with the user's email, or for a user without one a
    /// recent sign-in or a code (web.md §10.5); their key if it holds.
    fn confirm(&self, password: &str) -> Result<String, PasswordRefusal> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        let signed_in_at = session::started_at(self.ctx.store, &self.who.session_id)?;
        let (login, client) = (&self.ctx.login, self.ctx.client);
        account::reconfirm(login, realm, user, password, signed_in_at, client)
    }

    /// Showing the key, downloading `zuliprc`, regenerating the key: each after the password.
    fn with_password(&self, form: &Form, path: &str) -> Result<Response, Failure> {
        let user = &self.who.user;
        let key = self.confirm(form.text("password"))?;
        let key = if path == paths::REGENERATE {
            key::replace(self.ctx.store, user.id, &self.audit(AuditEvent::KeyRotated))?
        } else if devices::per_device(&self.who.realm) {
            // wire.md §9.5: a key for a new device, shown once; the zuliprc file makes one too.
            let name = match path {
                paths::ZULIPRC => "zuliprc",
                _ => form.text("device_name"),
            };
            let audit = self.audit(AuditEvent::KeyMinted);
            devices::create(
                self.ctx.store,
                user,
                name,
                self.ctx.client.user_agent,
                &audit,
            )?
        } else {
            key
        };
        if path == paths::ZULIPRC {
            return Ok(zuliprc(&user.delivery_email, &key, &self.who.realm_url));
        }
        Ok(self.page(Notice::ApiKey(key))?)
    }

    /// A new password ends every session of the user (web.md §5), and this browser gets a
    /// new one, so the person stays signed in here.
    fn change_password(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        if account::managed_by_ldap(realm, user) {
            return Err(PasswordRefusal::ManagedByLdap.into());
        }
        self.confirm(form.text("old_password"))?;
        let new_password = form.text("new_password1");
        if new_password != form.text("new_password2") {
            let mismatch = Notice::Error("The two password fields didn't match.".into());
            return Ok(self.page(mismatch)?);
        }
        let audit = self.audit(AuditEvent::PasswordChanged);
        account::set_password(&self.ctx.login, user, new_password, &audit)?;
        let cookie = session_cookie(self.ctx, user, &self.who.realm_url)?;
        let page = self.page(Notice::Done("Your password has been changed."))?;
        Ok(page.header("Set-Cookie", cookie))
    }

    /// Turning the second factor on: without a code, a new key offered (the session's only
    /// offer); with one, the password and the offer's first code, in one form (web.md §4).
    fn turn_on_second_factor(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        let (store, session_id) = (self.ctx.store, self.who.session_id.as_str());
        let Some(code) = form.get(totp::CODE_FIELD) else {
            let secret = enrolment::offer(store, session_id, user)?;
            return Ok(self.enrol_page(&secret, None));
        };
        let Some(secret) = enrolment::offered(store, session_id, user)? else {
            return Ok(self.page(Notice::Error(OFFER_EXPIRED.into()))?);
        };
        // web.md §4: a re-confirmation, as for every change here; a wrong password keeps the offer.
        if let Err(refusal) = self.confirm(form.text("password")) {
            return match Failure::from(refusal) {
                Failure::Password(refusal) => {
                    Ok(self.enrol_page(&secret, Some(&password_message(refusal))))
                }
                page => Err(page),
            };
        }
        let context = self.audit(AuditEvent::TotpEnrolled);
        match enrolment::turn_on(store, realm, user, session_id, code, &context)? {
            Ok(codes) => Ok(self.enrolled_page(&codes)),
            Err(OfferRefusal::WrongCode) => Ok(self.enrol_page(&secret, Some(totp::WRONG_CODE))),
            Err(OfferRefusal::Expired) => Ok(self.page(Notice::Error(OFFER_EXPIRED.into()))?),
        }
    }

    /// A new set of recovery codes, ending the old one, after the password (web.md §4.1).
    fn new_recovery_codes(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        self.confirm(form.text("password"))?;
        if !second_factor::is_enrolled(self.ctx.store, user)? {
            return Ok(self.page(Notice::Error(
                "Recovery codes stand in for a second factor: turn one on first.".into(),
            ))?);
        }
        let context = self.audit(AuditEvent::RecoveryCodesMade);
        let codes = recovery::new_set(self.ctx.store, realm, user, Origin::Web, &context)?;
        Ok(self.page(Notice::RecoveryCodes(codes))?)
    }

    fn remove_second_factor(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        self.confirm(form.text("password"))?;
        let context = self
            .ctx
            .client
            .audit(AuditEvent::TotpRemoved, realm, Some(user.id));
        second_factor::remove(self.ctx.store, realm, user, Origin::Web, &context)?;
        Ok(self.page(Notice::Done("Two-factor authentication is off."))?)
    }

    /// "Sign out this device": one of the user's keys revoked (wire.md §9.5).
    fn sign_out_device(&self, form: &Form) -> Result<Response, Failure> {
        let id = form.text("key_id").parse().ok();
        let audit = AuditEntry {
            detail: id.map(|id| format!("key {id}: {ON_THE_PAGE}")),
            ..self.audit(AuditEvent::KeyRevoked)
        };
        let revoked = match id {
            Some(id) => devices::revoke(self.ctx.store, &self.who.user, id, &audit)?,
            None => false,
        };
        Ok(self.page(if revoked {
            Notice::Done("That device is signed out: its key no longer works.")
        } else {
            Notice::Error(ALREADY_REVOKED.into())
        })?)
    }

    /// "Sign out everywhere": every key of the user revoked, their own included.
    fn sign_out_everywhere(&self) -> Result<Response, Failure> {
        let audit = self.audit(AuditEvent::KeyRevoked);
        self.ctx.store.revoke_all_keys(self.who.user.id, &audit)?;
        Ok(self.page(Notice::Done(
            "Every device is signed out: none of your keys works any more.",
        ))?)
    }

    /// The user's switch of the mail for every new login (web.md §8.1).
    fn set_login_mail(&self, form: &Form) -> Result<Response, Failure> {
        let on = form.text("login_mail") == "on";
        let audit = AuditEntry {
            detail: Some(format!("{} {ON_THE_PAGE}", if on { "on" } else { "off" })),
            ..self.audit(AuditEvent::LoginMailChanged)
        };
        self.ctx
            .store
            .set_login_mail(self.who.user.id, on, &audit)?;
        Ok(self.page(Notice::Done(if on {
            "You will get a mail after every new login."
        } else {
            "You will get no mail after new logins."
        }))?)
    }
}

/// The pages the account forms answer with.
impl View<'_> {
    /// A destructive action's confirmation (web.md §7): what it does, then a form whose red
    /// button POSTs it, and a way back that changes nothing.
    fn confirmation(&self, title: &str, action: &Confirm<'_>) -> Response {
        let csrf = Csrf::for_page(self.request);
        let content = html! {
            (action.question)
            (page::error_message(action.error))
            form method="post" action=(action.path) {
                (hidden(csrf::FIELD, csrf.token()))
                (action.fields)
                button.danger type="submit" { (action.button) }
            }
            a.back href=(paths::SETTINGS) { (action.back) }
        };
        self.respond(&csrf, self.layout(title, content))
    }

    /// What a person must confirm before signing out (web.md §7).
    fn confirm_sign_out(&self) -> Response {
        let question = html! {
            p { "Sign out of " (self.who.realm.name) " on this browser? Your apps stay signed in." }
        };
        let confirm = Confirm {
            question,
            path: paths::LOGOUT.to_owned(),
            button: "Sign out",
            back: "Stay signed in",
            ..Confirm::default()
        };
        self.confirmation("Sign out?", &confirm)
    }

    /// What a person must confirm, with the password, before the key is replaced.
    fn confirm_new_key(&self, error: Option<&str>) -> Response {
        let question = html! {
            p {
                "The key you have now stops working at once: every app, bot and zuliprc file "
                "that uses it must be signed in again or given the new key."
            }
        };
        let confirm = Confirm {
            question,
            error,
            path: Section::Key.action(paths::REGENERATE),
            fields: self.who.reconfirm_by.field(
                "password_regenerate",
                "password",
                "Password",
                "current-password",
            ),
            button: "Generate a new API key",
            back: "Keep the current key",
        };
        self.confirmation("Generate a new API key?", &confirm)
    }

    /// What a person must confirm before one device's key is revoked (`?key_id=`); a key
    /// that is gone already is told on the account page, as its POST would be.
    fn confirm_device_sign_out(&self, query: &Form) -> Result<Response, Refusal> {
        let keys = devices::list(self.ctx.store, &self.who.user, None)?;
        let id = query.text("key_id").parse::<i64>().ok();
        let Some(key) = keys.iter().find(|key| Some(key.id) == id) else {
            return self.page(Notice::Error(ALREADY_REVOKED.into()));
        };
        let question = html! {
            p {
                "Sign out " b { (key.name) } " (" (key.method) "), made " (clock::iso8601(key.created as f64))
                "? Its key stops working at once, and the app there must sign in again."
            }
        };
        let confirm = Confirm {
            question,
            path: Section::Devices.action(paths::DEVICE_SIGN_OUT),
            fields: hidden("key_id", &key.id.to_string()),
            button: "Sign out this device",
            back: "Keep it signed in",
            ..Confirm::default()
        };
        Ok(self.confirmation("Sign out this device?", &confirm))
    }

    /// What a person must confirm before every key of theirs is revoked.
    fn confirm_sign_out_everywhere(&self) -> Response {
        let question = html! {
            p {
                "Every key of yours stops working at once: every app, bot and zuliprc file must "
                "sign in again. This browser stays signed in."
            }
        };
        let confirm = Confirm {
            question,
            path: Section::Devices.action(paths::SIGN_OUT_EVERYWHERE),
            button: "Sign out everywhere",
            back: "Keep them signed in",
            ..Confirm::default()
        };
        self.confirmation("Sign out everywhere?", &confirm)
    }

    fn sign_out(&self) -> Result<Response, Refusal> {
        session::end(self.ctx.store, &self.who.session_id)?;
        let secure = cookie::is_secure(&self.who.realm_url);
        Ok(page::redirect(paths::LOGIN.to_owned()).header(
            "Set-Cookie",
            cookie::delete(session::COOKIE, SameSite::Strict, secure),
        ))
    }

    fn page(&self, notice: Notice) -> Result<Response, Refusal> {
        let csrf = Csrf::for_page(self.request);
        let (user, realm) = (&self.who.user, &self.who.realm);
        let recovery_left = match second_factor::is_enrolled(self.ctx.store, user)? {
            true => Some(recovery::left(self.ctx.store, user)?),
            false => None,
        };
        let totp = second_factor::has_totp(self.ctx.store, user)?;
        // web.md §9: the section says why when there are none to add.
        let offered = passkeys::relying_party(self.ctx.site, realm).map(|_| ());
        let passkeys = passkeys::list(self.ctx.store, user)?;
        // Under per-user, with no device key left from per-device times, the page is as it
        // was: one key, shown on request, and no Devices section.
        let per_device = devices::per_device(realm);
        let keys = devices::list(self.ctx.store, user, None)?;
        let show_devices = per_device || keys.iter().any(|k| k.id != devices::OWN_KEY_ID);
        let login_mail = if self.ctx.reset_desk.is_some() && realm.login_mail {
            Some(!self.ctx.store.login_mail_off(user.id)?)
        } else {
            None
        };
        // A user without a password re-confirms by signing in again (web.md §10.5).
        let providers = if self.who.reconfirm_by == Reconfirm::Password {
            Vec::new()
        } else {
            self.ctx.store.identity_providers(realm.id)?
        };
        let page = AccountPage {
            csrf: &csrf,
            user,
            realm,
            providers: &providers,
            reconfirm_by: self.who.reconfirm_by,
            notice: Section::of(&self.request.path).map(|section| (section, &notice)),
            per_device,
            devices: show_devices.then_some(keys.as_slice()),
            login_mail,
            totp,
            passkeys: (offered, &passkeys),
        };
        let content = page.render(recovery_left, self.request.path == paths::REGENERATE);
        let response = self.respond(&csrf, self.layout("Your account", content));
        Ok(match offered {
            Ok(()) => page::with_script(response),
            Err(_) => response,
        })
    }

    /// The session's offered key, and the form of its first code and the password.
    fn enrol_page(&self, secret: &Secret, error: Option<&str>) -> Response {
        let csrf = Csrf::for_page(self.request);
        let (user, realm) = (&self.who.user, &self.who.realm);
        let content = html! {
            (page::error_message(error))
            (totp::new_key(realm, &user.delivery_email, secret))
            form method="post" action=(Section::TwoFactor.action(paths::TWO_FACTOR_ON)) {
                (hidden(csrf::FIELD, csrf.token()))
                (totp::code_input())
                (self.who.reconfirm_by.field("password_2fa_on", "password", "Password", "current-password"))
                button type="submit" { "Turn on" }
            }
            a.back href=(paths::SETTINGS) { "Back to your account" }
        };
        self.respond(
            &csrf,
            self.layout("Set up two-factor authentication", content),
        )
    }

    fn enrolled_page(&self, codes: &[String]) -> Response {
        let csrf = Csrf::for_page(self.request);
        let (user, realm) = (&self.who.user, &self.who.realm);
        let content = html! {
            p {
                "From now on, signing in to " (realm.name) " as "
                strong { (user.delivery_email) }
                " asks for a code from your authenticator app."
            }
            (recovery_codes(codes))
            a.button href=(paths::SETTINGS) { "Back to your account" }
        };
        self.respond(
            &csrf,
            self.layout("Two-factor authentication is on", content),
        )
    }

    fn layout(&self, title: &str, content: Markup) -> Markup {
        let banner = Banner::new(&self.who.realm, &self.who.realm_url);
        layout(Some(banner), title, content)
    }

    fn respond(&self, csrf: &Csrf, markup: maud::Markup) -> Response {
        let secure = cookie::is_secure(&self.who.realm_url);
        csrf.set_cookie(page::html(200, markup), secure)
    }
}

/// A destructive action, as its confirmation asks for it.
#[derive(Default)]
struct Confirm<'a> {
    /// What the action does, as a question.
    question: Markup,
    /// Why the last try was refused (a wrong password).
    error: Option<&'a str>,
    /// Where the form posts.
    path: String,
    /// The form's fields beside the CSRF token.
    fields: Markup,
    button: &'a str,
    /// The link back to the account page.
    back: &'a str,
}

/// The account page's passkeys (web.md §9): adding one after the password (the ceremony is
/// then bound to this user, so its answer needs no password again), and removing one after
/// a confirmation with the password.
impl View<'_> {
    fn add_passkey(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm, store) = (&self.who.user, &self.who.realm, self.ctx.store);
        let rp = match passkeys::relying_party(self.ctx.site, realm) {
            Ok(rp) => rp,
            Err(unavailable) => {
                return Ok(self.page(Notice::Error(unavailable.message().into()))?);
            }
        };
        if passkey::wants_options(form) {
            if let Err(refusal) = self.confirm(form.text("password")) {
                return match Failure::from(refusal) {
                    Failure::Password(refusal) => {
                        Ok(passkey::options(Err(&password_message(refusal))))
                    }
                    page => Err(page),
                };
            }
            let started = passkeys::start_enrolment(store, &rp, user, self.ctx.client.address)?;
            return Ok(passkey::options_or_why(started));
        }
        let Some(answer) = passkey::answer(form) else {
            let needs = "Adding a passkey needs JavaScript.";
            return Ok(self.page(Notice::Error(needs.into()))?);
        };
        let context = self.audit(AuditEvent::PasskeyAdded);
        let name = form.text("passkey_name");
        let added = passkeys::finish_enrolment(store, &rp, realm, user, answer, name, &context)?;
        Ok(self.page(match added {
            Ok(Some(codes)) => Notice::RecoveryCodes(codes),
            Ok(None) => Notice::Done("Your passkey is added: it signs you in from now on."),
            Err(error) => Notice::Error(passkey::message(error).into()),
        })?)
    }

    fn remove_passkey(&self, form: &Form) -> Result<Response, Failure> {
        let (user, realm) = (&self.who.user, &self.who.realm);
        self.confirm(form.text("password"))?;
        let removed = match form.text(passkey::ID_FIELD).parse() {
            Ok(id) => {
                let context = self.audit(AuditEvent::PasskeyRemoved);
                passkeys::remove(self.ctx.store, realm, user, id, &context)?
            }
            Err(_) => false,
        };
        Ok(self.page(if removed {
            Notice::Done("The passkey is removed: it no longer signs you in.")
        } else {
            Notice::Error(PASSKEY_GONE.into())
        })?)
    }

    /// What a person must confirm, with the password, before a passkey is removed: the one
    /// named by the query (GET) or the form (a wrong password).
    fn confirm_passkey_removal(&self, error: Option<&str>) -> Result<Response, Refusal> {
        let fields = match self.request.method.as_str() {
            "POST" => Form::from_body(self.request)?,
            _ => Form::from_query(self.request)?,
        };
        let id = fields.text(passkey::ID_FIELD).parse::<i64>().ok();
        let listed = passkeys::list(self.ctx.store, &self.who.user)?;
        let Some(found) = listed.iter().find(|stored| Some(stored.id) == id) else {
            return self.page(Notice::Error(PASSKEY_GONE.into()));
        };
        let question = html! {
            p {
                "The passkey " b { (found.record.name) } " will no longer sign you in. "
                "Remove it from your authenticator too."
            }
        };
        let confirm = Confirm {
            question,
            error,
            path: paths::PASSKEY_REMOVE.to_owned(),
            fields: html! {
                (hidden(passkey::ID_FIELD, &found.id.to_string()))
                (self.who.reconfirm_by.field("password_remove", "password", "Password", "current-password"))
            },
            button: "Remove this passkey",
            back: "Keep it",
        };
        Ok(self.confirmation("Remove this passkey?", &confirm))
    }
}

/// Zulip's `zuliprc` (web.md §7), as an attachment that no cache keeps.
fn zuliprc(email: &str, key: &str, site: &str) -> Response {
    let body = format!("[api]\nemail={email}\nkey={key}\nsite={site}\n");
    page::secured(Response {
        status: 200,
        content_type: Some("text/plain; charset=utf-8"),
        headers: Vec::new(),
        body: body.into_bytes(),
        log: LogContext::default(),
    })
    .header("Content-Disposition", "attachment; filename=\"zuliprc\"")
}

/// The account page: who is signed in, then a section for each thing a person comes for.
struct AccountPage<'a> {
    csrf: &'a Csrf,
    user: &'a User,
    realm: &'a Realm,
    /// The answer to the form just posted, in its section.
    notice: Option<(Section, &'a Notice)>,
    /// Whether each device gets a key of its own (wire.md §9.5).
    per_device: bool,
    /// The user's keys, where the page has a Devices section.
    devices: Option<&'a [devices::Listed]>,
    /// The login mail's switch, where the realm sends the mail (web.md §8.1).
    login_mail: Option<bool>,
    /// Whether the user has a TOTP key (the second factor may be a passkey).
    totp: bool,
    /// Whether passkeys can be added here, and the user's (web.md §9).
    passkeys: (Result<(), Unavailable>, &'a [StoredPasskey]),
    /// Where a user without a password signs in again to re-confirm (web.md §10.5).
    providers: &'a [IdentityProvider],
    /// What the forms ask for to re-confirm a change.
    reconfirm_by: Reconfirm,
}

/// New recovery codes, shown this once.
fn recovery_codes(codes: &[String]) -> Markup {
    html! {
        @if !codes.is_empty() {
            p.status role="status" {
                "Your recovery codes. Each works once, in place of a code from your app. "
                "Keep them somewhere safe: they are shown only now."
            }
            ul class="recovery-codes" { @for code in codes { li { code { (code) } } } }
        }
    }
}

impl AccountPage<'_> {
    /// `recovery_left`: the recovery codes left, if the second factor is on.
    fn render(&self, recovery_left: Option<i64>, new_key: bool) -> Markup {
        let user = self.user;
        html! {
            p { "Signed in as " b { (user.full_name) } " (" (user.delivery_email) ")." }
            @if !self.providers.is_empty() {
                p.hint { "You have no password here: a change on this page needs a sign-in in the last 5 minutes." }
                (oidc::reconfirm_links(self.providers))
            }
            (self.section(Section::Key, "API key", self.key(new_key)))
            (self.section(Section::Password, "Password", self.password()))
            (self.section(Section::TwoFactor, "Two-factor authentication", self.two_factor(recovery_left)))
            (self.section(Section::Passkeys, "Passkeys", passkey::account_section(
                self.csrf, self.passkeys.0, self.passkeys.1, |path| Section::Passkeys.action(path),
                self.reconfirm_by.field("password_passkey", "password", "Password", "current-password"))))
            @if let Some(on) = self.login_mail {
                (self.section(Section::LoginMail, "Login mail", self.login_mail(on)))
            }
            @if let Some(keys) = self.devices {
                (self.section(Section::Devices, "Devices", device_list(keys)))
            }
            // Each further thing a person manages here is one more section, above signing out.
            a.button.danger href=(paths::LOGOUT) { "Sign out" }
        }
    }

    /// A section, with the notice of the form just posted if it is this section's.
    fn section(&self, section: Section, title: &str, body: Markup) -> Markup {
        let notice = self.notice.filter(|(at, _)| *at == section).map(|(_, n)| n);
        html! {
            section id=(section.id()) {
                h2 { (title) }
                @match notice {
                    None | Some(Notice::None) => {},
                    Some(Notice::Error(message)) => (page::error_message(Some(message))),
                    Some(Notice::Done(message)) => p.status role="status" { (message) },
                    Some(Notice::ApiKey(key)) => p.status role="status" { "Your API key: " code { (key) } },
                    Some(Notice::RecoveryCodes(codes)) => (recovery_codes(codes)),
                }
                (body)
            }
        }
    }

    fn key(&self, new_key: bool) -> Markup {
        html! {
            @if new_key {
                p { "Your new key is above. Give it to your apps, bots and zuliprc files in place of the old one." }
            } @else if self.per_device {
                p {
                    "Each device gets a key of its own. "
                    @if self.reconfirm_by == Reconfirm::Password {
                        "Enter a name and your password to create a key for a new device; "
                    } @else {
                        "Enter a name to create a key for a new device; "
                    }
                    "it is shown once. The zuliprc file holds a new key too."
                }
            } @else {
                p {
                    "Zulip's apps and tools sign in with your API key. "
                    @if self.reconfirm_by == Reconfirm::Password {
                        "Enter your password to see it, or to download a zuliprc file with it."
                    } @else {
                        "Show it here, or download a zuliprc file with it."
                    }
                }
            }
            @if self.per_device {
                form method="post" action=(Section::Key.action(paths::API_KEY)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    label for="device_name" { "Device name" }
                    input type="text" id="device_name" name="device_name" maxlength=(text::MAX_NAME) required;
                    (self.reconfirm_by.field("password_key", "password", "Password", "current-password"))
                    button type="submit" { "Create a key for a new device" }
                }
                form method="post" action=(Section::Key.action(paths::ZULIPRC)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    (self.reconfirm_by.field("password_zuliprc", "password", "Password", "current-password"))
                    button.secondary type="submit" { "Download zuliprc" }
                }
            } @else {
                form method="post" action=(Section::Key.action(paths::API_KEY)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    (self.reconfirm_by.field("password_key", "password", "Password", "current-password"))
                    button type="submit" { "Show API key" }
                    button.secondary type="submit" formaction=(paths::ZULIPRC) { "Download zuliprc" }
                }
            }
            a.button.danger href=(paths::REGENERATE) { "Generate a new API key" }
        }
    }

    fn password(&self) -> Markup {
        html! {
            form method="post" action=(Section::Password.action(paths::PASSWORD)) {
                (hidden(csrf::FIELD, self.csrf.token()))
                (self.reconfirm_by.field("old_password", "old_password", "Current password", "current-password"))
                (page::new_password_fields())
                button type="submit" { "Change password" }
            }
        }
    }

    /// The TOTP key on or off, and the recovery codes of any second factor.
    fn two_factor(&self, recovery_left: Option<i64>) -> Markup {
        let action = |path| Section::TwoFactor.action(path);
        // Only a realm that requires it sends the apps' logins through these pages too.
        let reach = if self.realm.require_2fa {
            "Add a second factor, so that a password alone cannot sign in as you."
        } else {
            "Add a second factor, so that a password alone cannot sign in as you on these pages. \
             The apps and other clients can still log in with your password alone unless your \
             organization requires a second factor."
        };
        html! {
            @if self.totp {
                p { "Two-factor authentication is on. Enter your password to turn it off." }
                form method="post" action=(action(paths::TWO_FACTOR_OFF)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    (self.reconfirm_by.field("password_2fa", "password", "Password", "current-password"))
                    button.danger type="submit" { "Turn off two-factor authentication" }
                }
            } @else {
                @if recovery_left.is_some() {
                    p { "Your passkey is your second factor. You can add an authenticator app's codes too." }
                } @else {
                    p { (reach) }
                }
                form method="post" action=(action(paths::TWO_FACTOR_ON)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    button type="submit" { "Set up two-factor authentication" }
                }
            }
            @if let Some(left) = recovery_left {
                p { "Recovery codes left: " (left) ". Each signs you in once if you lose your authenticator. A new set ends the old one." }
                form method="post" action=(action(paths::RECOVERY_CODES)) {
                    (hidden(csrf::FIELD, self.csrf.token()))
                    (self.reconfirm_by.field("password_recovery", "password", "Password", "current-password"))
                    button type="submit" { "Make new recovery codes" }
                }
            }
        }
    }

    /// The switch of the mail for every new login.
    fn login_mail(&self, on: bool) -> Markup {
        html! {
            p {
                @if on { "You get a mail after every new login to your account." }
                @else { "You get no mail after new logins to your account." }
            }
            form method="post" action=(Section::LoginMail.action(paths::LOGIN_MAIL)) {
                (hidden(csrf::FIELD, self.csrf.token()))
                (hidden("login_mail", if on { "off" } else { "on" }))
                button type="submit" { @if on { "Stop these mails" } @else { "Mail me after every new login" } }
            }
        }
    }
}

/// The user's keys, each with "Sign out this device", and "Sign out everywhere".
fn device_list(keys: &[devices::Listed]) -> Markup {
    let when = |t: i64| clock::iso8601(t as f64);
    html! {
        @if keys.is_empty() {
            p { "No device holds a key of yours." }
        } @else {
            ul {
                @for key in keys {
                    li {
                        b { (key.name) } " (" (key.method) "), made " (when(key.created))
                        @if let Some(used) = key.last_used { ", last used " (when(used)) }
                        " "
                        a.button.danger href=(format!("{}?key_id={}", paths::DEVICE_SIGN_OUT, key.id)) {
                            "Sign out this device"
                        }
                    }
                }
            }
            a.button.danger href=(paths::SIGN_OUT_EVERYWHERE) { "Sign out everywhere" }
        }
    }
}
