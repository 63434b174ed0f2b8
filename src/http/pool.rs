//! The threads that serve one tiny_http server.
//!
//! - **Front** threads, each with its own handler state (a SQLite connection), take the
//!   requests from tiny_http and answer the cheap ones. One request of each connection goes
//!   ahead at a time ([`Watchdog::arrived`]): the next waits until the answer before it is
//!   written, so a connection that pipelines without reading holds one thread at most, and
//!   one that pipelines too far is cut off. A request whose body is in memory (none, or one
//!   tiny_http read with the head) is answered by the front thread that took it; one whose
//!   body is still on the wire goes to a **body thread** of its own, which reads it under the
//!   connection deadlines ([`crate::deadline`]), queues it, and writes the answer it is sent.
//!   A blocked body thread is cheap, and there are at most as many as open connections, which
//!   the gate bounds; so a request without a body never waits behind one that dribbles its
//!   body, and no front thread ever waits on a client.
//! - The **queued** front thread answers what waited: bodies the body threads read, and the
//!   requests a connection pipelined, each once the answer before it is written.
//! - Requests that may cost an argon2 computation, which the handler's front step passes on
//!   ([`Handler::front`]), go through a bounded queue to the **hashing** threads, or get the
//!   overload 429 at once when it is full, so `server_settings` stays fast while logins
//!   saturate the cores; peak memory stays `hashing threads × m`. What the front step can
//!   answer without hashing (a login refused before its hash) never waits for them.
//!
//! The whole life of each request runs inside `catch_unwind`, and a lost thread, of the pool
//! or of tiny_http, ends the process so that systemd restarts it. A pool thread that cannot
//! make its handler (its database connection) tries again for a while before that counts as
//! losing it.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use tiny_http::Server;

use super::{Handler, Request, Response, read_request, to_tiny_http};
use crate::auth::login::Method;
use crate::deadline::{self, Watchdog};
use crate::error::ApiError;
use crate::metrics;

/// Why the server should stop.
#[derive(Debug)]
pub enum StopReason {
    /// tiny_http failed: exit non-zero.
    Fatal(String),
    /// SIGTERM or SIGINT: finish what is in flight, then exit 0.
    Signal(i32),
}

/// How many threads of each kind: `front` threads answer the cheap requests; `hashing`
/// threads answer the costly ones, so peak memory is `hashing × m` whatever the load.
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

/// The log target of the request lines, which operators filter on: the adapter's module.
const LOG_TARGET: &str = "zulip_auth::http";
/// The failure line's reason for a body that missed its deadline: deploy/fail2ban's filter
/// counts it, as it counts guesses.
const LATE_BODY: &str = "LATE_BODY";

/// tiny_http reads a body of at most this many bytes with its head (unless the client asked
/// for `100 Continue`); a longer one stays on the wire until it is read.
const READ_WITH_THE_HEAD: usize = 1024;

/// How long a pool thread keeps trying to make its handler (to open its database connection)
/// before the failure counts as lasting and stops the server, for systemd to restart it. A
/// passing one, such as a write lock held past the busy timeout by a long pruning or by an
/// operator's `sqlite3`, costs the thread a moment and not the server; the other threads
/// serve meanwhile.
const HANDLER_ATTEMPTS_FOR: Duration = Duration::from_secs(60);
const HANDLER_ATTEMPT_PAUSE: Duration = Duration::from_millis(500);

/// A request ready for the queued front thread.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per request; a box would cost an allocation per request"
)]
enum Arrival {
    /// Its body, if any, is in memory: reading it cannot wait.
    Whole(Taken, Instant),
    /// Read by a body thread.
    Read(Box<Job>),
}

/// A request read (or refused while reading), and where its answer goes.
struct Job {
    /// What was read: the head at least.
    request: Request,
    /// Why it is answered without its handler.
    refused: Option<ApiError>,
    /// The failure line's reason, when the refusal is the client's doing (a late body).
    failure: Option<&'static str>,
    reply: Reply,
    started: Instant,
}

impl Job {
    fn read(raw: &mut tiny_http::Request, reply: Reply, started: Instant) -> Job {
        let (request, refused) = read_request(raw);
        Job {
            request,
            refused,
            failure: None,
            reply,
            started,
        }
    }
}

/// Where the requests taken from tiny_http go: to the front threads, through a body thread
/// when the body is still on the wire; cheap to clone.
#[derive(Clone)]
struct Dispatch {
    arrive: Sender<Arrival>,
    watchdog: Watchdog,
}

impl Dispatch {
    /// A request a front thread just took from tiny_http: returned for that thread to answer,
    /// unless one of its connection is being answered (it then waits its turn) or its body is
    /// still on the wire (a body thread reads it).
    fn take(&self, raw: tiny_http::Request) -> Option<(Taken, Instant)> {
        let (raw, started) = self.watchdog.arrived(raw, Instant::now())?;
        self.go(raw, started)
    }

    /// A request whose turn came after it waited: to the queued front thread.
    fn send(&self, raw: tiny_http::Request, started: Instant) {
        if let Some(whole) = self.go(raw, started) {
            let _ = self.arrive.send(Arrival::Whole(whole.0, whole.1));
        }
    }

    /// The request, if its body is in memory; else it goes to a body thread of its own.
    fn go(&self, raw: tiny_http::Request, started: Instant) -> Option<(Taken, Instant)> {
        let raw = Taken {
            next: Next {
                peer: raw.remote_addr().copied(),
                dispatch: self.clone(),
            },
            raw,
        };
        if body_in_memory(&raw) {
            return Some((raw, started));
        }
        let dispatch = self.clone();
        let spawned = thread::Builder::new()
            .name("body".into())
            .spawn(move || guarded(|| read_body(raw, started, &dispatch)));
        if let Err(e) = spawned {
            error!("cannot start a thread to read a request body ({e}): its connection is dropped");
        }
        None
    }
}

/// A request taken from tiny_http. Once it is answered, or dropped unanswered, the next
/// request of its connection goes on.
struct Taken {
    // Dropped first (its answer written, or tiny_http's 500), then `next`.
    raw: tiny_http::Request,
    next: Next,
}

impl Deref for Taken {
    type Target = tiny_http::Request;

    fn deref(&self) -> &tiny_http::Request {
        &self.raw
    }
}

impl DerefMut for Taken {
    fn deref_mut(&mut self) -> &mut tiny_http::Request {
        &mut self.raw
    }
}

/// Sends on the next request of a connection when dropped.
struct Next {
    peer: Option<SocketAddr>,
    dispatch: Dispatch,
}

impl Drop for Next {
    fn drop(&mut self) {
        if let Some((raw, started)) = self.dispatch.watchdog.answered(self.peer) {
            self.dispatch.send(raw, started);
        }
    }
}

/// Who writes the answer.
#[expect(
    clippy::large_enum_variant,
    reason = "moved once per request; a box would cost an allocation per request"
)]
enum Reply {
    /// The request itself, whose body is in memory.
    Here(Taken),
    /// The body thread that holds the request: the answer, and the path as the log shows it.
    There(SyncSender<(Response, String)>),
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

/// A queue that several threads take from.
type Shared<T> = Arc<Mutex<Receiver<T>>>;

fn take<T>(queue: &Shared<T>) -> Option<T> {
    queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .recv()
        .ok()
}

/// Starts the pool, each front, queued and hashing thread with its own handler from
/// `make_handler`, serving `server`. When a front thread's `recv()` fails while `stopping` is
/// unset, tiny_http's accept loop has ended for good: that is reported on `fatal`, so the
/// process exits and is restarted. So is the end of any pool thread while `stopping` is
/// unset. After [`stop_taking`], the front threads answer what they took, then stop; the
/// queued and hashing threads finish what they hold and stop too.
pub fn spawn_workers<H, F>(
    server: &Arc<Server>,
    size: PoolSize,
    make_handler: F,
    watchdog: Watchdog,
    stopping: &Arc<AtomicBool>,
    fatal: &Sender<StopReason>,
) -> Vec<JoinHandle<()>>
where
    H: Handler,
    F: Fn() -> Result<H, String> + Send + Sync + 'static,
{
    let make_handler = Arc::new(make_handler);
    let stop = Arc::clone(stopping);
    let start_handler = Arc::new(move |fatal: &Sender<StopReason>| {
        let give_up = Instant::now() + HANDLER_ATTEMPTS_FOR;
        loop {
            match make_handler() {
                Ok(handler) => return Some(handler),
                Err(_) if stop.load(Ordering::SeqCst) => return None,
                Err(e) if Instant::now() < give_up => {
                    warn!("a worker thread cannot start, trying again: {e}");
                    thread::sleep(HANDLER_ATTEMPT_PAUSE);
                }
                Err(e) => {
                    let _ = fatal.send(StopReason::Fatal(e));
                    return None;
                }
            }
        }
    });
    let capacity = queue_capacity(size.hashing);
    metrics::queue_capacity(capacity);
    let (queue, queued) = mpsc::sync_channel::<Job>(capacity);
    let queued = Arc::new(Mutex::new(queued));
    let (arrive, arrivals) = mpsc::channel::<Arrival>();
    let dispatch = Dispatch { arrive, watchdog };
    let arrivals = Arc::new(Mutex::new(arrivals));
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
            while let Some(job) = take(&queued) {
                metrics::dequeued();
                guarded(|| serve(&mut handler, job));
            }
        }));
    }
    let (fatal_to, queue_to, handler_to) =
        (fatal.clone(), queue.clone(), Arc::clone(&start_handler));
    let alarm_of_queued = alarm("queued");
    threads.push(spawn("queued".into(), move || {
        let _alarm = alarm_of_queued;
        let Some(mut handler) = handler_to(&fatal_to) else {
            return;
        };
        while let Some(arrival) = take(&arrivals) {
            guarded(|| front(&mut handler, arrival, &queue_to));
        }
    }));
    for i in 0..size.front {
        let (server, stopping, fatal) = (Arc::clone(server), Arc::clone(stopping), fatal.clone());
        let (queue, start_handler) = (queue.clone(), Arc::clone(&start_handler));
        let dispatch = dispatch.clone();
        let name = format!("front-{i}");
        let alarm = alarm(&name);
        threads.push(spawn(name, move || {
            let _alarm = alarm;
            let Some(mut handler) = start_handler(&fatal) else {
                return;
            };
            loop {
                match server.recv() {
                    Ok(raw) => {
                        if let Some((raw, started)) = dispatch.take(raw) {
                            let arrival = Arrival::Whole(raw, started);
                            guarded(|| front(&mut handler, arrival, &queue));
                        }
                    }
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

/// Stops the front threads taking requests from tiny_http: each unblock ends one `recv`, after
/// the requests already received; the queued and hashing threads finish what they hold.
pub fn stop_taking(server: &Server, size: PoolSize) {
    for _ in 0..size.front {
        server.unblock();
    }
}

/// Whether tiny_http holds the whole body already (or there is none): no chunked encoding, no
/// connection upgrade (whose body is the rest of the stream), and a declared length it read
/// with the head.
fn body_in_memory(raw: &tiny_http::Request) -> bool {
    let headers = raw.headers();
    let has = |name: &'static str| headers.iter().any(|h| h.field.equiv(name));
    let upgrade = headers.iter().any(|h| {
        h.field.equiv("Connection") && h.value.as_str().to_ascii_lowercase().contains("upgrade")
    });
    let small = match raw.body_length() {
        None | Some(0) => true,
        Some(n) => n <= READ_WITH_THE_HEAD && !has("Expect"),
    };
    small && !has("Transfer-Encoding") && !upgrade
}

/// A body thread: reads the body, within [`deadline::BODY`] of the head, queues the request,
/// writes the answer it is sent, and drops the request, which drains what was left unread;
/// the watchdog ends all of that at the deadline.
fn read_body(mut raw: Taken, started: Instant, dispatch: &Dispatch) {
    let watch = dispatch
        .watchdog
        .watch(raw.remote_addr().copied(), started + deadline::BODY);
    let (reply, answer) = mpsc::sync_channel(1);
    let mut job = Job::read(&mut raw, Reply::There(reply), started);
    // Past the deadline the watchdog ends the body early, and a chunked one cut within a
    // chunk reads as complete: so a late body is refused, whatever it looks like, and the
    // client named in the failure line (fail2ban's filter bans it).
    if started.elapsed() >= deadline::BODY {
        job.refused = Some(ApiError::unreadable_body());
        job.failure = Some(LATE_BODY);
    }
    if dispatch.arrive.send(Arrival::Read(Box::new(job))).is_ok()
        && let Ok((response, path)) = answer.recv()
    {
        respond(raw, response, &path);
    } else {
        drop(raw);
    }
    drop(watch);
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
/// requests first and logins take the rest, instead of sharing the cores evenly. The
/// audit pruning runs at the same one: never ahead of a login's hashing, nor behind it
/// while it holds the write lock a login may wait for.
const HASHING_NICENESS: libc::c_int = 10;

/// Lowers this thread's scheduling priority (Linux applies nice values per thread) to the
/// hashing threads'. Where it is not allowed (a seccomp filter, say) the thread keeps the
/// default priority.
pub(crate) fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; they only read their integer arguments.
    let changed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASHING_NICENESS)
    };
    if changed != 0 {
        log::debug!(
            "{} thread keeps its priority: {}",
            thread::current().name().unwrap_or("a"),
            std::io::Error::last_os_error()
        );
    }
}

/// Starts a pool thread. A pool that cannot start its threads serves nothing: the process
/// exits non-zero, as when tiny_http's own thread dies.
fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    match thread::Builder::new().name(name.clone()).spawn(body) {
        Ok(handle) => handle,
        Err(e) => {
            error!("cannot start the worker thread {name}: {e}");
            std::process::exit(1);
        }
    }
}

/// Answers a request on the front thread (its refusal if it is unreadable), unless the
/// handler passes it on: then it is queued for a hashing thread, or answered the overload
/// 429 when the queue is full.
fn front(handler: &mut impl Handler, arrival: Arrival, queue: &SyncSender<Job>) {
    let job = match arrival {
        Arrival::Whole(mut raw, started) => {
            let (request, refused) = read_request(&mut raw);
            Job {
                request,
                refused,
                failure: None,
                reply: Reply::Here(raw),
                started,
            }
        }
        Arrival::Read(job) => *job,
    };
    let answered = match &job.refused {
        Some(err) => Some(handler.refusal(&job.request, err)),
        None => unwound(handler, &job.request, |handler| handler.front(&job.request)),
    };
    if let Some(response) = answered {
        return deliver(handler, job, response);
    }
    match queue.try_send(job) {
        Ok(()) => metrics::queued(),
        // Full, or every hashing thread gone (the process is ending): a front thread never
        // hashes instead.
        Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
            let overloaded = handler.refusal(&job.request, &ApiError::overloaded());
            deliver(handler, job, overloaded);
        }
    }
}

/// Answers one request with the whole of its handler: on a hashing thread only.
fn serve(handler: &mut impl Handler, job: Job) {
    let response = unwound(handler, &job.request, |handler| {
        handler.handle(&job.request)
    });
    deliver(handler, job, response);
}

/// A step of the handler inside `catch_unwind`: a panic is answered the 500 refusal.
fn unwound<H: Handler, T: From<Response>>(
    handler: &mut H,
    request: &Request,
    step: impl FnOnce(&mut H) -> T,
) -> T {
    catch_unwind(AssertUnwindSafe(|| step(handler))).unwrap_or_else(|_| {
        let path = handler.logged_path(&request.path);
        error!("handler panicked on {} {path}", request.method);
        handler.refusal(request, &ApiError::internal()).into()
    })
}

/// Sends the answer to one request, then logs it.
fn deliver(handler: &impl Handler, job: Job, mut response: Response) {
    let Job {
        request,
        failure,
        reply,
        started,
        ..
    } = job;
    let method = &request.method;
    let path = handler.logged_path(&request.path).into_owned();
    if failure.is_some() {
        response.log.failure = failure;
    }
    let (status, log) = (response.status, response.log.clone());
    // Counted before the client can read the answer and ask for the metrics.
    metrics::answered(
        log.route,
        status,
        log.login.map(Method::label),
        started.elapsed(),
    );
    match reply {
        Reply::Here(raw) => respond(raw, response, &path),
        Reply::There(body_thread) => {
            let _ = body_thread.send((response, path.clone()));
        }
    }
    // The client's address is formatted only for a line that is written.
    let written = |level| log::log_enabled!(target: LOG_TARGET, level);
    if !log.quiet
        && (written(log::Level::Info) || log.failure.is_some() && written(log::Level::Warn))
    {
        let client = log
            .client
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        info!(
            target: LOG_TARGET,
            "{method} {path} {status} {:.1}ms realm={} user={} client={client}",
            started.elapsed().as_secs_f64() * 1000.0,
            log.realm
                .as_deref()
                .map_or("-", |r| if r.is_empty() { "(root)" } else { r }),
            log.user_id.map_or("-".to_owned(), |id| id.to_string()),
        );
        if let Some(reason) = log.failure {
            // One stable line per failed authentication, for fail2ban-style tools.
            warn!(
                target: LOG_TARGET,
                "authentication failure reason={reason} client={client} path={path}"
            );
        }
    }
}

/// Writes the answer; `path` is the request's as the log shows it. Then the connection's
/// next request goes on, unless the answer could not be written: then it is cut off.
fn respond(taken: Taken, response: Response, path: &str) {
    let Taken { raw, next } = taken;
    let method = raw.method().clone();
    if let Err(e) = raw.respond(to_tiny_http(response)) {
        info!("{method} {path}: could not send the response: {e}");
        next.dispatch.watchdog.write_failed(next.peer);
    }
    drop(next);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    struct Panicky;

    impl Handler for Panicky {
        fn handle(&mut self, request: &Request) -> Response {
            assert!(!request.path.ends_with("/panic"), "handler bug");
            Response::json(200, &[request.path.as_str()])
        }

        /// Paths under `/costly` go to the hashing threads.
        fn front(&mut self, request: &Request) -> Option<Response> {
            (!request.path.starts_with("/costly")).then(|| self.handle(request))
        }
    }

    /// The front answers `/costly/early` itself (as a login refused before its hash) and
    /// passes everything else on; `/costly/slow` holds its hashing thread until released.
    struct Holding {
        holding: mpsc::Sender<()>,
        release: Arc<Mutex<mpsc::Receiver<()>>>,
    }

    impl Handler for Holding {
        fn handle(&mut self, request: &Request) -> Response {
            if request.path == "/costly/slow" {
                self.holding.send(()).unwrap();
                self.release.lock().unwrap().recv().unwrap();
            }
            Response::json(200, &[request.path.as_str()])
        }

        fn front(&mut self, request: &Request) -> Option<Response> {
            (request.path == "/costly/early")
                .then(|| Response::json(200, &["front", request.path.as_str()]))
        }
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        // A bound on a wedge, not a speed: the answers here take milliseconds.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
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
        let size = PoolSize {
            front: workers,
            hashing: workers,
        };
        start_with(size, stopping, || Ok(Panicky))
    }

    /// A pool of `size`, with handlers from `make`.
    fn start_with<H: Handler>(
        size: PoolSize,
        stopping: bool,
        make: impl Fn() -> Result<H, String> + Send + Sync + 'static,
    ) -> (Arc<Server>, SocketAddr, mpsc::Receiver<StopReason>) {
        let listener = tiny_http::Listener::from(TcpListener::bind("127.0.0.1:0").unwrap());
        let watchdog = Watchdog::start(&listener).unwrap();
        let server = Arc::new(Server::from_listener(listener, None).unwrap());
        let addr = server.server_addr().to_ip().unwrap();
        let (tx, rx) = mpsc::channel();
        let stopping = Arc::new(AtomicBool::new(stopping));
        spawn_workers(&server, size, make, watchdog, &stopping, &tx);
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

    const ONE_EACH: PoolSize = PoolSize {
        front: 1,
        hashing: 1,
    };

    /// With no hashing thread to pass it to, a costly request is refused, never hashed on
    /// the front thread.
    #[test]
    fn without_hashing_threads_a_costly_request_is_refused() {
        let size = PoolSize {
            front: 1,
            hashing: 0,
        };
        let (_server, addr, _fatal) = start_with(size, false, || Ok(Panicky));
        let response = get(addr, "/costly/x");
        assert!(response.starts_with("HTTP/1.1 429"), "{response}");
        assert!(get(addr, "/cheap").ends_with("[\"/cheap\"]\n"));
    }

    /// The front step's answer to a request it would otherwise pass on is written while
    /// every hashing thread is busy: it never enters their queue.
    #[test]
    fn a_front_answer_never_waits_for_the_hashing_threads() {
        let (holding, held) = mpsc::channel();
        let (release, released) = mpsc::channel();
        let released = Arc::new(Mutex::new(released));
        let make = move || {
            Ok(Holding {
                holding: holding.clone(),
                release: Arc::clone(&released),
            })
        };
        let (_server, addr, _fatal) = start_with(ONE_EACH, false, make);
        let slow = thread::spawn(move || get(addr, "/costly/slow"));
        held.recv().unwrap();
        // The only hashing thread holds `/costly/slow` until it is released below.
        let early = get(addr, "/costly/early");
        assert!(
            early.ends_with("[\"front\",\"/costly/early\"]\n"),
            "{early}"
        );
        release.send(()).unwrap();
        assert!(slow.join().unwrap().ends_with("[\"/costly/slow\"]\n"));
    }

    #[test]
    fn a_handler_that_cannot_start_at_first_is_tried_again() {
        use std::sync::atomic::AtomicUsize;
        let failures = AtomicUsize::new(0);
        let make = move || {
            if failures.fetch_add(1, Ordering::SeqCst) < 3 {
                Err("database is locked".to_owned())
            } else {
                Ok(Panicky)
            }
        };
        let (_server, addr, fatal) = start_with(ONE_EACH, false, make);
        // Before any request, which nobody would answer if both threads had ended.
        assert!(matches!(
            fatal.recv_timeout(Duration::from_secs(2)),
            Err(mpsc::RecvTimeoutError::Timeout)
        ));
        for path in ["/after", "/costly/after"] {
            assert!(get(addr, path).ends_with(&format!("[\"{path}\"]\n")));
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
}
