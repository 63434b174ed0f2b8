//! Pruning, once for every table that grows: what no rule can see any more goes.

use crate::store::sql::Backend;
use crate::store::{Prune, Pruning, StoreResult};

impl<B: Backend> Pruning for B {
    fn prune(&self, prune: &Prune) -> StoreResult<u64> {
        self.read(|conn| {
            Ok(super::rate_limit_event::prune(conn, prune.events_before)?
                + super::audit_log::prune(conn, prune.audit_before)?
                + super::web_login_step::prune(conn, prune.now)?
                + super::web_session::prune(conn, prune.now, prune.sessions)?
                + super::password_reset::prune(conn, prune.now)?
                + super::api_key::prune(conn, prune.now)?)
        })
    }
}
