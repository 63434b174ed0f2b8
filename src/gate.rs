//! A bound on open connections, which tiny_http 0.12 lacks: it accepts as fast as clients
//! connect and spends a thread and two descriptors on each, until accept takes the last
//! descriptor and its accept thread panics.
//!
//! tiny_http offers no way to stop accepting, so the gate changes what its listening
//! descriptor refers to. At the bound, `dup3` points that descriptor at a parked listener
//! that nobody connects to: tiny_http's next accept waits there, and new connections wait in
//! the real socket's backlog, never reset. Below the bound again, `dup3` points it back, and
//! one connection to the parked listener wakes the waiting accept (tiny_http reads nothing
//! from it and closes it).
//!
//! The gate also keeps tiny_http's connection pool moving. When several connections arrive
//! at once, the pool may count a thread as idle that another connection has already woken,
//! and queue the next connection for it instead of starting a thread: that connection then
//! waits, unread, until some other connection closes (on keep-alive connections, for good;
//! this was issue 20's unanswered requests). So the gate knocks: an empty connection of its
//! own every [`KNOCK_EVERY`] makes the pool start a thread when none is idle, and that
//! thread, done with the knock at once, takes up the connection that was queued.
//!
//! The knock has a second duty. The connection deadlines ([`crate::deadline`]) are set on the
//! listening socket, and Linux bounds `accept` by the same receive timeout; tiny_http's accept
//! loop ends for good at its first error. A knock every [`KNOCK_EVERY`] means accept never
//! waits that long; while the slot is parked, accept waits on the parking listener, which has
//! no timeout.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};
use tiny_http::Listener;

use crate::error::{Error, invalid};

/// Open connections beyond which new ones wait in the backlog (two descriptors each).
const MAX_CONNECTIONS: usize = 8192;
/// Connections the kernel completes before anyone accepts them. tiny_http drains a full
/// backlog faster than the gate looks, so the reserve covers it; a socket passed by systemd
/// (whose default is 4096) is set to it too.
const BACKLOG: libc::c_int = 128;
/// Descriptors always kept free, at least: a full backlog accepted between two looks, and
/// room for SQLite and the rest.
const MIN_RESERVE: usize = 2 * (BACKLOG as usize + 64);
/// How often the open descriptors are counted: often once half the budget is in use, since
/// loopback clients can connect thousands of times a second.
const LOOK_EVERY: Duration = Duration::from_millis(10);
const LOOK_CLOSELY_EVERY: Duration = Duration::from_millis(1);
/// How often the gate knocks; a connection queued in tiny_http's pool waits at most this
/// long per connection queued before it.
const KNOCK_EVERY: Duration = Duration::from_millis(100);

/// A listener of the same family as the real one (tiny_http's accept must be able to read
/// the peer's address), which only the gate connects to.
enum Parking {
    Tcp(TcpListener),
    Unix(UnixListener, UnixAddr),
}

impl Parking {
    fn door(&self) -> Option<Door> {
        match self {
            Parking::Tcp(listener) => listener.local_addr().ok().map(Door::Tcp),
            Parking::Unix(_, address) => Some(Door::Unix(address.clone())),
        }
    }

    fn fd(&self) -> RawFd {
        match self {
            Parking::Tcp(listener) => listener.as_raw_fd(),
            Parking::Unix(listener, _) => listener.as_raw_fd(),
        }
    }
}

/// Where a listener is reached from this machine.
enum Door {
    Tcp(SocketAddr),
    Unix(UnixAddr),
}

impl Door {
    fn of(listener: &Listener) -> Option<Door> {
        match listener {
            Listener::Tcp(tcp) => {
                let mut address = tcp.local_addr().ok()?;
                if address.ip().is_unspecified() {
                    address.set_ip(match address {
                        SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                        SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
                    });
                }
                Some(Door::Tcp(address))
            }
            Listener::Unix(unix) => unix.local_addr().ok().map(Door::Unix),
        }
    }

    /// Opens a connection and closes it at once.
    fn knock(&self) {
        let _ = match self {
            Door::Tcp(address) => TcpStream::connect_timeout(address, KNOCK_EVERY).map(drop),
            Door::Unix(address) => UnixStream::connect_addr(address).map(drop),
        };
    }
}

/// Starts the gate over `listener`, which is about to be handed to tiny_http, for a process
/// allowed `descriptor_limit` open descriptors; returns how many it keeps for connections.
pub fn start(listener: &Listener, descriptor_limit: u64) -> Result<usize, Error> {
    let limit = usize::try_from(descriptor_limit).unwrap_or(usize::MAX);
    let reserve = MIN_RESERVE.max(limit / 8);
    let budget = limit.saturating_sub(reserve).min(2 * MAX_CONNECTIONS);
    let in_use = open_descriptors().unwrap_or(0);
    if budget < in_use + 2 * 16 {
        return invalid!(
            "the descriptor limit {limit} leaves no room for connections: raise it (LimitNOFILE=)"
        );
    }
    let cannot = |e| Error::Io("cannot set up the connection bound".into(), e);
    let (slot, real, parking) = match listener {
        Listener::Tcp(tcp) => {
            let parking = TcpListener::bind("127.0.0.1:0").map_err(cannot)?;
            (
                tcp.as_raw_fd(),
                OwnedFd::from(tcp.try_clone().map_err(cannot)?),
                Parking::Tcp(parking),
            )
        }
        Listener::Unix(unix) => {
            let name = format!("zulip-auth-parking-{}", std::process::id());
            let address = UnixAddr::from_abstract_name(name).map_err(cannot)?;
            let parking = UnixListener::bind_addr(&address).map_err(cannot)?;
            let real = OwnedFd::from(unix.try_clone().map_err(cannot)?);
            (unix.as_raw_fd(), real, Parking::Unix(parking, address))
        }
    };
    // SAFETY: listen only changes the backlog of a socket that is already listening.
    if unsafe { libc::listen(slot, BACKLOG) } != 0 {
        return Err(cannot(std::io::Error::last_os_error()));
    }
    // Without its knock, tiny_http's accept would time out and end (module doc).
    let Some(door) = Door::of(listener) else {
        return invalid!("cannot tell where the listening socket is reached: refusing to serve");
    };
    let doors = (door, parking.door());
    thread::Builder::new()
        .name("accept-gate".into())
        .spawn(move || keep(slot, (&real, &parking), &doors, budget))
        .map_err(|e| Error::Io("cannot start the accept gate".into(), e))?;
    Ok(budget)
}

/// Counts descriptors, parks and unparks the listening slot, and knocks on the real door
/// while it is open. `doors`: the real listener's and the parking one's.
fn keep(
    slot: RawFd,
    (real, parking): (&OwnedFd, &Parking),
    doors: &(Door, Option<Door>),
    budget: usize,
) {
    let mut parked = false;
    let mut knocked = Instant::now();
    let mut counted = true;
    loop {
        // Without a count the bound is off, but the knock must go on (see the module doc).
        let open = open_descriptors();
        if counted && open.is_none() {
            warn!("cannot count open descriptors: connections are not bounded");
        }
        counted = open.is_some();
        let open = open.unwrap_or(0);
        if counted && !parked && open >= budget {
            parked = point(slot, parking.fd());
            warn!("{open} descriptors open: new connections wait in the backlog");
        } else if parked && open < budget - budget / 8 {
            parked = !point(slot, real.as_raw_fd());
            // Wakes the accept waiting on the parking listener.
            if let Some(door) = &doors.1 {
                door.knock();
            }
            info!("{open} descriptors open: accepting again");
        }
        if !parked && knocked.elapsed() >= KNOCK_EVERY {
            doors.0.knock();
            knocked = Instant::now();
        }
        thread::sleep(if open * 2 > budget {
            LOOK_CLOSELY_EVERY
        } else {
            LOOK_EVERY
        });
    }
}

/// Makes `slot` refer to what `target` refers to.
fn point(slot: RawFd, target: RawFd) -> bool {
    // SAFETY: both descriptors stay open for the life of the process (tiny_http's listener
    // is never dropped, and the gate owns the others); dup3 replaces slot atomically.
    unsafe { libc::dup3(target, slot, libc::O_CLOEXEC) == slot }
}

fn open_descriptors() -> Option<usize> {
    // The directory's own descriptor is among the entries.
    fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count().saturating_sub(1))
}
