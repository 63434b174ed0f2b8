//! The `login_mail_off` table (migration 9): users who turned the mail for every new login
//! off (web.md §8.1).

use crate::store::sql::{Backend, Conn, params, sql};
use crate::store::{AuditEntry, LoginMail, StoreResult};

/// Forgets the user's choice: the mail is on again, as the realm says.
pub(super) fn delete(conn: &mut dyn Conn, user_id: i64) -> StoreResult<u64> {
    Ok(conn.execute(
        sql!("DELETE FROM login_mail_off WHERE user_id = $1"),
        params![user_id],
    )?)
}

impl<B: Backend> LoginMail for B {
    fn login_mail_off(&self, user_id: i64) -> StoreResult<bool> {
        self.read(|conn| {
            Ok(conn.one(
                sql!("SELECT EXISTS (SELECT 1 FROM login_mail_off WHERE user_id = $1)"),
                params![user_id],
                |r| r.flag(0),
            )?)
        })
    }

    fn set_login_mail(&self, user_id: i64, on: bool, audit: &AuditEntry) -> StoreResult<()> {
        self.durably(|conn| {
            if on {
                delete(conn, user_id)?;
            } else {
                conn.execute(
                    sql!(
                        "INSERT INTO login_mail_off (user_id) VALUES ($1)
                         ON CONFLICT (user_id) DO NOTHING"
                    ),
                    params![user_id],
                )?;
            }
            super::audit_log::insert(conn, audit)
        })
    }
}
