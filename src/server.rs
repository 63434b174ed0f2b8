//! `zulip-auth serve`: a validated [`ServeConfig`], then [`run`], which binds, prints the
//! `listening on` line and keeps the worker pool going until something fatal happens.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use log::{info, warn};
use tiny_http::Server;

use crate::api::{Api, ApiConfig};
use crate::auth::password::{Argon2Config, Hasher};
use crate::auth::ratelimit;
use crate::error::Error;
use crate::http;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: PathBuf,
    pub listen: SocketAddr,
    pub workers: usize,
    pub argon2: Argon2Config,
    pub api: ApiConfig,
    /// Serve a throw-away database seeded with demo users instead of `db`.
    pub demo: bool,
}

/// The demo's users: Zulip's documentation logs in as iago with this password, so the seed
/// keeps it although it would fail the password policy (SPEC §10.3).
pub const DEMO_PASSWORD: &str = "abcd1234";
const DEMO_USERS: [(&str, &str, i64); 5] = [
    ("iago@zulip.com", "Iago", 200),
    ("desdemona@zulip.com", "Desdemona", 100),
    ("hamlet@zulip.com", "King Hamlet", 400),
    ("othello@zulip.com", "Othello, the Moor of Venice", 400),
    ("polonius@zulip.com", "Polonius", 600),
];

pub fn run(config: ServeConfig) -> Result<(), Error> {
    // Kept alive until the server stops, so the demo database is removed afterwards.
    let demo_dir = if config.demo {
        Some(
            tempfile::tempdir()
                .map_err(|e| Error::Io("cannot create the demo database".into(), e))?,
        )
    } else {
        None
    };
    let db = match &demo_dir {
        Some(dir) => dir.path().join("demo.sqlite3"),
        None => config.db.clone(),
    };
    let store = Store::open(&db)?;
    let hasher = Arc::new(Hasher::new(config.argon2));
    if config.demo {
        seed_demo(&store, &hasher)?;
    }
    // The pruner keeps the main thread's connection.
    let store_for_pruner = store;

    let listener = TcpListener::bind(config.listen)
        .map_err(|e| Error::Io(format!("cannot listen on {}", config.listen), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Io("cannot read the bound address".into(), e))?;
    let server = Arc::new(
        Server::from_listener(listener, None)
            .map_err(|e| Error::Invalid(format!("cannot start the HTTP server: {e}")))?,
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Io("cannot write to stdout".into(), e))?;
    if config.demo {
        info!(
            "demo: curl -sSX POST http://{local}/api/v1/fetch_api_key --data-urlencode username=iago@zulip.com --data-urlencode password={DEMO_PASSWORD}"
        );
    }

    let api_config = Arc::new(config.api.clone());
    let stopping = Arc::new(AtomicBool::new(false));
    let (fatal_tx, fatal_rx) = mpsc::channel();
    let _workers = http::spawn_workers(
        &server,
        config.workers,
        move || {
            Ok(Api {
                store: Store::open(&db).map_err(|e| e.to_string())?,
                hasher: Arc::clone(&hasher),
                config: Arc::clone(&api_config),
            })
        },
        &stopping,
        &fatal_tx,
    );
    if let Some(window) = config.api.limits.longest_window() {
        spawn_pruner(store_for_pruner, window);
    }
    info!(
        "serving with {} workers, argon2 m={} t={} p={}",
        config.workers, config.argon2.m_kib, config.argon2.t, config.argon2.p
    );
    let fatal = fatal_rx
        .recv()
        .expect("the workers hold a sender while they run");
    Err(Error::Invalid(fatal.0))
}

/// Deletes rate-limit events no window can see any more, once a minute and off the request
/// path, so buckets never touched again do not accumulate.
fn spawn_pruner(store: Store, window: f64) {
    thread::Builder::new()
        .name("pruner".into())
        .spawn(move || {
            loop {
                if let Err(e) = store.prune_events(ratelimit::now() - window) {
                    warn!("pruning rate-limit history failed: {e}");
                }
                thread::sleep(PRUNE_INTERVAL);
            }
        })
        .expect("the pruner thread can be spawned");
}

const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

fn seed_demo(store: &Store, hasher: &Hasher) -> Result<(), Error> {
    let root = store.require_realm("")?;
    store.update_realm(
        &root,
        &crate::store::RealmChanges {
            name: Some("Zulip Dev".into()),
            ..Default::default()
        },
    )?;
    let hash = hasher.hash(DEMO_PASSWORD);
    for (email, name, role) in DEMO_USERS {
        store.create_user(&root, email, name, role, &hash)?;
    }
    Ok(())
}
