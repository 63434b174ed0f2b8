//! Operations: systemd readiness, graceful shutdown, log formats and what logs never hold.

use std::os::unix::net::UnixDatagram;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn notify_socket_gets_ready_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut server = TestServer::start_with_env(&[], &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
    );
    // Ready means serving.
    assert_eq!(server.get("/health").status, 200);
    server.signal("TERM");
    let n = socket.recv(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "STOPPING=1")
    );
    assert!(server.wait(Duration::from_secs(10)).success());
}

/// A login whose argon2 verification is slow is in flight when SIGTERM arrives: the client
/// still gets its whole 200 and the process exits 0.
#[test]
fn sigterm_lets_a_slow_login_finish() {
    let slow = ["--argon2-m", "262144", "--argon2-t", "3"];
    let mut server = TestServer::start(&slow);
    let mut create = vec!["--argon2-m", "262144", "--argon2-t", "3"];
    create.extend(["--full-name", "Slow"]);
    server.create_user(IAGO, IAGO_PASSWORD, &create);
    let started = Instant::now();
    let client = {
        let addr = server.addr;
        thread::spawn(move || {
            login_on_the_side(addr, "username=iago%40example.com&password=Correct-Horse-9")
        })
    };
    thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    let response = client.join().unwrap();
    let took = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("\"api_key\":\"") && response.ends_with("}\n"),
        "{response}"
    );
    assert!(server.wait(Duration::from_secs(15)).success());
    // The verification really was slower than the delay before the signal.
    assert!(
        took > Duration::from_millis(150),
        "{took:?}: login too fast to prove anything"
    );
}

#[test]
fn sigint_stops_an_idle_server_with_status_zero() {
    let mut server = TestServer::start(&[]);
    server.signal("INT");
    assert!(server.wait(Duration::from_secs(10)).success());
    server.log_containing("stopped");
}

#[test]
fn json_logs_and_nothing_secret_in_them() {
    let server = TestServer::start_with_env(&["--log-format", "json"], &[]);
    server.create_user(IAGO, IAGO_PASSWORD, &[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.send(
        "POST",
        "/api/v1/fetch_api_key?password=Query-Secret-1&username=x%40y.zz",
        &[],
        b"",
    );
    server.login(IAGO, "Body-Secret-2");
    server.get("/health");
    let log = server.log_containing("reason=WRONG_PASSWORD");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["ts"].is_string() && l["level"].is_string() && l["msg"].is_string())
    );
    let messages: Vec<&str> = lines.iter().map(|l| l["msg"].as_str().unwrap()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("POST /api/v1/fetch_api_key 200 ")),
        "{messages:?}"
    );
    assert!(messages.contains(&"authentication failure reason=WRONG_PASSWORD client=127.0.0.1 path=/api/v1/fetch_api_key"), "{messages:?}");
    for secret in [
        IAGO_PASSWORD,
        "Query-Secret-1",
        "Body-Secret-2",
        key.as_str(),
        "password=",
    ] {
        assert!(!log.contains(secret), "{secret} leaked into the log");
    }
    assert!(!log.contains("/health"));
}
