//! `PATCH /api/v1/settings`: the password part of Zulip's settings endpoint (web.md §5).

use serde::Serialize;

use super::{Api, client, parse_params, rest_method_check};
use crate::auth::account::{self, PasswordRefusal};
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
            if account::managed_by_ldap(&realm, &user) {
                return Err(PasswordRefusal::ManagedByLdap.into());
            }
            let old_password = params.get("old_password").unwrap_or("");
            let login = self.login();
            let client = client(request, log);
            account::confirm_password(&login, &realm, &user, old_password, client)?;
            let audit = crate::store::AuditEntry {
                detail: Some("by the user, over the API".to_owned()),
                ..client.audit(AuditEvent::PasswordChanged, &realm, Some(user.id))
            };
            account::set_password(&login, &user, new_password, &audit)?;
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
