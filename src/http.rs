//! The HTTP adapter: tiny_http in, tiny_http out, and the limits tiny_http lacks.
//!
//! Two fixed pools of threads serve one tiny_http server, each thread with its own handler
//! state (a SQLite connection). Front threads pull every request, turn it into a plain
//! [`Request`] with a body of at most [`MAX_BODY_BYTES`], and answer the cheap ones; requests
//! that may cost an argon2 computation go through a bounded queue to the hashing threads, or
//! get the overload 429 at once when it is full, so `server_settings` stays fast while logins
//! saturate the cores and no front thread ever waits; peak memory stays `hashing threads × m`.
//! The whole life of each request runs inside `catch_unwind`, and a lost thread, of the pool
//! or of tiny_http, ends the process so that systemd restarts it.
//!
//! Open connections are bounded by [`crate::gate`]. What cannot be guarded here (tiny_http
//! 0.12 has no socket timeouts, no header-size limit, and drains an unread body with one
//! allocation of its declared length) is left to the nginx front; see the README.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use log::{error, info, warn};
use serde::Serialize;
use tiny_http::{Header, Server};

use crate::auth::login::Method;
use crate::error::ApiError;
use crate::metrics;
use crate::site;

/// Bodies above this get 413 (wire.md §3.4).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request as the handlers see it: everything they may read, nothing of tiny_http.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub query: String,
    /// The `Host` header, or `""`.
    pub host: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    /// The `Cookie` header, for the web pages.
    pub cookie: Option<String>,
    /// The socket's peer, before any proxy header is considered; `None` over a Unix socket.
    pub peer: Option<IpAddr>,
    /// Came over the Unix socket, which only the front proxy may open (wire.md §8.1): its
    /// forwarding headers name the client.
    pub over_unix_socket: bool,
    pub forwarded_for: Option<String>,
    pub real_ip: Option<String>,
    pub body: Vec<u8>,
}

impl Request {
    /// The client's address (wire.md §8.1): the peer, unless the request came through a trusted
    /// front (the Unix socket, or a TCP peer that is a trusted proxy); then
    /// the right-most `X-Forwarded-For` entry that is not itself trusted, else `X-Real-IP`
    /// when `X-Forwarded-For` is absent, else the peer.
    pub fn client_addr(&self, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
        let trusted_front = match self.peer {
            Some(peer) => trusted_proxies.contains(&peer),
            None => self.over_unix_socket,
        };
        if !trusted_front {
            return self.peer;
        }
        let forwarded = match &self.forwarded_for {
            Some(list) => list
                .rsplit(',')
                .map(str::trim)
                .find(|entry| {
                    entry
                        .parse()
                        .map_or(true, |ip| !trusted_proxies.contains(&ip))
                })
                .and_then(|entry| entry.parse().ok()),
            None => self
                .real_ip
                .as_deref()
                .and_then(|ip| ip.trim().parse().ok()),
        };
        forwarded.or(self.peer)
    }
}

/// What a handler learned that belongs in the access log, never in the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogContext {
    pub realm: Option<String>,
    pub user_id: Option<i64>,
    pub client: Option<IpAddr>,
    /// A stable reason code for a failed authentication, for fail2ban-style tools.
    pub failure: Option<&'static str>,
    /// Requests too frequent to log one line each (health checks).
    pub quiet: bool,
    /// The route table's path, for the metrics (`None`: not a route).
    pub route: Option<&'static str>,
    /// The way in, when the request was a login (its time is the login latency metric).
    pub login: Option<Method>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub log: LogContext,
}

pub const JSON: &str = "application/json";
/// Django's default type for its 405 responses (wire.md §3.2).
pub const HTML: &str = "text/html; charset=utf-8";

impl Response {
    /// Compact JSON ending in one newline (wire.md §3.1).
    pub fn json(status: u16, body: &impl Serialize) -> Response {
        // Room for the largest body (server_settings) without growing.
        let mut bytes = Vec::with_capacity(1024);
        serde_json::to_writer(&mut bytes, body).expect("response bodies always serialize");
        bytes.push(b'\n');
        Response {
            status,
            content_type: Some(JSON),
            headers: Vec::new(),
            body: bytes,
            log: LogContext::default(),
        }
    }

    /// The error's JSON, with its `Retry-After` or `WWW-Authenticate` header.
    pub fn error(err: &ApiError) -> Response {
        Response {
            status: err.status,
            content_type: Some(JSON),
            // The float exactly as the JSON key holds it, which is Python's repr (wire.md §8).
            // Not `{:?}`: on a tie such as 2.98633575439453125 it rounds the last digit up
            // where Python and serde_json round to even.
            headers: err
                .retry_after
                .map(|seconds| {
                    (
                        "Retry-After",
                        serde_json::to_string(&seconds).expect("a finite float"),
                    )
                })
                .into_iter()
                .chain(
                    err.www_authenticate
                        .then(|| ("WWW-Authenticate", "Basic realm=\"zulip\"".to_owned())),
                )
                .collect(),
            body: err.to_json(),
            log: LogContext::default(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Whatever a worker needs besides the request: built once per thread.
pub trait Handler {
    fn handle(&mut self, request: &Request) -> Response;
    /// Whether answering may cost an argon2 computation; such requests go to the hashing
    /// threads, so that cheap ones never queue behind them.
    fn is_costly(&self, request: &Request) -> bool;
    /// The path as the log shows it: a handler blanks what is a secret (a reset link's token).
    fn logged_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(path)
    }
    /// The answer to a request refused before or around its handler (a malformed Host, a body
    /// too large, a full queue, a panic): the error's JSON unless the handler knows better.
    fn refusal(&self, _path: &str, err: &ApiError) -> Response {
        Response::error(err)
    }
}

/// Why the server should stop.
#[derive(Debug)]
pub enum StopReason {
    /// tiny_http failed: exit non-zero.
    Fatal(String),
    /// SIGTERM or SIGINT: finish what is in flight, then exit 0.
    Signal(i32),
}

/// How many threads of each kind: `front` threads take every request from tiny_http, read
/// it and answer the cheap ones; `hashing` threads answer the costly ones, so peak memory
/// is `hashing × m` whatever the load.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    pub front: usize,
    pub hashing: usize,
}

/// The queue of costly requests waiting for a hashing thread holds at least this many, and
/// at least [`QUEUED_PER_HASHING_THREAD`] per hashing thread (wire.md §8, overload).
const MIN_QUEUED: usize = 64;
const QUEUED_PER_HASHING_THREAD: usize = 16;

/// How many costly requests may wait for `hashing` threads; past that they get the overload
/// 429 at once, so that no front thread ever waits for the queue.
pub fn queue_capacity(hashing: usize) -> usize {
    MIN_QUEUED.max(hashing.saturating_mul(QUEUED_PER_HASHING_THREAD))
}

/// A costly request, read in full, waiting for a hashing thread.
struct Job {
    raw: tiny_http::Request,
    request: Request,
    started: Instant,
}

/// Reports its thread's end on `fatal` unless the server is stopping: a pool that silently
/// loses threads ends up answering nothing while the process lives on.
struct LossAlarm {
    thread: String,
    stopping: Arc<AtomicBool>,
    fatal: Sender<StopReason>,
}

impl Drop for LossAlarm {
    fn drop(&mut self) {
        if thread::panicking() || !self.stopping.load(Ordering::SeqCst) {
            let _ = self.fatal.send(StopReason::Fatal(format!(
                "worker thread {} stopped",
                self.thread
            )));
        }
    }
}

/// Starts the pool, each thread with its own handler from `make_handler`, serving `server`.
/// A front thread whose `recv()` fails while `stopping` is unset reports it on `fatal`:
/// tiny_http's accept loop has ended for good, so the process must exit and be restarted.
/// So does any pool thread that ends while `stopping` is unset.
/// When the front threads stop, the hashing threads finish the queued requests and stop too.
pub fn spawn_workers<H, F>(
    server: &Arc<Server>,
    size: PoolSize,
    make_handler: F,
    stopping: &Arc<AtomicBool>,
    fatal: &Sender<StopReason>,
) -> Vec<JoinHandle<()>>
where
    H: Handler,
    F: Fn() -> Result<H, String> + Send + Sync + 'static,
{
    let make_handler = Arc::new(make_handler);
    let start_handler = move |fatal: &Sender<StopReason>| match make_handler() {
        Ok(handler) => Some(handler),
        Err(e) => {
            let _ = fatal.send(StopReason::Fatal(e));
            None
        }
    };
    let start_handler = Arc::new(start_handler);
    let capacity = queue_capacity(size.hashing);
    metrics::queue_capacity(capacity);
    let (queue, queued) = mpsc::sync_channel::<Job>(capacity);
    let queued = Arc::new(Mutex::new(queued));
    let alarm = |thread: &str| LossAlarm {
        thread: thread.to_owned(),
        stopping: Arc::clone(stopping),
        fatal: fatal.clone(),
    };
    let mut threads = Vec::new();
    for i in 0..size.hashing {
        let (queued, fatal, start_handler) = (
            Arc::clone(&queued),
            fatal.clone(),
            Arc::clone(&start_handler),
        );
        let name = format!("hashing-{i}");
        let alarm = alarm(&name);
        threads.push(spawn(name, move || {
            let _alarm = alarm;
            lower_priority();
            let Some(mut handler) = start_handler(&fatal) else {
                return;
            };
            loop {
                let job = queued.lock().map_or(Err(mpsc::RecvError), |q| q.recv());
                let Ok(job) = job else {
                    return;
                };
                metrics::dequeued();
                guarded(|| serve(&mut handler, job.raw, Ok(job.request), job.started));
            }
        }));
    }
    for i in 0..size.front {
        let (server, stopping, fatal) = (Arc::clone(server), Arc::clone(stopping), fatal.clone());
        let (queue, start_handler) = (queue.clone(), Arc::clone(&start_handler));
        let name = format!("front-{i}");
        let alarm = alarm(&name);
        threads.push(spawn(name, move || {
            let _alarm = alarm;
            let Some(mut handler) = start_handler(&fatal) else {
                return;
            };
            loop {
                match server.recv() {
                    Ok(raw) => guarded(|| front(&mut handler, raw, &queue)),
                    Err(_) if stopping.load(Ordering::SeqCst) => return,
                    Err(e) => {
                        let _ = fatal.send(StopReason::Fatal(format!(
                            "accepting connections failed: {e}"
                        )));
                        return;
                    }
                }
            }
        }));
    }
    threads
}

/// Runs the whole life of one request, from reading it to dropping it, so that a panic
/// outside the handler (tiny_http's drain of an unread body of 2^63 bytes) costs that
/// request and not the thread.
fn guarded(life: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(life)).is_err() {
        error!("a request panicked outside its handler; its connection is dropped");
    }
}

/// tiny_http's own threads (its accept loop and one per connection) are the process's only
/// unnamed threads. A panic there (accept took the last descriptor, a thread could not be
/// spawned) stops accepting for good while the process lives on: exit non-zero instead,
/// so that systemd restarts the service.
pub fn exit_when_tiny_http_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if thread::current().name().is_none() {
            error!("tiny_http's thread panicked: exiting so that the service is restarted");
            std::process::exit(1);
        }
    }));
}

/// Raises the soft limit of open descriptors to the hard limit, since tiny_http holds two
/// per connection; returns the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Nice value of the hashing threads: when cores are scarce, the scheduler serves cheap
/// requests first and logins take the rest, instead of sharing the cores evenly.
const HASHING_NICENESS: libc::c_int = 10;

/// Lowers this thread's scheduling priority (Linux applies nice values per thread). Where it
/// is not allowed (a seccomp filter, say) the thread keeps the default priority.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; they only read their integer arguments.
    let changed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASHING_NICENESS)
    };
    if changed != 0 {
        log::debug!(
            "hashing thread keeps its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name(name)
        .spawn(body)
        .expect("a worker thread can be spawned")
}

/// Reads a request; answers it here if it is cheap (or unreadable), else queues it for a
/// hashing thread, or answers the overload 429 when the queue is full.
fn front(handler: &mut impl Handler, mut raw: tiny_http::Request, queue: &SyncSender<Job>) {
    let started = Instant::now();
    match read_request(&mut raw) {
        Ok(request) if handler.is_costly(&request) => {
            let job = Job {
                raw,
                request,
                started,
            };
            match queue.try_send(job) {
                Ok(()) => metrics::queued(),
                Err(TrySendError::Full(job)) => {
                    serve(handler, job.raw, Err(ApiError::overloaded()), job.started);
                }
                // Only if every hashing thread is gone does a front thread hash.
                Err(TrySendError::Disconnected(job)) => {
                    serve(handler, job.raw, Ok(job.request), job.started);
                }
            }
        }
        outcome => serve(handler, raw, outcome, started),
    }
}

/// Answers one request (or the error reading it), inside `catch_unwind`, then logs it.
fn serve(
    handler: &mut impl Handler,
    raw: tiny_http::Request,
    request: Result<Request, ApiError>,
    started: Instant,
) {
    let method = raw.method().to_string();
    let raw_path = raw.url().split('?').next().unwrap_or("");
    let path = handler.logged_path(raw_path).into_owned();
    let response = match request {
        Ok(request) => {
            catch_unwind(AssertUnwindSafe(|| handler.handle(&request))).unwrap_or_else(|_| {
                error!("handler panicked on {method} {path}");
                handler.refusal(raw_path, &ApiError::internal())
            })
        }
        Err(err) => handler.refusal(raw_path, &err),
    };
    let (status, log) = (response.status, response.log.clone());
    // Counted before the client can read the answer and ask for the metrics.
    metrics::answered(
        log.route,
        status,
        log.login.map(Method::label),
        started.elapsed(),
    );
    if let Err(e) = raw.respond(to_tiny_http(response)) {
        info!("{method} {path}: could not send the response: {e}");
    }
    if !log.quiet && log::log_enabled!(log::Level::Warn) {
        let client = log
            .client
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        info!(
            "{method} {path} {status} {:.1}ms realm={} user={} client={client}",
            started.elapsed().as_secs_f64() * 1000.0,
            log.realm
                .as_deref()
                .map_or("-", |r| if r.is_empty() { "(root)" } else { r }),
            log.user_id.map_or("-".to_owned(), |id| id.to_string()),
        );
        if let Some(reason) = log.failure {
            // One stable line per failed authentication, for fail2ban-style tools.
            warn!("authentication failure reason={reason} client={client} path={path}");
        }
    }
}

/// Copies what handlers need out of tiny_http's request, reading at most
/// [`MAX_BODY_BYTES`] of body. A larger declared body is refused without being read.
fn read_request(raw: &mut tiny_http::Request) -> Result<Request, ApiError> {
    let headers = raw.headers();
    // wire.md §4.1 step 0, before anything else; two Hosts are as ambiguous as a bad one.
    let mut hosts = headers.iter().filter(|h| h.field.equiv("Host"));
    let host = match (hosts.next(), hosts.next()) {
        (None, _) => String::new(),
        (Some(host), None) => {
            site::normalize_host(host.value.as_str()).ok_or_else(ApiError::invalid_host)?
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid_host()),
    };
    if raw.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::body_too_large());
    }
    let header = |name: &'static str| {
        headers
            .iter()
            .rev()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_owned())
    };
    let (path, query) = match raw.url().split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (raw.url().to_owned(), String::new()),
    };
    let mut request = Request {
        method: raw.method().as_str().to_owned(),
        path,
        query,
        host,
        content_type: header("Content-Type"),
        authorization: header("Authorization"),
        user_agent: header("User-Agent"),
        cookie: header("Cookie"),
        peer: raw.remote_addr().map(SocketAddr::ip),
        // tiny_http names no peer only for a connection to a Unix socket.
        over_unix_socket: raw.remote_addr().is_none(),
        forwarded_for: header("X-Forwarded-For"),
        real_ip: header("X-Real-IP"),
        body: Vec::new(),
    };
    let limit = u64::try_from(MAX_BODY_BYTES + 1).unwrap_or(u64::MAX);
    raw.as_reader()
        .take(limit)
        .read_to_end(&mut request.body)
        .map_err(|_| ApiError::unreadable_body())?;
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::body_too_large());
    }
    Ok(request)
}

fn to_tiny_http(response: Response) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    let content_type = response
        .content_type
        .map(|t| ("Content-Type", t.to_owned()));
    for (name, value) in content_type.into_iter().chain(response.headers) {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    out.add_header(Header::from_bytes(&b"Server"[..], &b"zulip-auth"[..]).expect("static header"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpStream;
    use std::sync::mpsc;
    use std::time::Duration;

    struct Panicky;

    impl Handler for Panicky {
        fn handle(&mut self, request: &Request) -> Response {
            assert!(!request.path.ends_with("/panic"), "handler bug");
            Response::json(200, &[request.path.as_str()])
        }

        fn is_costly(&self, request: &Request) -> bool {
            request.path.starts_with("/costly")
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    fn start(
        workers: usize,
        stopping: bool,
    ) -> (Arc<Server>, SocketAddr, mpsc::Receiver<StopReason>) {
        let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let (tx, rx) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(stopping));
        let size = PoolSize {
            front: workers,
            hashing: workers,
        };
        spawn_workers(&server, size, || Ok(Panicky), &stopping, &tx);
        (server, addr, rx)
    }

    #[test]
    fn a_panicking_handler_answers_500_and_its_worker_lives_on() {
        let (_server, addr, _fatal) = start(1, false);
        // In a front thread and in a hashing thread alike.
        for prefix in ["", "/costly"] {
            let response = get(addr, &format!("{prefix}/panic"));
            assert!(response.starts_with("HTTP/1.1 500"), "{response}");
            let body = "\r\n\r\n{\"result\":\"error\",\"msg\":\"Internal server error\"}\n";
            assert!(response.ends_with(body), "{response}");
            let after = format!("{prefix}/after");
            assert!(get(addr, &after).ends_with(&format!("[\"{after}\"]\n")));
        }
    }

    #[test]
    fn a_failed_recv_is_fatal_unless_stopping() {
        let (server, _, fatal) = start(1, false);
        server.unblock();
        assert!(fatal.recv_timeout(Duration::from_secs(5)).is_ok());
        let (server, _, fatal) = start(1, true);
        server.unblock();
        assert!(matches!(
            fatal.recv_timeout(Duration::from_secs(1)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        ));
    }

    fn request(peer: &str, forwarded_for: Option<&str>, real_ip: Option<&str>) -> Request {
        Request {
            peer: Some(peer.parse().unwrap()),
            forwarded_for: forwarded_for.map(str::to_owned),
            real_ip: real_ip.map(str::to_owned),
            ..Request::default()
        }
    }

    #[test]
    fn retry_after_header_and_body_agree_on_ties() {
        // Exactly 2.98633575439453125, halfway between two 17-digit decimals.
        let tie = f64::from_bits(0x4007_e404_0000_0000);
        let response = Response::error(&ApiError::rate_limited(tie));
        assert_eq!(
            response.headers,
            [("Retry-After", "2.9863357543945312".to_owned())]
        );
        assert!(
            String::from_utf8(response.body)
                .unwrap()
                .ends_with("\"retry-after\":2.9863357543945312}\n")
        );
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let trusted = [proxy, "10.0.0.1".parse().unwrap()];
        // Untrusted peers' headers are ignored.
        assert_eq!(
            request("192.0.2.9", Some("1.1.1.1"), None).client_addr(&trusted),
            ip("192.0.2.9")
        );
        assert_eq!(
            request("127.0.0.1", Some("1.1.1.1, 2.2.2.2, 10.0.0.1"), None).client_addr(&trusted),
            ip("2.2.2.2")
        );
        assert_eq!(
            request("127.0.0.1", None, Some("3.3.3.3")).client_addr(&trusted),
            ip("3.3.3.3")
        );
        assert_eq!(
            request("127.0.0.1", Some("10.0.0.1"), Some("3.3.3.3")).client_addr(&trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            request("127.0.0.1", Some("garbage"), None).client_addr(&trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            request("127.0.0.1", Some("1.1.1.1"), None).client_addr(&[]),
            ip("127.0.0.1")
        );
    }
}
