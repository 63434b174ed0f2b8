//! The pages a person sees in a browser (web.md): rendered on the server with maud, which
//! escapes every interpolated value, and working without JavaScript at a phone's width.
//!
//! The shared pieces live here, one concept per module: [`page`] (the layout, the security
//! headers, plain error pages, redirects), [`cookie`], [`csrf`] (the `csrftoken` pair),
//! [`form`] (fields of a POST or a query string), [`paths`] (every page's path, so no page
//! imports another for a link), [`totp`] (a key to scan, a code to type), and [`Context`],
//! what a page may use of the worker. Each page has its own module, reached from the route
//! table in `api.rs`; the decisions behind a page are auth's.

pub mod account;
pub mod cookie;
pub mod csrf;
pub mod form;
pub mod login;
pub mod mobile_flow;
pub mod oidc;
pub mod page;
pub mod passkey;
pub mod paths;
pub mod reset;
pub mod totp;

use crate::auth::login::{Client, Login};
use crate::http::{LogContext, Request};
use crate::reset_desk::ResetDesk;
use crate::site::Site;
use crate::store::{IdentityProvider, Realm, SessionLimits, Store, StoreResult};

/// What a page may use of the worker that serves it.
pub struct Context<'a> {
    pub store: &'a Store,
    /// The one login, with its limits.
    pub login: Login<'a>,
    pub site: &'a Site,
    pub client: Client<'a>,
    /// Where reset requests go; `None` without mail.
    pub reset_desk: Option<&'a ResetDesk>,
    pub sessions: SessionLimits,
}

impl Context<'_> {
    /// The realm of the request's Host and its URL (`server_settings`' `realm_uri`).
    pub fn realm(
        &self,
        request: &Request,
        log: &mut LogContext,
    ) -> StoreResult<Option<(Realm, String)>> {
        let subdomain = self.site.subdomain_of(&request.host);
        let found = self.store.realm_by_subdomain(&subdomain)?;
        Ok(found.map(|realm| self.located(request, &subdomain, realm, log)))
    }

    /// [`Context::realm`] with the realm's OpenID providers by name, at one read of the realm
    /// version (the sign-in page's, web.md §10.1).
    pub fn realm_with_providers(
        &self,
        request: &Request,
        log: &mut LogContext,
    ) -> StoreResult<Option<(Realm, String, Vec<IdentityProvider>)>> {
        let subdomain = self.site.subdomain_of(&request.host);
        let found = self.store.realm_with_providers(&subdomain)?;
        Ok(found.map(|(realm, providers)| {
            let (realm, url) = self.located(request, &subdomain, realm, log);
            (realm, url, providers)
        }))
    }

    /// The request's `realm` of `subdomain`, named in its log line, and its URL.
    fn located(
        &self,
        request: &Request,
        subdomain: &str,
        realm: Realm,
        log: &mut LogContext,
    ) -> (Realm, String) {
        log.realm = Some(realm.subdomain.clone());
        (realm, self.site.realm_url(subdomain, &request.host))
    }
}
