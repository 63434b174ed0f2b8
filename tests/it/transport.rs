//! The transport under attack, sent directly (no nginx): strict Host parsing, panics outside
//! the handlers, a dead accept loop, the full hashing queue, control characters in logs, the
//! Unix-socket front, and what `serve` refuses or announces at start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const INVALID_HOST: &str = r#"{"result":"error","msg":"Invalid host","code":"BAD_REQUEST"}"#;
const OVERLOADED: &str = "{\"result\":\"error\",\"msg\":\"API usage exceeded rate limit; see https://zulip.com/api/http-headers#rate-limiting-response-headers\",\"code\":\"RATE_LIMIT_HIT\",\"retry-after\":1.0}\n";

/// Generous: these tests prove liveness, not speed.
const LIVENESS: Duration = Duration::from_secs(20);

fn request_with_host(method: &str, path: &str, host: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_malformed_host_is_refused_on_every_route() {
    let server = TestServer::start(&["--external-url", "http://chat.example.com", "--dev"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let bad = [
        "lear.chat.example.com:abc",
        "lear.chat.example.com:80:80",
        "lear.chat.example.com/x",
        "lear.chat.example.com@evil",
        "evil@lear.chat.example.com",
        "lear..chat.example.com",
        "chat.example.com:0",
    ];
    let routes = [
        ("GET", "/api/v1/server_settings"),
        ("POST", "/api/v1/fetch_api_key"),
        ("POST", "/api/v1/dev_fetch_api_key"),
        ("GET", "/api/v1/users/me"),
        ("POST", "/api/v1/users/me/api_key/regenerate"),
        ("GET", "/health"),
        ("GET", "/nothing"),
        ("DELETE", "/api/v1/fetch_api_key"),
    ];
    for host in bad {
        for (method, path) in routes {
            server
                .raw(&request_with_host(method, path, host))
                .assert_json(400, INVALID_HOST);
        }
    }
    // Two Host headers are as ambiguous as a malformed one.
    server
        .raw(b"GET /health HTTP/1.1\r\nHost: chat.example.com\r\nHost: lear.chat.example.com\r\nConnection: close\r\n\r\n")
        .assert_json(400, INVALID_HOST);
    // One trailing dot names the same realm as without it.
    for host in ["lear.chat.example.com.", "lear.chat.example.com.:80"] {
        let settings = server.raw(&request_with_host("GET", "/api/v1/server_settings", host));
        assert_eq!(settings.status, 200, "{host}: {}", settings.text());
        assert_eq!(settings.json()["realm_name"], "Lear", "{host}");
    }
    // Without an external URL too.
    let plain = TestServer::start(&[]);
    plain
        .raw(&request_with_host("GET", "/health", "x:abc"))
        .assert_json(400, INVALID_HOST);
    plain
        .raw(&request_with_host("GET", "/health", "[::1]:9991"))
        .assert_json(200, r#"{"result":"success","msg":""}"#);
}

fn read_all(mut stream: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    bytes
}

fn tcp(addr: std::net::SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIVENESS)).unwrap();
    stream
}

/// tiny_http drains an unread body with one allocation of its declared length, which panics
/// for 2^63 after the 413 is sent. More such requests than front threads, then a plain one.
#[test]
fn a_panic_while_dropping_a_request_costs_no_thread() {
    let server = TestServer::start(&["--workers", "1"]);
    for _ in 0..3 {
        let mut stream = tcp(server.addr);
        stream
            .write_all(
                b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
            )
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413");
    }
    server
        .get("/health")
        .assert_json(200, r#"{"result":"success","msg":""}"#);
    server.log_containing("a request panicked outside its handler");
}

/// Logins wait in a bounded queue; past it they get the overload 429 at once, and cheap
/// requests never wait behind them.
#[test]
fn a_full_hashing_queue_answers_429_at_once() {
    let slow = [
        "--workers",
        "1",
        "--argon2-m",
        "16384",
        "--argon2-t",
        "2",
        "--address-rate",
        "off",
    ];
    let server = TestServer::start(&slow);
    let logins = 120;
    let barrier = Arc::new(Barrier::new(logins));
    let clients: Vec<_> = (0..logins)
        .map(|i| {
            let (addr, barrier) = (server.addr, Arc::clone(&barrier));
            thread::spawn(move || {
                let body = format!("username=nobody{i}%40example.com&password=x");
                let request = format!(
                    "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                barrier.wait();
                stream.write_all(request.as_bytes()).unwrap();
                read_all(stream)
            })
        })
        .collect();
    // While the queue is full, a cheap request is answered.
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.get("/api/v1/server_settings");
    let cheap = started.elapsed();
    let replies: Vec<String> = clients
        .into_iter()
        .map(|c| String::from_utf8(c.join().unwrap()).unwrap())
        .collect();
    let overloaded: Vec<&String> = replies
        .iter()
        .filter(|r| r.starts_with("HTTP/1.1 429"))
        .collect();
    let refused = replies
        .iter()
        .filter(|r| r.starts_with("HTTP/1.1 401"))
        .count();
    assert!(!overloaded.is_empty(), "no 429 among {logins} logins");
    assert_eq!(overloaded.len() + refused, logins);
    for reply in &overloaded {
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, OVERLOADED);
        assert!(head.contains("\r\nRetry-After: 1.0\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("x-ratelimit"), "{head}");
    }
    // A refused login writes no audit row; each verified one does.
    let audit = server.stdout(&["audit", "--json"]);
    assert_eq!(audit.lines().count(), refused, "{audit}");
    println!(
        "{} of {logins} logins overloaded; server_settings took {cheap:?} meanwhile",
        overloaded.len()
    );
}

#[test]
fn control_characters_in_paths_are_escaped_in_both_log_formats() {
    for format in ["text", "json"] {
        let server = TestServer::start(&["--log-format", format]);
        server.raw(b"GET /a\nb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        server.raw(b"GET /c\rd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        // Two front threads may log the two requests in either order: wait for both.
        server.log_containing("GET /a");
        let raw = server.log_containing("GET /c");
        assert!(!raw.contains('\r'), "{raw}");
        let log = if format == "json" {
            let messages: Vec<String> = raw
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["msg"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            messages.join("\n")
        } else {
            raw
        };
        assert!(log.contains("GET /c\\rd 404"), "{log}");
        assert!(log.contains("GET /a\\nb 404"), "{log}");
        assert!(!log.lines().any(|l| l.starts_with("b ")), "{log}");
    }
}

/// A server started by hand: for arguments or an environment that TestServer does not give.
struct Started {
    child: Child,
    first_line: String,
    stderr: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Started {
    fn new(args: &[&str], setup: impl FnOnce(&mut Command)) -> Started {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut command = bin();
        command
            .arg("--db")
            .arg(dir.path().join("db.sqlite3"))
            .arg("serve")
            .args(args)
            .env("ZULIP_AUTH_ARGON2_M", "256")
            .env("ZULIP_AUTH_ARGON2_T", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        setup(&mut command);
        let mut child = command.spawn().unwrap();
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first_line)
            .unwrap();
        Started {
            child,
            first_line,
            stderr,
            _dir: dir,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    fn log_containing(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(Instant::now() < deadline, "{needle:?} not in {log}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        unsafe_kill(self.child.id(), "TERM");
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn listening_addr(line: &str) -> std::net::SocketAddr {
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap()
}

fn with_descriptor_limit(descriptors: u64) -> impl FnOnce(&mut Command) {
    move |c| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child being spawned.
        unsafe {
            c.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: descriptors,
                    rlim_max: descriptors,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
}

/// Idle connections beyond the descriptors: without a bound, accept takes the last
/// descriptor and tiny_http's accept thread dies (or, by the limit's parity, accept fails).
/// With it, new connections wait in the backlog, or their SYN waits, and are served once
/// others close; none is refused or reset.
#[test]
fn connections_beyond_the_bound_wait_in_the_backlog() {
    let args = ["--listen", "127.0.0.1:0", "--workers", "1"];
    // 500 descriptors leave 116 for connections: about 50 are accepted and 128 wait in the
    // backlog; 250 connections would need more than 500 descriptors.
    let server = Started::new(&args, with_descriptor_limit(500));
    let addr = listening_addr(&server.first_line);
    let mut idle = Vec::new();
    for _ in 0..250 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(mut stream) => {
                // Headers never finished: each holds a connection, a thread, two descriptors.
                let _ = stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
                idle.push(stream);
            }
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        }
    }
    server.log_containing("new connections wait in the backlog");
    drop(idle);
    let mut waiting = tcp(addr);
    waiting
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8(read_all(&mut waiting)).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
    server.log_containing("accepting again");

    // A limit that leaves no room for connections is refused at start.
    let mut tiny = Started::new(&args, with_descriptor_limit(48));
    let status = tiny.wait(LIVENESS).expect("started with 48 descriptors");
    assert!(!status.success());
    assert!(
        tiny.stderr().contains("descriptor limit 48"),
        "{}",
        tiny.stderr()
    );
}

#[test]
fn the_descriptor_limit_is_raised_at_start() {
    let server = Started::new(&["--listen", "127.0.0.1:0"], |c| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child being spawned.
        unsafe {
            c.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 4096,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                Ok(())
            });
        }
    });
    listening_addr(&server.first_line);
    server.log_containing("; 4096 descriptors");
}

fn unix_get(path: &Path, extra: &str) -> String {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(LIVENESS)).unwrap();
    write!(
        stream,
        "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\nusername=a%40b.zz&passwo"
    )
    .unwrap();
    String::from_utf8(read_all(stream)).unwrap()
}

/// Over the Unix socket, forwarding headers name the client; from a TCP peer that is not a
/// trusted proxy they are ignored.
#[test]
fn the_unix_socket_trusts_forwarding_headers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("http.sock");
    let listen = format!("unix:{}", socket.display());
    let mut server = Started::new(&["--listen", &listen], |_| {});
    assert_eq!(server.first_line, format!("listening on {listen}\n"));
    let reply = unix_get(&socket, "X-Forwarded-For: 192.0.2.7\r\n");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    server.log_containing("client=192.0.2.7");
    assert!(server.terminate().is_some_and(|s| s.success()));

    let tcp = TestServer::start(&[]);
    tcp.send(
        "GET",
        "/api/v1/server_settings",
        &[("X-Forwarded-For", "192.0.2.8")],
        b"",
    );
    let log = tcp.log_containing("GET /api/v1/server_settings 200");
    assert!(!log.contains("192.0.2.8"), "{log}");
    assert!(log.contains("client=127.0.0.1"), "{log}");
}

#[test]
fn absurd_serve_values_exit_2_before_listening() {
    for args in [
        ["--workers", "100000"],
        ["--workers", "0"],
        ["--shutdown-timeout", "99999999"],
        ["--listen", "unix:relative.sock"],
    ] {
        let server = Started::new(&args, |_| {});
        let mut server = server;
        let status = server.wait(LIVENESS).expect("still running");
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert_eq!(server.first_line, "", "{args:?}");
        assert!(
            server.stderr().contains(args[0]),
            "{args:?}: {}",
            server.stderr()
        );
    }
}

#[test]
fn dev_mode_warns_and_stays_on_loopback() {
    let server = TestServer::start(&["--dev"]);
    server.log_containing("DEVELOPMENT MODE (--dev)");
    let mut remote = Started::new(&["--dev", "--listen", "0.0.0.0:0"], |_| {});
    let status = remote.wait(LIVENESS).expect("--dev served on 0.0.0.0");
    assert!(!status.success());
    assert_eq!(remote.first_line, "");
    assert!(
        remote.stderr().contains("--dev-allow-remote"),
        "{}",
        remote.stderr()
    );
    let mut allowed = Started::new(
        &["--dev", "--dev-allow-remote", "--listen", "0.0.0.0:0"],
        |_| {},
    );
    assert!(
        allowed
            .first_line
            .starts_with("listening on http://0.0.0.0:")
    );
    assert!(allowed.terminate().is_some_and(|s| s.success()));
}

#[test]
fn the_start_up_log_names_what_is_served() {
    let server = TestServer::start(&["--trusted-proxy", "10.0.0.1", "--auth-rate", "off"]);
    let log = server.log_containing("zulip-auth ");
    let line = log.lines().find(|l| l.contains("zulip-auth 0.")).unwrap();
    for part in [
        &format!("zulip-auth {}: database ", env!("CARGO_PKG_VERSION")),
        server.db.to_str().unwrap(),
        "limits per username off, per address 30/600s",
        "trusted proxies 10.0.0.1",
        "4 front and 4 hashing threads, at most 64 logins queued",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
}

/// A demo killed with SIGKILL cannot clean up; the next demo removes its directory, and a
/// demo stopped by a signal removes its own.
#[test]
fn demo_databases_do_not_pile_up_in_the_temp_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = || std::fs::read_dir(tmp.path()).unwrap().count();
    let with_tmp = |c: &mut Command| {
        c.env("TMPDIR", tmp.path());
    };
    let mut killed = Started::new(&["--demo", "--listen", "127.0.0.1:0"], with_tmp);
    listening_addr(&killed.first_line);
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    assert_eq!(entries(), 1, "the killed demo's directory");
    let mut next = Started::new(&["--demo", "--listen", "127.0.0.1:0"], with_tmp);
    listening_addr(&next.first_line);
    next.log_containing("database temporary (");
    assert_eq!(entries(), 1, "only the live demo's directory");
    assert!(next.terminate().is_some_and(|s| s.success()));
    assert_eq!(entries(), 0);
}
