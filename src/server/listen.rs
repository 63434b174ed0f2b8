//! Where the server listens: `--listen`, or the socket systemd passed, with the Unix socket's
//! mode and group (`--socket-mode`, `--socket-group`).

use std::ffi::CString;
use std::fmt;
use std::fs::{self, Permissions};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;
use listenfd::ListenFd;
use tiny_http::Listener;

use crate::error::Error;

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

/// The Unix socket's permissions, flattened into the serve options: the front proxy's group
/// must be able to connect, and nobody else.
#[derive(Debug, Clone, Args)]
pub struct SocketArgs {
    /// Mode of the socket of --listen unix:/PATH, in octal
    #[arg(long, env = "ZULIP_AUTH_SOCKET_MODE", value_name = "MODE", default_value = "0660", value_parser = parse_mode)]
    pub socket_mode: u32,

    /// Group of the socket of --listen unix:/PATH, a name or a number (nginx's, such as
    /// www-data) [default: the process's group]
    #[arg(long, env = "ZULIP_AUTH_SOCKET_GROUP", value_name = "GROUP")]
    pub socket_group: Option<String>,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?}: expected an octal mode such as 0660"))
}

/// The socket systemd passed (socket activation, TCP or Unix), else a new one bound to
/// `listen`; with what it listens on. A Unix socket of our own gets `socket`'s mode and group.
pub fn bind(listen: &Listen, socket: &SocketArgs) -> Result<(Listener, Listen), Error> {
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
            let gid = socket.socket_group.as_deref().map(group_id).transpose()?;
            remove_stale_socket(path);
            let unix = UnixListener::bind(path)
                .map_err(|e| Error::Io(format!("cannot listen on {}", path.display()), e))?;
            let complaint = |e| Error::Io(format!("cannot set up {}", path.display()), e);
            std::os::unix::fs::chown(path, None, gid).map_err(complaint)?;
            fs::set_permissions(path, Permissions::from_mode(socket.socket_mode))
                .map_err(complaint)?;
            Ok((unix.into(), listen.clone()))
        }
    }
}

/// A group's id, from its name or its number.
fn group_id(group: &str) -> Result<u32, Error> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let unknown = || Error::Invalid(format!("--socket-group {group:?}: no such group"));
    let name = CString::new(group).map_err(|_| unknown())?;
    // SAFETY: getgrnam_r writes only into the group struct, the buffer of the length passed
    // and the result pointer, all of which live until it returns; the name is NUL-terminated.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    let status = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return Err(unknown());
    }
    Ok(entry.gr_gid)
}

/// A socket file that nothing listens on any more (a previous run was killed) would make
/// binding fail; anything else at the path is left for bind to refuse.
fn remove_stale_socket(path: &Path) {
    let is_socket = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket && UnixStream::connect(path).is_err() {
        let _ = fs::remove_file(path);
    }
}
