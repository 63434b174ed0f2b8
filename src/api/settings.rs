//! `PATCH /api/v1/settings`: the password part of Zulip's settings endpoint (web.md §5).

use serde::Serialize;

use super::{Api, parse_params, rest_method_check};
use crate::auth::account;
use crate::error::ApiError;
use crate::http::{LogContext, Request, Response};
use crate::store::AuditEvent;

#[derive(Serialize)]
struct Changed {
    result: &'static str,
    msg: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored_parameters_unsupported: Vec<String>,
}

impl Api {
    /// web.md §5's checks in order. Without `new_password`, or with an empty one as in
    /// Zulip, nothing changes.
    pub(super) fn settings(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if let Some(refusal) = rest_method_check(request, &["PATCH"]) {
            return Ok(refusal);
        }
        let (user, realm) = self.basic_auth_user(request, log)?;
        let params = parse_params(request)?;
        if let Some(new_password) = params.get("new_password").filter(|p| !p.is_empty()) {
            let old_password = params.get("old_password").unwrap_or("");
            let (store, hasher) = (&self.store, &self.hasher);
            account::confirm_password(
                store,
                hasher,
                &self.config.limits,
                &realm,
                &user,
                old_password,
            )?;
            let mut entry = self.audit_entry(AuditEvent::PasswordChanged, &realm, request, log);
            entry.detail = Some("by the user, over the API".to_owned());
            account::set_password(store, hasher, &user, new_password, None, &entry)?;
        }
        Ok(Response::json(
            200,
            &Changed {
                result: "success",
                msg: "",
                ignored_parameters_unsupported: params.ignored(&["old_password", "new_password"]),
            },
        ))
    }
}
