//! The one way this server talks to an identity provider: ureq's blocking client, plugged into
//! openidconnect through its `SyncHttpClient` trait.
//!
//! Every request has a connect bound of [`CONNECT_BOUND`] and a whole bound of
//! [`REQUEST_BOUND`] (sending, waiting, reading the body), shortened to what is left of the
//! step's deadline, so that a step of several requests (discovery, then the keys) ends within
//! [`STEP_BUDGET`]. Redirects are not followed: a provider answers its endpoints itself. Bodies
//! are read up to [`BODY_LIMIT`]. Errors name what failed, never a request's body or headers
//! (which carry the code, the verifier and the client secret).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::{HttpRequest, HttpResponse, SyncHttpClient};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::{Agent, RequestExt};

/// The most a connection to the provider may take.
pub const CONNECT_BOUND: Duration = Duration::from_secs(3);
/// The most one request may take, from connecting to the last byte of the answer.
pub const REQUEST_BOUND: Duration = Duration::from_secs(10);
/// The most the requests of one step (a start, a callback) take together, so that the page
/// after it is answered within 12 s of the request.
pub const STEP_BUDGET: Duration = Duration::from_secs(11);
/// The largest answer read: discovery documents and key sets are a few kilobytes.
const BODY_LIMIT: u64 = 1 << 20;

/// A request that got no usable HTTP answer: its URL (without a query) and what happened.
#[derive(Debug)]
pub struct HttpError {
    pub url: String,
    pub failure: Failure,
}

/// What happened to a request.
#[derive(Debug)]
pub enum Failure {
    /// The step's time ran out before or during the request.
    TimedOut,
    /// No connection: refused, unreachable, or the name does not resolve.
    Connect(String),
    /// The answer is larger than [`BODY_LIMIT`].
    TooLarge,
    /// Anything else: TLS, a broken answer.
    Other(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.url)?;
        match &self.failure {
            Failure::TimedOut => write!(
                f,
                "no answer in time (bounds: {} s to connect, {} s a request)",
                CONNECT_BOUND.as_secs(),
                REQUEST_BOUND.as_secs()
            ),
            Failure::Connect(why) => write!(f, "could not connect ({why})"),
            Failure::TooLarge => write!(f, "an answer larger than {BODY_LIMIT} bytes"),
            Failure::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        match e {
            ureq::Error::Timeout(_) => Self::TimedOut,
            ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => Self::TimedOut,
            ureq::Error::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                ) =>
            {
                Self::Connect(e.to_string())
            }
            ureq::Error::HostNotFound => Self::Connect("the host name does not resolve".into()),
            ureq::Error::ConnectionFailed => Self::Connect("connection failed".into()),
            ureq::Error::BodyExceedsLimit(_) => Self::TooLarge,
            other => Self::Other(other.to_string()),
        }
    }
}

/// The agent shared by every request to every provider: its connection pool and its TLS
/// roots (the system's CA store, or Mozilla's where the system has none).
pub fn agent() -> Agent {
    let system = rustls_native_certs::load_native_certs().certs;
    let roots = if system.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::Specific(Arc::new(
            system
                .iter()
                .map(|der| Certificate::from_der(der.as_ref()).to_owned())
                .collect(),
        ))
    };
    Agent::config_builder()
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .timeout_connect(Some(CONNECT_BOUND))
        .timeout_global(Some(REQUEST_BOUND))
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("zulip-auth/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// The agent with the deadline of one step, as openidconnect's HTTP client.
pub struct Fetcher<'a> {
    pub agent: &'a Agent,
    pub deadline: Instant,
}

impl<'a> Fetcher<'a> {
    /// A step that starts now.
    pub fn new(agent: &'a Agent) -> Self {
        Self {
            agent,
            deadline: Instant::now() + STEP_BUDGET,
        }
    }
}

impl SyncHttpClient for Fetcher<'_> {
    type Error = HttpError;

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let uri = request.uri();
        let url = format!(
            "{}://{}{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("", |a| a.as_str()),
            uri.path()
        );
        self.send(request)
            .map_err(|failure| HttpError { url, failure })
    }
}

impl Fetcher<'_> {
    fn send(&self, request: HttpRequest) -> Result<HttpResponse, Failure> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::TimedOut);
        }
        let whole = left.min(REQUEST_BOUND);
        let response = request
            .with_agent(self.agent)
            .configure()
            .timeout_global(Some(whole))
            .timeout_connect(Some(whole.min(CONNECT_BOUND)))
            .run()?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.with_config().limit(BODY_LIMIT).read_to_vec()?;
        Ok(HttpResponse::from_parts(parts, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::thread;

    fn get(url: &str) -> HttpRequest {
        openidconnect::http::Request::get(url)
            .body(Vec::new())
            .expect("request")
    }

    fn timed_out(result: &Result<HttpResponse, HttpError>) -> bool {
        matches!(
            result,
            Err(HttpError {
                failure: Failure::TimedOut,
                ..
            })
        )
    }

    /// How long a request with `left` of its step takes against a listener on loopback that
    /// accepts the connection and never answers; it must time out.
    fn against_a_silent_provider(agent: &Agent, left: Duration) -> Duration {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/x", listener.local_addr().expect("addr"));
        let (done, wait) = mpsc::channel::<()>();
        let held = thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let _ = wait.recv_timeout(Duration::from_secs(30));
            drop(stream);
        });
        let started = Instant::now();
        let fetcher = Fetcher {
            agent,
            deadline: started + left,
        };
        let result = fetcher.call(get(&url));
        let took = started.elapsed();
        drop(done);
        held.join().expect("listener thread");
        assert!(timed_out(&result), "{result:?}");
        took
    }

    /// The whole bound ends a request to a provider that accepts and never answers.
    #[test]
    fn a_provider_that_never_answers_costs_the_whole_bound() {
        let took = against_a_silent_provider(&agent(), STEP_BUDGET);
        assert!(
            took >= REQUEST_BOUND - Duration::from_millis(100),
            "{took:?}"
        );
        assert!(took < STEP_BUDGET, "{took:?}");
    }

    /// A step's deadline shortens a request's bound, and a spent one makes no request.
    #[test]
    fn the_step_deadline_shortens_the_bound() {
        let agent = agent();
        let took = against_a_silent_provider(&agent, Duration::from_millis(1500));
        assert!(took >= Duration::from_millis(1400), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        let spent = Fetcher {
            agent: &agent,
            deadline: Instant::now(),
        };
        // Nothing listens there: a request made would be refused, not timed out.
        let port = free_port();
        assert!(timed_out(
            &spent.call(get(&format!("http://127.0.0.1:{port}/")))
        ));
    }

    /// A loopback port with nothing behind it.
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    }

    #[test]
    fn a_refused_connection_and_a_redirect_and_a_large_body() {
        let agent = agent();
        let port = free_port();
        let result = Fetcher::new(&agent).call(get(&format!("http://127.0.0.1:{port}/")));
        assert!(
            matches!(
                result,
                Err(HttpError {
                    failure: Failure::Connect(_),
                    ..
                })
            ),
            "{result:?}"
        );

        // A redirect is handed back as it is, not followed; a body past the limit is refused.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let large = vec![b'x'; usize::try_from(BODY_LIMIT).expect("small") + 1];
        let answers = [
            b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n".to_vec(),
            [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", large.len()).as_bytes(), &large].concat(),
        ];
        let server = thread::spawn(move || {
            for answer in answers {
                let (mut stream, _) = listener.accept().expect("accept");
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                let _ = stream.write_all(&answer);
            }
        });
        let redirect = Fetcher::new(&agent)
            .call(get(&format!("{base}/a")))
            .expect("302");
        assert_eq!(redirect.status().as_u16(), 302);
        let large = Fetcher::new(&agent).call(get(&format!("{base}/b")));
        assert!(
            matches!(
                large,
                Err(HttpError {
                    failure: Failure::TooLarge,
                    ..
                })
            ),
            "{large:?}"
        );
        server.join().expect("server thread");
    }
}
