//! Ours: the user's keys per device (wire.md §9.5). `GET /api/v1/users/me/api_keys` lists
//! them, `DELETE /api/v1/users/me/api_keys/ID` revokes one.

use serde::Serialize;

use super::{Api, SUCCESS, client, rest_method_check};
use crate::auth::devices::{self, Listed};
use crate::error::ApiError;
use crate::http::{LogContext, Request, Response};
use crate::store::{AuditEntry, AuditEvent};

pub(super) const LIST: &str = "/api/v1/users/me/api_keys";
/// Followed by the key's id.
pub(super) const ONE: &str = "/api/v1/users/me/api_keys/";

#[derive(Serialize)]
struct Keys {
    result: &'static str,
    msg: &'static str,
    api_keys: Vec<Listed>,
}

impl Api {
    pub(super) fn api_keys(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if let Some(refusal) = rest_method_check(request, &["GET", "HEAD"]) {
            return Ok(refusal);
        }
        let (user, _, current) = self.basic_auth(request, log)?;
        Ok(Response::json(
            200,
            &Keys {
                result: "success",
                msg: "",
                api_keys: devices::list(&self.store, &user, current)?,
            },
        ))
    }

    pub(super) fn revoke_api_key(
        &mut self,
        request: &Request,
        log: &mut LogContext,
    ) -> Result<Response, ApiError> {
        if let Some(refusal) = rest_method_check(request, &["DELETE"]) {
            return Ok(refusal);
        }
        let (user, realm, _) = self.basic_auth(request, log)?;
        // Digits only, as Zulip's `<int:…>` path converters: anything else is unknown.
        let id = request.path[ONE.len()..].parse::<i64>().ok().filter(|_| {
            request.path[ONE.len()..]
                .bytes()
                .all(|b| b.is_ascii_digit())
        });
        let audit = AuditEntry {
            detail: id.map(|id| format!("key {id}: revoked by its user")),
            ..client(request, log).audit(AuditEvent::KeyRevoked, &realm, Some(user.id))
        };
        // Another user's id and an unknown one take the same one statement.
        match id {
            Some(id) if devices::revoke(&self.store, &user, id, &audit)? => {
                Ok(Response::json(200, &SUCCESS))
            }
            _ => Err(ApiError::invalid_api_key_id()),
        }
    }
}
