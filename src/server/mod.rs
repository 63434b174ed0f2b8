//! `zulip-auth serve`: a validated [`ServeConfig`], then [`run`]: [`start`] binds (or takes
//! the socket systemd passed), prints the `listening on` line, starts the worker pool and
//! tells systemd it is ready; [`Running::wait`] keeps it going until a signal asks for a
//! graceful stop (exit 0) or tiny_http fails (exit 1, for systemd to restart it).

mod demo;
mod listen;
mod metrics;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{info, warn};
use sd_notify::NotifyState;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tiny_http::Server;

use crate::api::{Api, ApiConfig};
use crate::auth::oidc::RelyingParty;
use crate::auth::password::{Argon2Config, Hasher};
use crate::auth::ratelimit::Rule;
use crate::auth::{reset, retention};
use crate::clock;
use crate::deadline::{self, Watchdog};
use crate::error::{Error, invalid};
use crate::gate;
use crate::http::{self, PoolSize, StopReason};
use crate::mail::{MailSettings, Postman};
use crate::reset_desk::ResetDesk;
use crate::store::{Database, Prune, Store};
pub use demo::DEMO_PASSWORD;
use demo::DemoDir;
pub use listen::{Listen, SocketArgs};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: Database,
    pub listen: Listen,
    /// The Unix socket's mode and group.
    pub socket: SocketArgs,
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

pub fn run(config: &ServeConfig) -> Result<(), Error> {
    start(config)?.wait(config)
}

/// A server started: what [`Running::wait`] needs to stop it.
pub struct Running {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    stop_reason: Receiver<StopReason>,
    /// Kept until the server stops, so the demo database is removed afterwards.
    _demo: Option<DemoDir>,
}

/// Opens the store, binds, announces the server and starts its threads.
pub fn start(config: &ServeConfig) -> Result<Running, Error> {
    http::exit_when_tiny_http_panics();
    let descriptors = http::raise_descriptor_limit();
    let demo = config.demo.then(DemoDir::create).transpose()?;
    let db = match &demo {
        Some(dir) => Database::Sqlite(dir.database()),
        None => config.db.clone(),
    };
    let store = Store::open(&db)?;
    let hasher = Arc::new(Hasher::new(config.argon2));
    if config.demo {
        demo::seed(&store, &hasher)?;
    }
    // Before anything announces the server: a signal must find the handler in place.
    let (events, stop_reason) = mpsc::channel();
    forward_signals(events.clone())?;
    let (listener, local) = listen::bind(&config.listen, &config.socket)?;
    if config.api.dev && !config.dev_allow_remote && !local.is_loopback() {
        return invalid!(
            "--dev hands out keys without passwords: refused on {local}, which is not loopback (add --dev-allow-remote to insist)"
        );
    }
    deadline::set_pause(&listener)?;
    let watchdog = Watchdog::start(&listener)?;
    let connection_budget = gate::start(&listener, descriptors)?;
    let server = Arc::new(
        Server::from_listener(listener, None)
            .map_err(|e| Error::Startup(format!("cannot start the HTTP server: {e}")))?,
    );
    // tiny_http deletes a Unix socket's file when its server is dropped; the process never
    // drops it, so a socket of systemd's survives a restart.
    std::mem::forget(Arc::clone(&server));
    announce(config, &local, &db, descriptors, connection_budget)?;
    let api_config = Arc::new(config.api.clone());
    let reset_desk = reset_desk(config, &db)?;
    let stopping = Arc::new(AtomicBool::new(false));
    // At most all front threads but one wait for identity providers, so that a stalled
    // provider delays no other page (web.md §10.4).
    let oidc = Arc::new(RelyingParty::new(
        config.pool_size().front.saturating_sub(1),
    ));
    let workers = http::spawn_workers(
        &server,
        config.pool_size(),
        move || {
            Ok(Api {
                store: Store::open_for_requests(&db).map_err(|e| e.to_string())?,
                hasher: Arc::clone(&hasher),
                config: Arc::clone(&api_config),
                reset_desk: reset_desk.clone(),
                oidc: Arc::clone(&oidc),
            })
        },
        watchdog,
        &stopping,
        &events,
    );
    // The pruner keeps the first connection.
    spawn_pruner(store, config)?;
    // Readiness for systemd's Type=notify; a no-op without NOTIFY_SOCKET.
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        warn!("cannot notify systemd of readiness: {e}");
    }
    Ok(Running {
        server,
        workers,
        stopping,
        stop_reason,
        _demo: demo,
    })
}

impl Running {
    /// Serves until a signal (a graceful stop, `Ok`) or a fatal error of the pool.
    pub fn wait(self, config: &ServeConfig) -> Result<(), Error> {
        let signal = match self.stop_reason.recv() {
            Ok(StopReason::Signal(signal)) => signal,
            Ok(StopReason::Fatal(reason)) => return Err(Error::Startup(reason)),
            Err(_) => return Err(Error::Startup("the worker pool vanished".into())),
        };
        info!(
            "signal {signal}: finishing requests in flight (at most {} s)",
            config.shutdown_timeout.as_secs()
        );
        let _ = sd_notify::notify(&[NotifyState::Stopping]);
        self.stopping.store(true, Ordering::SeqCst);
        // Queued after every request already received: the front threads answer those, then
        // stop; the queued and hashing threads finish what they hold.
        http::stop_taking(&self.server, config.pool_size());
        let (finished, all_finished) = mpsc::channel();
        let workers = self.workers;
        let joined = thread::Builder::new()
            .name("stopping".into())
            .spawn(move || {
                for worker in workers {
                    let _ = worker.join();
                }
                let _ = finished.send(());
            });
        if joined.is_err() || all_finished.recv_timeout(config.shutdown_timeout).is_err() {
            warn!("shutdown timeout reached with requests still in flight");
        }
        info!("stopped");
        Ok(())
    }
}

/// The `listening on` line on stdout, then the log lines of what is served.
fn announce(
    config: &ServeConfig,
    local: &Listen,
    db: &Database,
    descriptors: u64,
    connection_budget: usize,
) -> Result<(), Error> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {local}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Io("cannot write to stdout".into(), e))?;
    log_settings(config, db, descriptors, connection_budget);
    if let Some(address) = config.metrics_listen {
        metrics::serve(address)?;
    }
    if config.api.dev {
        warn!(
            "DEVELOPMENT MODE (--dev): dev_fetch_api_key hands out any user's key, an owner's too, without a password; never use it in production"
        );
    }
    if let (true, Listen::Tcp(address)) = (config.demo, local) {
        info!(
            "demo: curl -sSX POST http://{address}/api/v1/fetch_api_key --data-urlencode username=iago@zulip.com --data-urlencode password={DEMO_PASSWORD}"
        );
    }
    Ok(())
}

/// The reset desk, running when mail is configured.
fn reset_desk(config: &ServeConfig, db: &Database) -> Result<Option<ResetDesk>, Error> {
    let Some(mail) = &config.mail else {
        return Ok(None);
    };
    let postman = Postman::new(mail).map_err(Error::Startup)?;
    let desk = ResetDesk::start(db, postman, config.reset_link_lifetime)?;
    info!(
        "reset mail through {}:{}, links valid {} s",
        mail.url.host,
        mail.url.port,
        config.reset_link_lifetime.as_secs()
    );
    Ok(Some(desk))
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

/// Deletes rate-limit events no window can see any more, audit rows past their retention
/// (but those [`retention`] keeps), sign-in steps past their time, and sessions and reset
/// links that can no longer be used, once a minute and off the request path, so the tables
/// stay small.
fn spawn_pruner(store: Store, config: &ServeConfig) -> Result<(), Error> {
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
            crate::http::lower_priority();
            let mut audit = retention::AuditWalk::default();
            loop {
                // Batch after batch until none is left, with a pause between them for the
                // logins waiting for the write lock. A failed batch ends the round; the next
                // round tries again.
                loop {
                    let now = clock::now();
                    match store.prune(&Prune {
                        now,
                        events_before: now - longest_window,
                        sessions,
                    }) {
                        Ok(0) => break,
                        Ok(_) => thread::sleep(retention::BATCH_PAUSE),
                        Err(e) => {
                            warn!(
                                "pruning old rate-limit, sign-in step and session rows failed: {e}"
                            );
                            break;
                        }
                    }
                }
                match audit.round(&store, audit_retention) {
                    Ok(0) => {}
                    Ok(n) => info!("pruned {n} audit rows past the retention"),
                    Err(e) => warn!("pruning old audit rows failed: {e}"),
                }
                thread::sleep(PRUNE_INTERVAL);
            }
        })
        .map_err(|e| Error::Io("cannot start the pruner thread".into(), e))?;
    Ok(())
}

const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
