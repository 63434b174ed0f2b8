//! What a connection remembers between requests besides realm rows (kept on both engines by
//! [`realm_cache`](crate::store::realm_cache)): rate-limit buckets as it last read them, and
//! the realm version, so that a refused login costs one pragma instead of queries.
//!
//! The entries hold while the database is unchanged, which SQLite tells cheaply:
//! `PRAGMA data_version` changes when any other connection commits (another worker, the
//! pruner, an admin command in another process), and `total_changes` when this one writes.
//! Either drops every entry, so a change applies to the very next request (wire.md §2).
//! Within one request ([`Cache::begin_request`]) the pragma is read once, at the first use:
//! a change committed before the request began is seen, and one committed while it runs
//! may be seen or not, as if it had come a moment later. Each pragma is a statement, and
//! each statement takes and releases SQLite's read lock: two system calls.
//! Nothing is cached inside a transaction: those read the database itself.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::store::{Bucket, Rule, StoreResult};

/// More entries than this are dropped all at once: a bound on memory, whatever requests ask.
const MAX_ENTRIES: usize = 1024;

#[derive(Default)]
pub(super) struct Cache {
    /// `(data_version, total_changes)` when the entries were read.
    seen: Option<(i64, u64)>,
    look: Look,
    /// The realm version as read while the database was as `seen`.
    realm_version: Option<i64>,
    buckets: HashMap<String, Events>,
}

/// When `PRAGMA data_version` is read.
#[derive(Default, Clone, Copy, PartialEq)]
enum Look {
    /// At every use: outside requests (commands, the pruner, tests of the store).
    #[default]
    EveryUse,
    /// At the next use, then not again in this request.
    InRequest,
    /// Read for this request already.
    Looked,
}

/// A bucket's newest events, as `limits::recent` read them at `read_at` under `rule`.
struct Events {
    rule: Rule,
    read_at: f64,
    newest_first: Vec<f64>,
}

impl Cache {
    /// A request begins: the next use reads the pragma again, and the rest of the request
    /// trusts what it read.
    pub(super) fn begin_request(&mut self) {
        self.look = Look::InRequest;
    }

    /// The request ended: every use reads the pragma again.
    pub(super) fn end_request(&mut self) {
        self.look = Look::EveryUse;
    }

    /// Drops every entry if the database changed since they were read.
    pub(super) fn check(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let changes = conn.total_changes();
        if self.look == Look::Looked && self.seen.is_some_and(|(_, seen)| seen == changes) {
            return Ok(());
        }
        let version = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.look == Look::InRequest {
            self.look = Look::Looked;
        }
        let now = Some((version, changes));
        if self.seen != now {
            self.forget();
            self.seen = now;
        }
        Ok(())
    }

    fn forget(&mut self) {
        self.realm_version = None;
        self.buckets.clear();
    }

    fn make_room(&mut self) {
        if self.buckets.len() >= MAX_ENTRIES {
            self.buckets = HashMap::new();
        }
    }

    /// The realm version as `read` reads it, or as remembered while the database is
    /// unchanged.
    pub(super) fn realm_version(
        &mut self,
        read: &mut dyn FnMut() -> StoreResult<i64>,
    ) -> StoreResult<i64> {
        if let Some(version) = self.realm_version {
            return Ok(version);
        }
        let version = read()?;
        self.realm_version = Some(version);
        Ok(version)
    }

    /// The bucket's newest events within its window at `now`, newest first. An entry read
    /// earlier under the same rule answers for any later `now`: no event was added or
    /// removed since, and a later window only drops its oldest events.
    pub(super) fn recent(
        &mut self,
        bucket: &Bucket,
        now: f64,
        read: &mut dyn FnMut() -> StoreResult<Vec<f64>>,
    ) -> StoreResult<Vec<f64>> {
        if let Some(events) = self.buckets.get(&bucket.key)
            && events.rule == bucket.rule
            && events.read_at <= now
        {
            let since = now - bucket.rule.window;
            return Ok(events
                .newest_first
                .iter()
                .copied()
                .take_while(|&at| at >= since)
                .collect());
        }
        let newest_first = read()?;
        self.make_room();
        self.buckets.insert(
            bucket.key.clone(),
            Events {
                rule: bucket.rule,
                read_at: now,
                newest_first: newest_first.clone(),
            },
        );
        Ok(newest_first)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::sqlite::Sqlite;
    use crate::store::{
        Admission, Attempt, AuditEntry, AuditEvent, Bucket, Limits, Maintenance, NewUser,
        RealmChanges, Realms, Role, Rule, Users,
    };

    fn rename(store: &Sqlite, realm_id: i64, name: &str) {
        let changes = RealmChanges {
            name: Some(name.to_owned()),
            ..RealmChanges::default()
        };
        let audit = AuditEntry::new(AuditEvent::RealmChanged, Some(realm_id), None);
        store.update_realm(realm_id, &changes, &audit).unwrap();
    }

    /// A request thread's connection and an admin's, to one new database.
    fn two_connections() -> (tempfile::TempDir, Sqlite, Sqlite) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (worker, admin) = (Sqlite::open(&path).unwrap(), Sqlite::open(&path).unwrap());
        (dir, worker, admin)
    }

    fn name(store: &Sqlite) -> String {
        store.realm_by_subdomain("").unwrap().unwrap().name
    }

    /// In a request the database is looked at once, at the first use: a change committed
    /// before the request began is seen, one committed while it runs at the next request,
    /// and the connection's own writes at once. After the request, at every use.
    #[test]
    fn a_request_looks_at_the_database_once() {
        let (_dir, worker, admin) = two_connections();
        let root = worker.realm_by_subdomain("").unwrap().unwrap();
        rename(&admin, root.id, "Before");
        worker.begin_request();
        assert_eq!(name(&worker), "Before");
        rename(&admin, root.id, "During");
        assert_eq!(name(&worker), "Before");
        worker.begin_request();
        assert_eq!(name(&worker), "During");
        rename(&worker, root.id, "Own");
        assert_eq!(name(&worker), "Own");
        assert_eq!(worker.realm_by_id(root.id).unwrap().unwrap().name, "Own");
        // After the request, every use looks again.
        worker.end_request();
        rename(&admin, root.id, "After");
        assert_eq!(name(&worker), "After");
    }

    #[test]
    fn a_change_by_any_connection_is_seen_at_the_next_read() {
        let (_dir, worker, admin) = two_connections();
        let root = worker.realm_by_subdomain("").unwrap().unwrap();
        rename(&admin, root.id, "Renamed");
        assert_eq!(name(&worker), "Renamed");
        assert_eq!(
            worker.realm_by_id(root.id).unwrap().unwrap().name,
            "Renamed"
        );
        rename(&worker, root.id, "Own");
        assert_eq!(name(&worker), "Own");
        assert_eq!(worker.realm_by_id(root.id).unwrap().unwrap().name, "Own");

        // A full bucket, refused from the cache, then cleared by another connection.
        let user = NewUser {
            email: "iago@example.com".into(),
            full_name: "Iago".into(),
            role: Role::Member,
            password: None,
            is_active: true,
            api_key: None,
        };
        let [id] = admin.create_users(root.id, &[user], "t").unwrap()[..] else {
            panic!()
        };
        let attempt = |now| Attempt {
            address: None,
            username: Some(Bucket {
                key: "user:iago@example.com".into(),
                rule: Rule {
                    limit: 1,
                    window: 100.0,
                },
            }),
            now,
        };
        assert!(matches!(
            worker.admit(&attempt(1.0)).unwrap(),
            Admission::Admitted { .. }
        ));
        for now in [2.0, 3.0] {
            assert!(matches!(
                worker.admit(&attempt(now)).unwrap(),
                Admission::UsernameFull { .. }
            ));
        }
        let audit = AuditEntry::new(AuditEvent::PasswordChanged, Some(root.id), Some(id));
        admin
            .set_password(id, "hash", "user:iago@example.com", &audit)
            .unwrap();
        assert!(matches!(
            worker.admit(&attempt(4.0)).unwrap(),
            Admission::Admitted { .. }
        ));
        // Past the window, the cached events no longer fill the bucket.
        assert!(matches!(
            worker.admit(&attempt(5.0)).unwrap(),
            Admission::UsernameFull { .. }
        ));
        assert!(matches!(
            worker.admit(&attempt(105.0)).unwrap(),
            Admission::Admitted { .. }
        ));
    }
}
