//! The HTTP adapter: tiny_http in, tiny_http out, and the limits tiny_http lacks.
//!
//! Handlers see a plain [`Request`] with a body of at most [`MAX_BODY_BYTES`] and answer a
//! plain [`Response`]; [`pool`] runs the threads that serve them. Open connections are
//! bounded by [`crate::gate`], and their reads and writes by [`crate::deadline`]. What
//! cannot be guarded here (tiny_http 0.12 has no header-size limit, and drains an unread
//! body with one allocation of its declared length) is left to the nginx front; see the
//! README.

mod pool;

pub(crate) use pool::lower_priority;

pub use pool::{
    PoolSize, StopReason, exit_when_tiny_http_panics, queue_capacity, raise_descriptor_limit,
    spawn_workers, stop_taking,
};

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use serde::Serialize;
use tiny_http::Header;

use crate::auth::login::Method;
use crate::error::ApiError;
use crate::params::Params;
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
    /// The `Accept` header: only `GET /` reads it (wire.md §3.5).
    pub accept: Option<String>,
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
    /// The parameters, parsed at the first [`Request::params`]: a login's front thread
    /// parses them, and its hashing thread reads them as parsed.
    pub params: OnceLock<Result<Params, ApiError>>,
}

impl Request {
    /// The query string's and the body's parameters, parsed once.
    pub fn params(&self) -> Result<&Params, ApiError> {
        self.params
            .get_or_init(|| Params::parse(self.content_type.as_deref(), &self.body, &self.query))
            .as_ref()
            .map_err(ApiError::clone)
    }

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
        // Our bodies are plain structs and maps with string keys: they always serialize.
        if serde_json::to_writer(&mut bytes, body).is_err() {
            return Response::error(&ApiError::internal());
        }
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
                .and_then(|seconds| serde_json::to_string(&seconds).ok())
                .map(|seconds| ("Retry-After", seconds))
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
    /// The whole answer: on a hashing thread, for a request [`Handler::front`] passed on,
    /// it may cost an argon2 computation.
    fn handle(&mut self, request: &Request) -> Response;
    /// The answer of a front thread, or `None` when answering may cost an argon2
    /// computation: the request then goes to the hashing threads' [`Handler::handle`], so
    /// that cheap ones never queue behind it. Never hashes, whatever it answers: peak
    /// memory stays `hashing threads × m`. A request passed on is taken from the start
    /// again, so what this did before declining must be a look, never a decision.
    fn front(&mut self, request: &Request) -> Option<Response>;
    /// The path as the log shows it: a handler blanks what is a secret (a reset link's token).
    fn logged_path<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        std::borrow::Cow::Borrowed(path)
    }
    /// The answer to a request refused before or around its handler (a malformed Host, a body
    /// too large or too late, a full queue, a panic): the error's JSON unless the handler
    /// knows better. `request` has its head at least; the handler names its client in the log.
    fn refusal(&self, request: &Request, err: &ApiError) -> Response {
        let _ = request;
        Response::error(err)
    }
}

/// Copies what handlers need out of tiny_http's request, reading at most
/// [`MAX_BODY_BYTES`] of body. A larger declared body is refused without being read. The
/// request comes back whatever happens, with its head at least, and the refusal if any.
fn read_request(raw: &mut tiny_http::Request) -> (Request, Option<ApiError>) {
    let mut request = read_head(raw);
    let refused = read_host_and_body(raw, &mut request).err();
    (request, refused)
}

fn read_host_and_body(raw: &mut tiny_http::Request, request: &mut Request) -> Result<(), ApiError> {
    // wire.md §4.1 step 0, before anything else; two Hosts are as ambiguous as a bad one.
    let mut hosts = raw.headers().iter().filter(|h| h.field.equiv("Host"));
    request.host = match (hosts.next(), hosts.next()) {
        (None, _) => String::new(),
        (Some(host), None) => {
            site::normalize_host(host.value.as_str()).ok_or_else(ApiError::invalid_host)?
        }
        (Some(_), Some(_)) => return Err(ApiError::invalid_host()),
    };
    if raw.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::body_too_large());
    }
    let limit = u64::try_from(MAX_BODY_BYTES + 1).unwrap_or(u64::MAX);
    raw.as_reader()
        .take(limit)
        .read_to_end(&mut request.body)
        .map_err(|_| ApiError::unreadable_body())?;
    if request.body.len() > MAX_BODY_BYTES {
        return Err(ApiError::body_too_large());
    }
    // Fewer bytes than declared: the client went away, or missed the body's deadline.
    if raw.body_length().is_some_and(|n| request.body.len() < n) {
        return Err(ApiError::unreadable_body());
    }
    Ok(())
}

/// The request's head, without its `Host` (which [`read_host_and_body`] checks first) or body.
fn read_head(raw: &tiny_http::Request) -> Request {
    let headers = raw.headers();
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
    Request {
        method: raw.method().as_str().to_owned(),
        path,
        query,
        host: String::new(),
        content_type: header("Content-Type"),
        authorization: header("Authorization"),
        user_agent: header("User-Agent"),
        accept: header("Accept"),
        cookie: header("Cookie"),
        peer: raw.remote_addr().map(SocketAddr::ip),
        // tiny_http names no peer only for a connection to a Unix socket.
        over_unix_socket: raw.remote_addr().is_none(),
        forwarded_for: header("X-Forwarded-For"),
        real_ip: header("X-Real-IP"),
        body: Vec::new(),
        params: OnceLock::new(),
    }
}

fn to_tiny_http(response: Response) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    let content_type = response.content_type.map(|t| ("Content-Type", t));
    let headers = response.headers.iter().map(|(n, v)| (*n, v.as_str()));
    let server = ("Server", "zulip-auth");
    for (name, value) in content_type.into_iter().chain(headers).chain([server]) {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
