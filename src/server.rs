//! `zulip-auth serve`: a validated [`ServeConfig`], then [`run`], which binds (or takes the
//! socket systemd passed), prints the `listening on` line, tells systemd it is ready, and
//! keeps the worker pool going until a signal asks for a graceful stop (exit 0) or tiny_http
//! fails (exit 1, for systemd to restart it).

use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use listenfd::ListenFd;
use log::{info, warn};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tempfile::TempDir;
use tiny_http::{Listener, Server};

use crate::api::{Api, ApiConfig};
use crate::auth::password::{Argon2Config, Hasher};
use crate::auth::ratelimit::Rule;
use crate::auth::reset;
use crate::clock;
use crate::error::{Error, invalid};
use crate::gate;
use crate::http::{self, PoolSize, StopReason};
use crate::mail::{MailSettings, Postman};
use crate::metrics;
use crate::reset_desk::ResetDesk;
use crate::store::{AuditEntry, AuditEvent, Database, NewUser, Prune, Role, Store};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: Database,
    pub listen: Listen,
    pub workers: usize,
    pub argon2: Argon2Config,
    pub api: ApiConfig,
    /// Serve a throw-away database seeded with demo users instead of `db`.
    pub demo: bool,
    /// Serve `--dev` on a listener that is not loopback.
    pub dev_allow_remote: bool,
    /// How long requests in flight may take to finish after SIGTERM or SIGINT.
    pub shutdown_timeout: Duration,
    /// How long audit rows are kept.
    pub audit_retention: Duration,
    /// Where to serve `/metrics`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// Reset mail; `None` without `--smtp-url`.
    pub mail: Option<MailSettings>,
    pub reset_link_lifetime: Duration,
}

/// Where to listen: a TCP address, or `unix:PATH`, a Unix socket for a front proxy on the
/// same machine, whose forwarding headers are trusted (wire.md §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Listen, String> {
        match text.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => Ok(Listen::Unix(PathBuf::from(path))),
            Some(_) => Err(format!("{text:?}: expected unix:/absolute/path")),
            None => text
                .parse()
                .map(Listen::Tcp)
                .map_err(|_| format!("{text:?}: expected HOST:PORT or unix:/path")),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(address) => write!(f, "http://{address}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Listen {
    /// Whether only this machine can reach it: a Unix socket is reached through the proxy,
    /// so it counts as remote.
    pub fn is_loopback(&self) -> bool {
        matches!(self, Listen::Tcp(address) if address.ip().is_loopback())
    }
}

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

pub fn run(config: ServeConfig) -> Result<(), Error> {
    http::exit_when_tiny_http_panics();
    let descriptors = http::raise_descriptor_limit();
    // Kept alive until the server stops, so the demo database is removed afterwards.
    let demo_dir = config.demo.then(DemoDir::create).transpose()?;
    let db = match &demo_dir {
        Some(dir) => Database::Sqlite(dir.database()),
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
    let (listener, local) = listener(&config.listen)?;
    if config.api.dev && !config.dev_allow_remote && !local.is_loopback() {
        return invalid!(
            "--dev hands out keys without passwords: refused on {local}, which is not loopback (add --dev-allow-remote to insist)"
        );
    }
    let connection_budget = gate::start(&listener, descriptors)?;
    let server = Arc::new(
        Server::from_listener(listener, None)
            .map_err(|e| Error::Invalid(format!("cannot start the HTTP server: {e}")))?,
    );
    // tiny_http deletes a Unix socket's file when its server is dropped; the process never
    // drops it, so a socket of systemd's survives a restart.
    std::mem::forget(Arc::clone(&server));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Io("cannot write to stdout".into(), e))?;
    log_settings(&config, &db, descriptors, connection_budget);
    if let Some(address) = config.metrics_listen {
        metrics::serve(address)?;
    }
    if config.api.dev {
        warn!(
            "DEVELOPMENT MODE (--dev): dev_fetch_api_key hands out any user's key, an owner's too, without a password; never use it in production"
        );
    }
    if let (true, Listen::Tcp(address)) = (config.demo, &local) {
        info!(
            "demo: curl -sSX POST http://{address}/api/v1/fetch_api_key --data-urlencode username=iago@zulip.com --data-urlencode password={DEMO_PASSWORD}"
        );
    }

    let mut api_config = config.api.clone();
    if let Some(mail) = &config.mail {
        let postman = Postman::new(mail).map_err(Error::Invalid)?;
        api_config.reset_desk = Some(ResetDesk::start(&db, postman, config.reset_link_lifetime)?);
        info!(
            "reset mail through {}:{}, links valid {} s",
            mail.url.host,
            mail.url.port,
            config.reset_link_lifetime.as_secs()
        );
    }
    let api_config = Arc::new(api_config);
    let stopping = Arc::new(AtomicBool::new(false));
    let size = config.pool_size();
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
    spawn_pruner(store_for_pruner, &config);
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

/// The socket systemd passed (socket activation, TCP or Unix), else a new one bound to
/// `listen`; with what it listens on.
fn listener(listen: &Listen) -> Result<(Listener, Listen), Error> {
    let passed_error = |e| Error::Io("cannot use the socket passed in LISTEN_FDS".into(), e);
    let mut passed = ListenFd::from_env();
    let tcp = match passed.take_tcp_listener(0) {
        Ok(tcp) => tcp,
        Err(_) => {
            if let Some(unix) = passed.take_unix_listener(0).map_err(passed_error)? {
                let path = unix
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_owned))
                    .unwrap_or_default();
                return Ok((unix.into(), Listen::Unix(path)));
            }
            None
        }
    };
    if let Some(tcp) = tcp {
        let address = tcp.local_addr().map_err(passed_error)?;
        return Ok((tcp.into(), Listen::Tcp(address)));
    }
    match listen {
        Listen::Tcp(address) => {
            let tcp = TcpListener::bind(address)
                .map_err(|e| Error::Io(format!("cannot listen on {address}"), e))?;
            let bound = tcp
                .local_addr()
                .map_err(|e| Error::Io("cannot read the bound address".into(), e))?;
            Ok((tcp.into(), Listen::Tcp(bound)))
        }
        Listen::Unix(path) => {
            remove_stale_socket(path);
            let unix = UnixListener::bind(path)
                .map_err(|e| Error::Io(format!("cannot listen on {}", path.display()), e))?;
            Ok((unix.into(), listen.clone()))
        }
    }
}

/// A socket file that nothing listens on any more (a previous run was killed) would make
/// binding fail; anything else at the path is left for bind to refuse.
fn remove_stale_socket(path: &Path) {
    let is_socket = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && UnixStream::connect(path).is_err() {
        let _ = fs::remove_file(path);
    }
}

/// What the operator needs to know the server is the one they meant to start.
fn log_settings(config: &ServeConfig, db: &Database, descriptors: u64, connection_budget: usize) {
    let database = if config.demo {
        format!("temporary ({db})")
    } else {
        db.to_string()
    };
    let rule = |rule: Option<Rule>| {
        rule.map_or_else(
            || "off".to_owned(),
            |r| format!("{}/{}s", r.limit, r.window),
        )
    };
    let proxies = if config.api.trusted_proxies.is_empty() {
        "none".to_owned()
    } else {
        let names: Vec<String> = config
            .api
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        names.join(", ")
    };
    let size = config.pool_size();
    info!(
        "zulip-auth {}: database {database}; limits per username {}, per address {}; trusted proxies {proxies} (and any peer on a Unix socket); {} front and {} hashing threads, at most {} logins queued; argon2 m={} t={} p={}; {descriptors} descriptors, of which {connection_budget} for connections",
        env!("CARGO_PKG_VERSION"),
        rule(config.api.limits.per_username),
        rule(config.api.limits.per_address),
        size.front,
        size.hashing,
        http::queue_capacity(size.hashing),
        config.argon2.m_kib,
        config.argon2.t,
        config.argon2.p,
    );
}

impl ServeConfig {
    fn pool_size(&self) -> PoolSize {
        PoolSize {
            front: self.workers,
            hashing: self.workers,
        }
    }
}

/// The demo's throw-away database directory, removed when the server stops. SIGKILL leaves
/// no chance to clean up, so each live demo holds a lock on its directory, and the next
/// demo removes every directory whose lock is free.
struct DemoDir {
    dir: TempDir,
    _lock: File,
}

const DEMO_PREFIX: &str = "zulip-auth-demo-";
const DEMO_DATABASE: &str = "demo.sqlite3";

impl DemoDir {
    fn create() -> Result<DemoDir, Error> {
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

    fn database(&self) -> PathBuf {
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

/// Deletes rate-limit events no window can see any more, audit rows past their retention,
/// sign-in steps past their time, and sessions and reset links that can no longer be used,
/// once a minute and off the request path, so the tables stay small.
fn spawn_pruner(store: Store, config: &ServeConfig) {
    let longest_window = config
        .api
        .limits
        .longest_window()
        .unwrap_or(0.0)
        .max(reset::LONGEST_LIMIT_WINDOW);
    let (audit_retention, sessions) = (config.audit_retention, config.api.sessions);
    thread::Builder::new()
        .name("pruner".into())
        .spawn(move || {
            loop {
                let now = clock::now();
                let pruned = store.prune(&Prune {
                    now,
                    events_before: now - longest_window,
                    audit_before: now - audit_retention.as_secs_f64(),
                    sessions,
                });
                if let Err(e) = pruned {
                    warn!(
                        "pruning old rate-limit, audit, sign-in step and session rows failed: {e}"
                    );
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
