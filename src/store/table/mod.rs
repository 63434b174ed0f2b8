//! Each table's statements and row mapping, written once for both engines over the seam
//! ([`sql`](super::sql)), one file per table or concern; each implements its trait of the
//! store once, for every [`Backend`](super::sql::Backend).

mod api_key;
mod audit_log;
mod finish_login;
pub(super) mod idp;
mod login_mail_off;
mod passkey;
mod passkey_ceremony;
mod password;
mod password_reset;
mod prune;
mod rate_limit_event;
mod realm;
mod recovery_code;
mod totp_device;
mod user;
mod web_login_step;
mod web_session;
