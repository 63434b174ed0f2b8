//! Deadlines on connections, which tiny_http 0.12 lacks (README, "Production runs behind a
//! TLS-terminating proxy"; wire.md §3.4).
//!
//! - **A pause**: no read or write on a connection waits longer than [`PAUSE`]. The receive
//!   and send timeouts are set on the listening socket, and Linux copies them to every socket
//!   it accepts, so tiny_http's own reads time out too: a client silent in the middle of a
//!   request head, of a body, or on an idle keep-alive connection is closed, and the thread
//!   that waited on it is free again. Linux bounds `accept` on that socket by the same
//!   timeout: the gate's knock ([`crate::gate`]) keeps it from ever waiting that long.
//! - **A whole body**: a body still on the wire when its head is read must arrive whole within
//!   [`BODY`] of the head, whatever pace the client keeps (one byte a second never pauses
//!   long). Its reader asks the [`Watchdog`] to watch it; when the time passes, the watchdog
//!   shuts the connection down for reading, so that every read on it, tiny_http's drain of an
//!   unread body included, ends at once. It finds the socket by the client's address, so this
//!   holds on TCP; on the Unix socket the front proxy buffers bodies and keeps its own
//!   deadlines, and the pause is the bound.

use std::collections::HashSet;
use std::fs;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use log::warn;
use socket2::SockRef;
use tiny_http::Listener;

use crate::error::Error;

/// The longest a connection may keep a read or a write waiting: within a request head,
/// within a body, and between two requests on a kept-alive connection.
pub const PAUSE: Duration = Duration::from_secs(10);
/// The longest a body may take from its head to its last byte: at most 64 KiB (wire.md
/// §3.4), so at least 6.4 KiB a second on average.
pub const BODY: Duration = Duration::from_secs(10);
/// How often the watchdog looks for connections past their deadline.
const LOOK_EVERY: Duration = Duration::from_millis(100);

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

/// Shuts down the connections whose body is late; cheap to clone.
#[derive(Clone)]
pub struct Watchdog {
    shared: Arc<Shared>,
}

struct Shared {
    watched: Mutex<Vec<Watched>>,
    next_id: AtomicU64,
    /// The listener's port: only sockets accepted from it are ever shut down.
    port: Option<u16>,
}

struct Watched {
    id: u64,
    peer: SocketAddr,
    deadline: Instant,
}

/// A connection watched until this is dropped.
pub struct Watch {
    shared: Arc<Shared>,
    id: Option<u64>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.lock().retain(|w| w.id != id);
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
            port,
        });
        let watched = Arc::clone(&shared);
        thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                loop {
                    thread::sleep(LOOK_EVERY);
                    let now = Instant::now();
                    let mut late = HashSet::new();
                    watched.lock().retain(|w| {
                        let on_time = w.deadline > now;
                        if !on_time {
                            late.insert(w.peer);
                        }
                        on_time
                    });
                    if let (false, Some(port)) = (late.is_empty(), watched.port) {
                        shut_down(port, &late);
                    }
                }
            })
            .map_err(|e| Error::Io("cannot start the connection watchdog".into(), e))?;
        Ok(Watchdog { shared })
    }

    /// Watches the connection from `peer` (`None`: the Unix socket, which the pause bounds)
    /// until the returned guard is dropped; after `deadline` it is shut down for reading.
    pub fn watch(&self, peer: Option<SocketAddr>, deadline: Instant) -> Watch {
        let id = peer.map(|peer| {
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            self.shared.lock().push(Watched { id, peer, deadline });
            id
        });
        Watch {
            shared: Arc::clone(&self.shared),
            id,
        }
    }
}

/// Shuts down, for reading, the sockets accepted on `port` whose peer is in `late`. tiny_http
/// holds the sockets and names none, so they are found among the process's descriptors.
fn shut_down(port: u16, late: &HashSet<SocketAddr>) {
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
        let peer = socket.peer_addr().ok().and_then(|a| a.as_socket());
        if ours && peer.is_some_and(|p| late.contains(&p)) {
            let _ = socket.shutdown(Shutdown::Read);
        }
    }
}
