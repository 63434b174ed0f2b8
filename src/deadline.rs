//! Deadlines and bounds on connections, which tiny_http 0.12 lacks (README, "Production runs
//! behind a TLS-terminating proxy"; wire.md §3.4).
//!
//! - **A pause**: no read or write on a connection waits longer than [`PAUSE`]. The receive
//!   and send timeouts are set on the listening socket, and Linux copies them to every socket
//!   it accepts, so tiny_http's own reads time out too: a client silent in the middle of a
//!   request head, of a body, or on an idle keep-alive connection is closed, and the thread
//!   that waited on it is free again. Linux bounds `accept` on that socket by the same
//!   timeout: the gate's knock ([`crate::gate`]) keeps it from ever waiting that long.
//! - **A whole head**: a connection must deliver a whole request head within [`HEAD`] of its
//!   opening or of its previous answer, whatever pace it keeps (one byte every 9 s never
//!   pauses long). The [`Watchdog`] lists the connections every [`HEAD_LOOK_EVERY`] and shuts
//!   down those idle for longer; this is also the keep-alive deadline.
//! - **A whole body**: a body still on the wire when its head is read must arrive whole within
//!   [`BODY`] of the head. Its reader asks the watchdog to watch it; when the time passes, the
//!   watchdog shuts the connection down for reading, so that every read on it, tiny_http's
//!   drain of an unread body included, ends at once.
//! - **One request at a time**: tiny_http reads pipelined requests as fast as they come and
//!   queues them all. The watchdog lets one request of a connection go ahead at a time; the
//!   next waits until the answer is written (so a connection holds at most one thread, and
//!   answers never wait on each other's writes), and a connection with more than
//!   [`MAX_PIPELINED`] requests waiting is cut off: shut down, its waiting requests dropped in
//!   order by a thread of its own.
//!
//! Connections are known by the client's address, and tiny_http holds the sockets, so the
//! watchdog finds them among the process's descriptors. All of this holds on TCP; the Unix
//! socket names no client, so there only the pause holds, and the front proxy (the only
//! client the socket's mode lets in) keeps its own deadlines, buffers bodies and does not
//! pipeline (README, security section).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};
use socket2::SockRef;
use tiny_http::{Listener, Request};

use crate::error::Error;

/// The longest a connection may keep a read or a write waiting: within a request head,
/// within a body, and between two requests on a kept-alive connection.
pub const PAUSE: Duration = Duration::from_secs(10);
/// The longest a connection may take to deliver a whole request head, from its opening or
/// its previous answer: so also how long a kept-alive connection may stay idle.
pub const HEAD: Duration = Duration::from_secs(10);
/// The longest a body may take from its head to its last byte: at most 64 KiB (wire.md
/// §3.4), so at least 6.4 KiB a second on average.
pub const BODY: Duration = Duration::from_secs(10);
/// How many requests a connection may send ahead of its answers before it is cut off.
pub const MAX_PIPELINED: usize = 32;
/// How often the watchdog looks for bodies past their deadline.
const LOOK_EVERY: Duration = Duration::from_millis(100);
/// How often it lists the connections, for the heads past their deadline: the head's
/// deadline holds within this much.
const HEAD_LOOK_EVERY: Duration = Duration::from_secs(1);

/// Sets [`PAUSE`] on `listener`, before tiny_http accepts anything from it.
pub fn set_pause(listener: &Listener) -> Result<(), Error> {
    let socket = match listener {
        Listener::Tcp(tcp) => SockRef::from(tcp),
        Listener::Unix(unix) => SockRef::from(unix),
    };
    socket
        .set_read_timeout(Some(PAUSE))
        .and_then(|()| socket.set_write_timeout(Some(PAUSE)))
        .map_err(|e| Error::Io("cannot set the connection deadlines".into(), e))
}

/// Watches the connections of one listener; cheap to clone.
#[derive(Clone)]
pub struct Watchdog {
    shared: Arc<Shared>,
}

struct Shared {
    watched: Mutex<Vec<Watched>>,
    next_id: AtomicU64,
    connections: Mutex<HashMap<SocketAddr, Connection>>,
    /// The listener's port: only sockets accepted from it are ever shut down.
    port: Option<u16>,
}

struct Watched {
    id: u64,
    peer: SocketAddr,
    deadline: Instant,
    /// What is shut down at the deadline.
    how: Shutdown,
}

/// What the watchdog knows of an open connection.
enum Connection {
    /// Waiting for its next request head since then: its opening (as the watchdog first saw
    /// it) or its last answer.
    Idle(Instant),
    /// A request of it is being answered; those it sent after it wait, in order.
    Busy(VecDeque<(Request, Instant)>),
    /// Cut off for sending too many requests ahead: whatever it sent goes to the thread that
    /// drops its requests in order.
    Cut(Sender<Request>),
}

/// A connection watched until this is dropped.
pub struct Watch {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&self.shared.watched).retain(|w| w.id != id);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Watchdog {
    /// Starts the watchdog of the connections accepted from `listener`.
    pub fn start(listener: &Listener) -> Result<Watchdog, Error> {
        let port = match listener {
            Listener::Tcp(tcp) => tcp.local_addr().ok().map(|a| a.port()),
            Listener::Unix(_) => None,
        };
        let shared = Arc::new(Shared {
            watched: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
            port,
        });
        let watching = Arc::clone(&shared);
        thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let Some(port) = watching.port else {
                    return;
                };
                let mut listed = Instant::now();
                loop {
                    thread::sleep(LOOK_EVERY);
                    let now = Instant::now();
                    let mut late = HashMap::new();
                    lock(&watching.watched).retain(|w| {
                        let on_time = w.deadline > now;
                        if !on_time {
                            late.insert(w.peer, w.how);
                        }
                        on_time
                    });
                    if listed.elapsed() >= HEAD_LOOK_EVERY {
                        listed = now;
                        watching.look_at_heads(port, now, &mut late);
                    }
                    if !late.is_empty() {
                        each_socket(port, |socket, peer| {
                            if let Some(how) = late.get(&peer) {
                                let _ = socket.shutdown(*how);
                            }
                        });
                    }
                }
            })
            .map_err(|e| Error::Io("cannot start the connection watchdog".into(), e))?;
        Ok(Watchdog { shared })
    }

    /// Watches the connection from `peer` (`None`: the Unix socket, which the pause bounds)
    /// until the returned guard is dropped; after `deadline` it is shut down for reading.
    pub fn watch(&self, peer: Option<SocketAddr>, deadline: Instant) -> Watch {
        Watch {
            shared: Arc::clone(&self.shared),
            id: peer.map(|peer| self.shared.shut_down_at(peer, deadline, Shutdown::Read)),
        }
    }

    /// A request taken from tiny_http at `started`: returned if it may go ahead now, else kept
    /// until the answer before it is written ([`Watchdog::answered`]), or dropped in order if
    /// its connection sent too many ahead.
    pub fn arrived(&self, request: Request, started: Instant) -> Option<(Request, Instant)> {
        let Some(peer) = request.remote_addr().copied() else {
            return Some((request, started));
        };
        let mut connections = lock(&self.shared.connections);
        let entry = connections.entry(peer);
        let Entry::Occupied(mut entry) = entry else {
            entry.insert_entry(Connection::Busy(VecDeque::new()));
            return Some((request, started));
        };
        match entry.get_mut() {
            Connection::Idle(_) => {
                entry.insert(Connection::Busy(VecDeque::new()));
                Some((request, started))
            }
            Connection::Busy(waiting) if waiting.len() < MAX_PIPELINED => {
                waiting.push_back((request, started));
                None
            }
            Connection::Busy(waiting) => {
                waiting.push_back((request, started));
                let connection = entry.into_mut();
                if self.shared.cut_off(peer, connection) {
                    warn!(
                        "client {peer} sent more than {MAX_PIPELINED} requests ahead of its answers: connection cut off"
                    );
                }
                None
            }
            Connection::Cut(dropper) => {
                let _ = dropper.send(request);
                None
            }
        }
    }

    /// An answer to `peer` could not be written (its socket buffers stayed full for
    /// [`PAUSE`]): the connection is cut off, so that its next answers fail at once.
    pub fn write_failed(&self, peer: Option<SocketAddr>) {
        let Some(peer) = peer else {
            return;
        };
        if let Some(connection) = lock(&self.shared.connections).get_mut(&peer) {
            self.shared.cut_off(peer, connection);
        }
    }

    /// The answer to the request of `peer` that went ahead is written (or the request is
    /// gone): returns the next one of that connection, if it is waiting.
    pub fn answered(&self, peer: Option<SocketAddr>) -> Option<(Request, Instant)> {
        let peer = peer?;
        let mut connections = lock(&self.shared.connections);
        match connections.get_mut(&peer) {
            Some(Connection::Busy(waiting)) => {
                let next = waiting.pop_front();
                if next.is_none() {
                    connections.insert(peer, Connection::Idle(Instant::now()));
                }
                next
            }
            Some(Connection::Cut(_)) => None,
            Some(Connection::Idle(_)) | None => {
                connections.insert(peer, Connection::Idle(Instant::now()));
                None
            }
        }
    }
}

impl Shared {
    /// Cuts a busy connection off: what waits goes to a thread of its own that drops it in
    /// order, and the socket is shut down at the watchdog's next look. Whether it was cut.
    fn cut_off(&self, peer: SocketAddr, connection: &mut Connection) -> bool {
        let Connection::Busy(waiting) = connection else {
            return false;
        };
        // No thread for it: its requests keep waiting, in order.
        let Some(dropper) = drain(peer) else {
            return false;
        };
        for (request, _) in std::mem::take(waiting) {
            let _ = dropper.send(request);
        }
        *connection = Connection::Cut(dropper);
        self.shut_down_at(peer, Instant::now(), Shutdown::Both);
        true
    }

    /// Has the connection from `peer` shut down (`how`) at the first look after `deadline`,
    /// unless the watch whose id this returns ends first.
    fn shut_down_at(&self, peer: SocketAddr, deadline: Instant, how: Shutdown) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.watched).push(Watched {
            id,
            peer,
            deadline,
            how,
        });
        id
    }

    /// Lists the connections: forgets those that closed, starts the clock of new ones, and
    /// adds to `late` those that have not delivered a whole head within [`HEAD`].
    fn look_at_heads(&self, port: u16, now: Instant, late: &mut HashMap<SocketAddr, Shutdown>) {
        let mut open = Vec::new();
        each_socket(port, |_, peer| open.push(peer));
        let open: HashSet<SocketAddr> = open.into_iter().collect();
        let mut connections = lock(&self.connections);
        connections.retain(|peer, c| open.contains(peer) || matches!(c, Connection::Busy(_)));
        for peer in &open {
            let connection = connections.entry(*peer).or_insert(Connection::Idle(now));
            if let Connection::Idle(since) = connection
                && now.duration_since(*since) > HEAD
            {
                info!(
                    "client {peer} sent no whole request head within {} s: connection closed",
                    HEAD.as_secs()
                );
                late.insert(*peer, Shutdown::Both);
                // Not shut down again at the next look.
                *since = now;
            }
        }
    }
}

/// A thread that drops a cut-off connection's requests in the order they came (each one's
/// answer, tiny_http's 500 that the shut-down socket refuses at once, waits for the one
/// before it), and ends when the connection is forgotten.
fn drain(peer: SocketAddr) -> Option<Sender<Request>> {
    let (dropper, requests) = mpsc::channel::<Request>();
    let spawned = thread::Builder::new()
        .name("cut-off".into())
        .spawn(move || requests.into_iter().for_each(drop));
    match spawned {
        Ok(_) => Some(dropper),
        Err(e) => {
            warn!("cannot start a thread to cut off {peer} ({e}): its requests wait");
            None
        }
    }
}

/// Calls `f` with each socket accepted on `port` and its peer. tiny_http holds the sockets
/// and names none, so they are found among the process's descriptors.
fn each_socket(port: u16, mut f: impl FnMut(SockRef<'_>, SocketAddr)) {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        warn!("cannot list open descriptors: late connections stay open until they pause");
        return;
    };
    let listing = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok());
    for fd in listing.collect::<Vec<RawFd>>() {
        // SAFETY: the descriptor is only borrowed for the calls below and never closed. It
        // may have been closed, or reused for another file, since the listing: the calls then
        // fail (not a socket) or name another peer, and nothing is shut down.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&borrowed);
        let ours = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() == port);
        if !ours {
            continue;
        }
        if let Some(peer) = socket.peer_addr().ok().and_then(|a| a.as_socket()) {
            f(socket, peer);
        }
    }
}
