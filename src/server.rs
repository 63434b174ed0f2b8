//! `zulip-auth serve`: a validated [`ServeConfig`], then [`run`], which binds (or takes the
//! socket systemd passed), prints the `listening on` line, tells systemd it is ready, and
//! keeps the worker pool going until a signal asks for a graceful stop (exit 0) or tiny_http
//! fails (exit 1, for systemd to restart it).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use listenfd::ListenFd;
use log::{info, warn};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tiny_http::Server;

use crate::api::{Api, ApiConfig};
use crate::auth::password::{Argon2Config, Hasher};
use crate::clock;
use crate::error::Error;
use crate::http::{self, PoolSize, StopReason};
use crate::store::{AuditEntry, AuditEvent, Database, NewUser, Role, Store};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: Database,
    pub listen: SocketAddr,
    pub workers: usize,
    pub argon2: Argon2Config,
    pub api: ApiConfig,
    /// Serve a throw-away database seeded with demo users instead of `db`.
    pub demo: bool,
    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    pub shutdown_timeout: Duration,
    /// How long audit rows are kept.
    pub audit_retention: Duration,
}

/// The demo's users: Zulip's documentation logs in as iago with this password, so the seed
/// keeps it although it would fail the password policy (SPEC §10.3).
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
        Some(dir) => Database::Sqlite(dir.path().join("demo.sqlite3")),
        None => config.db.clone(),
    };
    let store = Store::open(&db)?;
    let hasher = Arc::new(Hasher::new(config.argon2));
    if config.demo {
        seed_demo(&store, &hasher)?;
    }
    // The pruner keeps the main thread's connection.
    let store_for_pruner = store;

    // Before anything announces the server: a signal must find the handler in place.
    let (events, stop_reason) = mpsc::channel();
    forward_signals(events.clone())?;
    let listener = listener(config.listen)?;
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
    let size = PoolSize {
        front: config.workers,
        hashing: config.workers,
    };
    let workers = http::spawn_workers(
        &server,
        size,
        move || {
            Ok(Api {
                store: Store::open_for_requests(&db).map_err(|e| e.to_string())?,
                hasher: Arc::clone(&hasher),
                config: Arc::clone(&api_config),
            })
        },
        &stopping,
        &events,
    );
    spawn_pruner(
        store_for_pruner,
        config.api.limits.longest_window(),
        config.audit_retention,
    );
    info!(
        "serving with {} hashing and as many front threads, argon2 m={} t={} p={}",
        config.workers, config.argon2.m_kib, config.argon2.t, config.argon2.p
    );
    // Readiness for systemd's Type=notify; a no-op without NOTIFY_SOCKET.
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        warn!("cannot notify systemd of readiness: {e}");
    }

    match stop_reason.recv().expect("this function holds a sender") {
        StopReason::Fatal(reason) => Err(Error::Invalid(reason)),
        StopReason::Signal(signal) => {
            info!(
                "signal {signal}: finishing requests in flight (at most {} s)",
                config.shutdown_timeout.as_secs()
            );
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
            stopping.store(true, Ordering::SeqCst);
            // Queued after every request already received: each front thread serves those,
            // then takes one of these and stops; the hashing threads finish their queue.
            for _ in 0..size.front {
                server.unblock();
            }
            let (finished, all_finished) = mpsc::channel();
            thread::spawn(move || {
                for worker in workers {
                    let _ = worker.join();
                }
                let _ = finished.send(());
            });
            if all_finished.recv_timeout(config.shutdown_timeout).is_err() {
                warn!("shutdown timeout reached with requests still in flight");
            }
            info!("stopped");
            Ok(())
        }
    }
}

/// The socket systemd passed (socket activation), else a new one bound to `address`.
fn listener(address: SocketAddr) -> Result<TcpListener, Error> {
    let passed = ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|e| Error::Io("cannot use the socket passed in LISTEN_FDS".into(), e))?;
    match passed {
        Some(listener) => Ok(listener),
        None => TcpListener::bind(address)
            .map_err(|e| Error::Io(format!("cannot listen on {address}"), e)),
    }
}

/// Turns SIGTERM and SIGINT into a graceful stop.
fn forward_signals(events: mpsc::Sender<StopReason>) -> Result<(), Error> {
    let mut signals = Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Error::Io("cannot install signal handlers".into(), e))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = events.send(StopReason::Signal(signal));
            }
        })
        .map_err(|e| Error::Io("cannot start the signal thread".into(), e))?;
    Ok(())
}

/// Deletes rate-limit events no window can see any more and audit rows past their
/// retention, once a minute and off the request path, so the tables stay small.
fn spawn_pruner(store: Store, longest_window: Option<f64>, audit_retention: Duration) {
    thread::Builder::new()
        .name("pruner".into())
        .spawn(move || {
            loop {
                let now = clock::now();
                let pruned = store.prune(
                    now - longest_window.unwrap_or(0.0),
                    now - audit_retention.as_secs_f64(),
                );
                if let Err(e) = pruned {
                    warn!("pruning old rate-limit and audit rows failed: {e}");
                }
                thread::sleep(PRUNE_INTERVAL);
            }
        })
        .expect("the pruner thread can be spawned");
}

const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

fn seed_demo(store: &Store, hasher: &Hasher) -> Result<(), Error> {
    let root = store.require_realm("")?;
    let changes = crate::store::RealmChanges {
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
