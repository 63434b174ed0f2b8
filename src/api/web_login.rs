//! The browser sign-in's view of the API worker: its login steps, limits and audit, so that
//! the page and `fetch_api_key` share one login (web.md §3).

use super::Api;
use crate::clock;
use crate::email;
use crate::http::{LogContext, Request};
use crate::store::{AuditEntry, AuditEvent, Realm, Store, User};
use crate::web::login::{Backend, PasswordOutcome, WRONG_CREDENTIALS};
use crate::web::page::Refusal;

/// Audit detail of everything the pages do.
const VIA_WEB: &str = "via web";
const TOO_MANY: &str = "Too many attempts. Please wait a while, then try again.";

const INTERNAL: Refusal = Refusal {
    status: 500,
    message: "Something went wrong on the server. Please try again later.",
};

impl From<rusqlite::Error> for Refusal {
    fn from(err: rusqlite::Error) -> Refusal {
        log::error!("database error: {err}");
        INTERNAL
    }
}

impl Backend for Api {
    fn store(&self) -> &Store {
        &self.store
    }

    fn realm(&self, request: &Request, log: &mut LogContext) -> Option<(Realm, String)> {
        let subdomain = self.config.site.subdomain_of(&request.host);
        let realm = self.store.realm_by_subdomain(&subdomain).ok().flatten()?;
        log.realm = Some(realm.subdomain.clone());
        Some((realm, self.config.site.realm_url(&subdomain, &request.host)))
    }

    fn verify_password(
        &mut self,
        realm: &Realm,
        username: &str,
        password: &str,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<PasswordOutcome, Refusal> {
        if username.is_empty() || (realm.ldap_backend().is_none() && !email::is_valid(username)) {
            return Ok(PasswordOutcome::Refused(WRONG_CREDENTIALS));
        }
        let now = clock::now();
        let quota = self.config.limits.attempt(&self.store, username, now)?;
        if quota.and_then(|q| q.retry_after).is_some() {
            return Ok(PasswordOutcome::Refused(TOO_MANY));
        }
        let err = match self.check_password(realm, username, password, log, now) {
            Ok(user) => return Ok(PasswordOutcome::Verified(user)),
            Err(err) => err,
        };
        log.failure = log.failure.or(err.code);
        if err.status == 401 {
            let mut entry = self.audit_entry(AuditEvent::LoginFailure, realm, request, log);
            entry.reason = log.failure.map(str::to_owned);
            entry.detail = Some(VIA_WEB.to_owned());
            self.store.audit(&entry)?;
        }
        // Deactivation is not told apart from a wrong password: the page never says that
        // an account exists.
        Ok(PasswordOutcome::Refused(match err.code {
            Some("RATE_LIMIT_HIT") => TOO_MANY,
            Some("PASSWORD_AUTH_DISABLED") => {
                "Password authentication is disabled in this organization."
            }
            Some("PASSWORD_RESET_REQUIRED") => {
                "Your password has been disabled and needs to be reset."
            }
            None if err.status == 500 => return Err(INTERNAL),
            _ => WRONG_CREDENTIALS,
        }))
    }

    fn code_attempt(
        &mut self,
        username: &str,
        log: &mut LogContext,
    ) -> Result<Option<&'static str>, Refusal> {
        let now = clock::now();
        let limits = self.config.limits;
        if limits
            .address_blocked(&self.store, log.client, now)?
            .is_some()
        {
            return Ok(Some(TOO_MANY));
        }
        let quota = limits.attempt(&self.store, username, now)?;
        Ok(quota.and_then(|q| q.retry_after).map(|_| TOO_MANY))
    }

    fn code_failure(
        &mut self,
        realm: &Realm,
        _user: &User,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<(), Refusal> {
        self.config
            .limits
            .address_failure(&self.store, log.client, clock::now())?;
        let mut entry = self.audit_entry(AuditEvent::LoginFailure, realm, request, log);
        entry.reason = Some("WRONG_CODE".to_owned());
        entry.detail = Some(VIA_WEB.to_owned());
        self.store.audit(&entry)?;
        Ok(())
    }

    fn finish(
        &mut self,
        realm: &Realm,
        user: &User,
        username: &str,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<String, Refusal> {
        self.key_for_login(realm, user, request, log, Some(username), Some(VIA_WEB))
            .map_err(|_| INTERNAL)
    }

    fn audit_entry(
        &self,
        event: AuditEvent,
        realm: &Realm,
        request: &Request,
        log: &LogContext,
    ) -> AuditEntry {
        Api::audit_entry(self, event, realm, request, log)
    }
}
