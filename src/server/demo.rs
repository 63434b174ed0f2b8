//! `serve --demo`: a throw-away database seeded with Zulip's documented users.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use log::info;
use tempfile::TempDir;

use crate::auth::password::Hasher;
use crate::error::Error;
use crate::store::{AuditEntry, AuditEvent, NewUser, RealmChanges, Role, Store};

/// The demo's users: Zulip's documentation logs in as iago with this password, so the seed
/// keeps it although it would fail the password policy (wire.md §10.3).
pub const DEMO_PASSWORD: &str = "abcd1234";
const DEMO_USERS: [(&str, &str, Role); 5] = [
    ("iago@zulip.com", "Iago", Role::Admin),
    ("desdemona@zulip.com", "Desdemona", Role::Owner),
    ("hamlet@zulip.com", "King Hamlet", Role::Member),
    (
        "othello@zulip.com",
        "Othello, the Moor of Venice",
        Role::Member,
    ),
    ("polonius@zulip.com", "Polonius", Role::Guest),
];

/// The demo's throw-away database directory, removed when the server stops. SIGKILL leaves
/// no chance to clean up, so each live demo holds a lock on its directory, and the next
/// demo removes every directory whose lock is free.
pub struct DemoDir {
    dir: TempDir,
    _lock: File,
}

const DEMO_PREFIX: &str = "zulip-auth-demo-";
const DEMO_DATABASE: &str = "demo.sqlite3";

impl DemoDir {
    pub fn create() -> Result<DemoDir, Error> {
        let complaint = |e| Error::Io("cannot create the demo database".into(), e);
        remove_abandoned_demos();
        let dir = tempfile::Builder::new()
            .prefix(DEMO_PREFIX)
            .tempdir()
            .map_err(complaint)?;
        let lock = File::create(dir.path().join("lock")).map_err(complaint)?;
        if !try_lock(&lock) {
            return Err(complaint(std::io::Error::last_os_error()));
        }
        // Created only once locked: a directory with a database and a free lock is abandoned.
        Ok(DemoDir { dir, _lock: lock })
    }

    pub fn database(&self) -> PathBuf {
        self.dir.path().join(DEMO_DATABASE)
    }
}

/// Removes the demo directories of processes that were killed.
fn remove_abandoned_demos() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_string_lossy().starts_with(DEMO_PREFIX);
        if !ours || !path.join(DEMO_DATABASE).exists() {
            continue;
        }
        if File::open(path.join("lock")).is_ok_and(|lock| try_lock(&lock)) {
            info!("removing the abandoned demo database {}", path.display());
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// An exclusive `flock`, without waiting; held until the file is closed.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock takes a descriptor this function borrows for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

pub fn seed(store: &Store, hasher: &Hasher) -> Result<(), Error> {
    let root = store.require_realm("")?;
    let changes = RealmChanges {
        name: Some("Zulip Dev".into()),
        ..Default::default()
    };
    let audit = AuditEntry {
        detail: Some("demo".into()),
        ..AuditEntry::new(AuditEvent::RealmChanged, Some(root.id), None)
    };
    store.update_realm(root.id, &changes, &audit)?;
    let hash = hasher.hash(DEMO_PASSWORD);
    let users: Vec<NewUser> = DEMO_USERS
        .into_iter()
        .map(|(email, name, role)| NewUser {
            email: email.to_owned(),
            full_name: name.to_owned(),
            role,
            password: Some(hash.clone()),
            is_active: true,
            api_key: None,
        })
        .collect();
    store.create_users(root.id, &users, "demo")?;
    Ok(())
}
