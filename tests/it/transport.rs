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

/// A login's request, on a kept-alive connection.
fn login_request(username: &str, password: &str) -> Vec<u8> {
    let body = format!(
        "username={}&password={password}",
        username.replace('@', "%40")
    );
    format!(
        "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const SETTINGS: &[u8] = b"GET /api/v1/server_settings HTTP/1.1\r\nHost: x\r\n\r\n";

/// Reads one response off a kept-alive connection: its status and body.
fn read_response(stream: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>)> {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head[9..12].parse().unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((status, body))
}

/// Sends `request` on a new connection and times its answer, which must be `status`.
fn timed(addr: std::net::SocketAddr, request: &[u8], status: u16) -> Duration {
    let started = Instant::now();
    let mut stream = tcp(addr);
    stream.write_all(request).unwrap();
    let (got, body) = read_response(&mut BufReader::new(stream)).unwrap();
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    started.elapsed()
}

/// A head whose body is still on the wire: `Content-Length: 5000` and the first bytes.
const DRIBBLE_HEAD: &[u8] = b"POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\nus";

/// Issue 20 item 1, the report's repro: as many connections as `--workers` send a head
/// declaring a body of 5000 bytes, 2 bytes of it, then wait. Before the fix the front
/// threads read those bodies, without a deadline, and nothing else was answered.
#[test]
fn bodies_on_the_wire_hold_no_front_thread() {
    let (server, _) = TestServer::with_iago(&["--workers", "2"]);
    let waiting: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = tcp(server.addr);
            stream.write_all(DRIBBLE_HEAD).unwrap();
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let settings = timed(server.addr, SETTINGS, 200);
    let login = timed(server.addr, &login_request(IAGO, IAGO_PASSWORD), 200);
    assert!(settings < Duration::from_secs(1), "{settings:?}");
    assert!(login < Duration::from_secs(2), "{login:?}");
    drop(waiting);
}

/// Raises this process's descriptor limit to its hard limit, for many client sockets.
fn raise_own_descriptor_limit() {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// Issue 20 item 1's goal: while 1,000 connections dribble their bodies (loopback, a few
/// seconds at most), `server_settings` is answered within 1 s and a login within 2 s.
#[test]
fn a_thousand_dribbled_bodies_leave_the_server_responsive() {
    raise_own_descriptor_limit();
    let (server, _) = TestServer::with_iago(&[]);
    let mut dribblers = Vec::new();
    for _ in 0..1000 {
        let Ok(mut stream) = TcpStream::connect_timeout(&server.addr, LIVENESS) else {
            continue;
        };
        stream.write_all(DRIBBLE_HEAD).unwrap();
        dribblers.push(stream);
    }
    assert!(dribblers.len() >= 990, "{} connected", dribblers.len());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dribbling = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for stream in &mut dribblers {
                    let _ = stream.write_all(b"a");
                }
                thread::sleep(Duration::from_millis(200));
            }
        })
    };
    thread::sleep(Duration::from_millis(500));
    let settings = timed(server.addr, SETTINGS, 200);
    let login = timed(server.addr, &login_request(IAGO, IAGO_PASSWORD), 200);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    dribbling.join().unwrap();
    println!("while 1,000 bodies dribbled: server_settings {settings:?}, a login {login:?}");
    assert!(settings < Duration::from_secs(1), "{settings:?}");
    assert!(login < Duration::from_secs(2), "{login:?}");
}

/// Issue 20 item 1: a body must arrive whole within 10 s of its head, however steadily it
/// dribbles; then the client gets the 400 of an unreadable body and the connection closes.
/// The failure line names the client, and deploy/fail2ban's filter counts it.
#[test]
fn a_body_past_its_deadline_is_cut_off() {
    let server = TestServer::start(&[]);
    let mut stream = tcp(server.addr);
    stream.write_all(DRIBBLE_HEAD).unwrap();
    let started = Instant::now();
    let reader = stream.try_clone().unwrap();
    let answer = thread::spawn(move || read_all(reader));
    while !answer.is_finished() && started.elapsed() < LIVENESS {
        let _ = stream.write_all(b"a");
        thread::sleep(Duration::from_millis(300));
    }
    let took = started.elapsed();
    let answer = String::from_utf8(answer.join().unwrap()).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.ends_with("\"msg\":\"Invalid request body\",\"code\":\"BAD_REQUEST\"}\n"));
    assert!(took >= Duration::from_secs(9), "cut off after {took:?}");
    let line =
        "authentication failure reason=LATE_BODY client=127.0.0.1 path=/api/v1/fetch_api_key";
    let log = server.log_containing(line);
    assert!(log.contains("POST /api/v1/fetch_api_key 400"), "{log}");
    let caught = crate::cli::fail2ban_filter().captures(line);
    assert_eq!(
        &caught.expect("the filter catches a late body")["host"],
        "127.0.0.1"
    );
}

/// Issue 20 items 1 and 9: a kept-alive connection is closed once idle for 10 s, and only
/// then: a request 8 s after the last answer is answered.
#[test]
fn an_idle_connection_closes_after_the_pause_only() {
    let server = TestServer::start(&[]);
    let mut stream = BufReader::new(tcp(server.addr));
    for pause in [0, 8] {
        thread::sleep(Duration::from_secs(pause));
        stream.get_mut().write_all(SETTINGS).unwrap();
        assert_eq!(read_response(&mut stream).unwrap().0, 200);
    }
    let idle = Instant::now();
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
    let took = idle.elapsed();
    assert!(took >= Duration::from_secs(9), "closed after {took:?}");
}

/// Issue 20 item 9: 8 kept-alive connections opened at once, 75 requests each, every one
/// answered within 5 s, on 5 fresh servers: no deadline cuts a connection in use. The pool's
/// lost connections that the gate's knock cures show up with a slower client:
/// tests/keepalive/run reproduces them (34 of 6,000 requests unanswered without the knock),
/// this test did not in 20 rounds.
#[test]
fn every_request_on_kept_alive_connections_is_answered() {
    let limits_off = [
        "--workers",
        "2",
        "--auth-rate",
        "off",
        "--address-rate",
        "off",
    ];
    for _ in 0..5 {
        let server = TestServer::start(&limits_off);
        // Opened as soon as the server listens, a first request sent on each before any
        // answer is read: the pool may have no idle thread for some of them.
        let barrier = Arc::new(Barrier::new(8));
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (addr, barrier) = (server.addr, Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    let mut stream = tcp(addr);
                    stream.write_all(SETTINGS).unwrap();
                    keep_asking(stream)
                })
            })
            .collect();
        for client in clients {
            let statuses = client.join().unwrap();
            assert!(
                statuses.iter().all(|s| matches!(s, Ok(200 | 401))),
                "{statuses:?}"
            );
        }
    }
}

/// Reads the answer to the request already sent on `stream`, then sends 74 more (every third
/// a failing login) and reads theirs, each within 5 s.
fn keep_asking(stream: TcpStream) -> Vec<std::io::Result<u16>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut stream = BufReader::new(stream);
    let login = login_request("nobody@example.com", "guess");
    let mut statuses = vec![read_response(&mut stream).map(|(status, _)| status)];
    for n in 1..75 {
        let request = if n % 3 == 0 { &login[..] } else { SETTINGS };
        stream.get_mut().write_all(request).unwrap();
        statuses.push(read_response(&mut stream).map(|(status, _)| status));
        if statuses.last().is_some_and(Result::is_err) {
            break;
        }
    }
    statuses
}

fn unix_login(path: &Path, username: &str) -> u16 {
    let mut stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(LIVENESS)).unwrap();
    let request = login_request(username, "wrong");
    let line_end = request.iter().position(|&b| b == b'\n').unwrap() + 1;
    stream.write_all(&request[..line_end]).unwrap();
    stream.write_all(b"Connection: close\r\n").unwrap();
    stream.write_all(&request[line_end..]).unwrap();
    let reply = String::from_utf8(read_all(stream)).unwrap();
    reply[9..12].parse().unwrap()
}

/// Issue 20 item 5: on the Unix socket, requests without a forwarding header share one
/// address bucket (before, they had none): 40 failures from 40 usernames, 10 of them 429.
#[test]
fn the_address_limit_fails_closed_on_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("http.sock");
    let listen = format!("unix:{}", socket.display());
    let server = Started::new(&["--listen", &listen], |_| {});
    assert_eq!(server.first_line, format!("listening on {listen}\n"));
    let statuses: Vec<u16> = (0..40)
        .map(|n| unix_login(&socket, &format!("nobody{n}@example.com")))
        .collect();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!((refused, limited), (30, 10), "{statuses:?}");
}

/// Issue 20 item 7: the socket of `--listen unix:PATH` is 0660 and the process's group by
/// default, so that the proxy's group can connect; `--socket-mode` and `--socket-group`
/// change them, and a group that does not exist is refused before listening.
#[test]
fn the_unix_socket_has_the_mode_and_group_asked_for() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("http.sock");
    let listen = format!("unix:{}", socket.display());
    // SAFETY: getegid and geteuid take no arguments and cannot fail.
    let (gid, root) = unsafe { (libc::getegid(), libc::geteuid() == 0) };
    let server = Started::new(&["--listen", &listen], |_| {});
    assert_eq!(server.first_line, format!("listening on {listen}\n"));
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid);
    drop(server);
    // Another group needs root; otherwise the process's own, by number.
    let (group, group_id) = if root { ("daemon", 1) } else { ("", gid) };
    let group = if root {
        group.to_owned()
    } else {
        gid.to_string()
    };
    let args = [
        "--listen",
        &listen,
        "--socket-mode",
        "0600",
        "--socket-group",
        &group,
    ];
    let server = Started::new(&args, |_| {});
    assert_eq!(server.first_line, format!("listening on {listen}\n"));
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid(), group_id);
    drop(server);
    let mut unknown = Started::new(
        &["--listen", &listen, "--socket-group", "no-such-group-zz"],
        |_| {},
    );
    let status = unknown.wait(LIVENESS).expect("started without its group");
    assert!(!status.success());
    assert_eq!(unknown.first_line, "");
    assert!(
        unknown.stderr().contains("no such group"),
        "{}",
        unknown.stderr()
    );
    let mut bad_mode = Started::new(&["--listen", &listen, "--socket-mode", "999"], |_| {});
    assert_eq!(bad_mode.wait(LIVENESS).and_then(|s| s.code()), Some(2));
}

/// The server's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Issue 20, the red-team pass on its fixes: one connection that pipelines thousands of
/// requests and never reads the answers. Before, every front thread blocked on writing its
/// answers (10 s each), other connections went unanswered for 40 s, and the queued requests
/// grew the process by about 1.6 KB each. Now one request of a connection goes ahead at a
/// time, and a connection more than 32 requests ahead is cut off.
#[test]
fn one_pipelining_connection_holds_no_more_than_its_share() {
    let server = TestServer::start(&["--workers", "2"]);
    assert!(timed(server.addr, SETTINGS, 200) < LIVENESS);
    let before = resident_kib(server.pid());
    let flood = {
        let stream = tcp(server.addr);
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        thread::spawn(move || {
            let mut stream = stream;
            let burst = SETTINGS.repeat(1000);
            let mut sent = 0;
            // 100,000 requests (4.8 MB), or until the server stops taking them.
            while sent < 100 && stream.write_all(&burst).is_ok() {
                sent += 1;
            }
            thread::sleep(Duration::from_secs(2));
            sent * 1000
        })
    };
    thread::sleep(Duration::from_millis(500));
    let probes: Vec<Duration> = (0..5)
        .map(|_| {
            let took = timed(server.addr, SETTINGS, 200);
            thread::sleep(Duration::from_millis(200));
            took
        })
        .collect();
    let sent = flood.join().unwrap();
    let after = resident_kib(server.pid());
    println!(
        "{sent} requests pipelined: server_settings on another connection in {probes:?}; resident {before} KiB before, {after} KiB after"
    );
    // Liveness, not speed: before the fix the probes waited 10 s and more.
    assert!(
        probes.iter().all(|p| *p < Duration::from_secs(5)),
        "{probes:?}"
    );
    assert!(after < before + 64 * 1024, "{before} KiB, then {after} KiB");
    server.log_containing("requests ahead of its answers: connection cut off");
}

/// Issue 20 item 1, the head's deadline: a head dribbled a byte at a time (never pausing 10 s)
/// is cut off within 10 s of the connection's opening (and the watchdog's second), and other
/// requests are served meanwhile.
#[test]
fn a_head_dribbled_past_its_deadline_is_cut_off() {
    let server = TestServer::start(&[]);
    let mut stream = tcp(server.addr);
    let opened = Instant::now();
    let reader = stream.try_clone().unwrap();
    let answer = thread::spawn(move || read_all(reader));
    let head = b"GET /api/v1/server_settings HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut sent = 0;
    while !answer.is_finished() && opened.elapsed() < LIVENESS {
        if stream.write_all(&head[sent % head.len()..][..1]).is_err() {
            break;
        }
        sent += 1;
        assert!(timed(server.addr, SETTINGS, 200) < Duration::from_secs(5));
        thread::sleep(Duration::from_millis(1500));
    }
    let took = opened.elapsed();
    let answer = answer.join().unwrap();
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(took >= Duration::from_secs(9), "cut off after {took:?}");
    assert!(took < Duration::from_secs(14), "cut off after {took:?}");
    server.log_containing("sent no whole request head within 10 s: connection closed");
}

/// Requests pipelined within the bound are all answered, in order, each once the answer
/// before it is written: one request of a connection at a time loses none.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let limits_off = ["--auth-rate", "off", "--address-rate", "off"];
    let server = TestServer::start(&[&["--workers", "1"][..], &limits_off].concat());
    let mut stream = BufReader::new(tcp(server.addr));
    let login = login_request("nobody@example.com", "guess");
    let mut pipeline = Vec::new();
    for i in 0..30 {
        pipeline.extend_from_slice(if i % 3 == 1 { &login } else { SETTINGS });
    }
    stream.get_mut().write_all(&pipeline).unwrap();
    let statuses: Vec<u16> = (0..30)
        .map(|_| read_response(&mut stream).unwrap().0)
        .collect();
    let expected: Vec<u16> = (0..30)
        .map(|i| if i % 3 == 1 { 401 } else { 200 })
        .collect();
    assert_eq!(statuses, expected);
}
