//! Prometheus metrics: what the server counts.
//!
//! The counters are process-wide and always kept (an atomic add each); only
//! `serve --metrics-listen ADDR` shows them, on a listener of its own (`server::metrics`) so
//! that `/metrics` never faces the public proxy. No label holds an email, a key or an address: routes are
//! the route table's paths (anything else is `other`), methods and outcomes are the login
//! module's plain labels (`Method::label`, `LoginRefusal::label`).
//!
//! A leaf: it imports nothing of the program, so that every layer may count without an
//! arrow back up.

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use clap::Args;
use log::warn;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `serve --metrics-listen`, flattened into the serve options.
#[derive(Debug, Args)]
pub struct MetricsArg {
    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of its own (keep it
    /// off the public proxy; 127.0.0.1:9992, say) [default: off]
    #[arg(long, env = "ZULIP_AUTH_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbErrorLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    login_seconds: Family<MethodLabel, Histogram>,
    verification_seconds: Histogram,
    hashing_queue: Gauge,
    hashing_queue_capacity: Gauge,
    requests: Family<RequestLabels, Counter>,
    db_errors: Family<DbErrorLabel, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The `kind` label of `zulip_auth_db_errors_total`: unavailable (a 503), refused and
/// key_in_use (500s).
const DB_ERROR_KINDS: [&str; 3] = ["unavailable", "refused", "key_in_use"];

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zulip_auth");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Finished login attempts by way in and outcome",
            logins.clone(),
        );
        // From a cached login (a few ms) to a queue of logins behind imported Zulip hashes.
        let login_seconds = Family::<MethodLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 12))
        });
        registry.register(
            "login_duration_seconds",
            "Time from reading a login request to answering it, queueing included",
            login_seconds.clone(),
        );
        let verification_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 12));
        registry.register(
            "password_verification_duration_seconds",
            "Time of one password verification (argon2, PBKDF2 or the dummy), on a hashing thread",
            verification_seconds.clone(),
        );
        let hashing_queue = Gauge::default();
        registry.register(
            "hashing_queue_depth",
            "Logins waiting for a hashing thread",
            hashing_queue.clone(),
        );
        let hashing_queue_capacity = Gauge::default();
        registry.register(
            "hashing_queue_capacity",
            "Logins the hashing queue holds; when it is full, logins get the overload 429",
            hashing_queue_capacity.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "Answered requests by route (other: not a route) and status",
            requests.clone(),
        );
        let db_errors = Family::<DbErrorLabel, Counter>::default();
        // Shown at 0 from the start, so a rate over them needs no absent() guard.
        for kind in DB_ERROR_KINDS {
            let _ = db_errors.get_or_create(&DbErrorLabel { kind });
        }
        registry.register(
            "db_errors",
            "Store faults answered with a 503 (unavailable) or a 500 (refused, key_in_use)",
            db_errors.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("ZULIP_AUTH_COMMIT"),
            })
            .set(1);
        registry.register("build_info", "The running version, always 1", build);
        Metrics {
            registry,
            logins,
            login_seconds,
            verification_seconds,
            hashing_queue,
            hashing_queue_capacity,
            requests,
            db_errors,
        }
    }
}

/// A login that ended, by way in (`api`, `web`, …) and outcome: `success`, `rate_limited`,
/// `invalid_email` or the refusal's reason code in lowercase (`wrong_password`, …).
pub fn login(method: &'static str, outcome: &'static str) {
    METRICS
        .logins
        .get_or_create(&LoginLabels { method, outcome })
        .inc();
}

/// A request answered: by route and status, and its whole time if it was a login (by its
/// way in's label).
pub fn answered(
    route: Option<&'static str>,
    status: u16,
    login: Option<&'static str>,
    took: Duration,
) {
    let route = route.unwrap_or("other");
    METRICS
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    if let Some(method) = login {
        METRICS
            .login_seconds
            .get_or_create(&MethodLabel { method })
            .observe(took.as_secs_f64());
    }
}

/// One password verification's time.
pub fn verification(took: Duration) {
    METRICS.verification_seconds.observe(took.as_secs_f64());
}

/// A login entered the hashing queue.
pub fn queued() {
    METRICS.hashing_queue.inc();
}

/// The hashing queue's size, set when the server starts.
pub fn queue_capacity(capacity: usize) {
    METRICS
        .hashing_queue_capacity
        .set(i64::try_from(capacity).unwrap_or(i64::MAX));
}

/// A hashing thread took a login off the queue.
pub fn dequeued() {
    METRICS.hashing_queue.dec();
}

/// A store fault reached the wire, by its kind (one of [`DB_ERROR_KINDS`]).
pub fn db_error(kind: &'static str) {
    METRICS
        .db_errors
        .get_or_create(&DbErrorLabel { kind })
        .inc();
}

/// Everything, in Prometheus' text format 0.0.4.
pub fn text() -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    if let Err(e) = prometheus_text::encode(&mut text, &METRICS.registry) {
        warn!("metrics: cannot encode: {e}");
    }
    text
}
