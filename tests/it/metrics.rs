//! `/metrics` on its own listener: exact counters after a known set of requests.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::reset::submit;
use crate::support::*;
use crate::web::{enroll, field, now};

/// GET `path` from `addr` (host:port), returning the whole answer.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn metrics_count_a_known_set_of_requests_exactly() {
    let (server, _) = TestServer::with_iago(&[
        "--dev",
        "--auth-rate",
        "2/600s",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    server.create_user("hamlet@example.com", "Hamlet-Pass-9", &[]);
    server.ok(&["user", "deactivate", "hamlet@example.com"]);
    let metrics_addr = metrics_addr(&server);

    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    assert_eq!(server.login(IAGO, "wrong").status, 401);
    assert_eq!(server.login("ghost@example.com", "x").status, 401);
    assert_eq!(server.login("ghost@example.com", "x").status, 401);
    assert_eq!(server.login("ghost@example.com", "x").status, 429);
    assert_eq!(server.login("not-an-email", "x").status, 400);
    assert_eq!(
        server.login("hamlet@example.com", "Hamlet-Pass-9").status,
        401
    );
    let dev = server.post_form("/api/v1/dev_fetch_api_key", &[("username", IAGO)]);
    assert_eq!(dev.status, 200);
    assert_eq!(server.get("/api/v1/server_settings").status, 200);
    assert_eq!(server.get("/nowhere").status, 404);

    let answer = get(&metrics_addr, "/metrics");
    let (head, text) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    for line in [
        r#"zulip_auth_logins_total{method="api",outcome="success"} 1"#,
        r#"zulip_auth_logins_total{method="api",outcome="wrong_password"} 1"#,
        r#"zulip_auth_logins_total{method="api",outcome="unknown_user"} 2"#,
        r#"zulip_auth_logins_total{method="api",outcome="rate_limited"} 1"#,
        r#"zulip_auth_logins_total{method="api",outcome="invalid_email"} 1"#,
        r#"zulip_auth_logins_total{method="api",outcome="user_deactivated"} 1"#,
        r#"zulip_auth_logins_total{method="dev",outcome="success"} 1"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/fetch_api_key",status="200"} 1"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/fetch_api_key",status="401"} 4"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/fetch_api_key",status="429"} 1"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/fetch_api_key",status="400"} 1"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/dev_fetch_api_key",status="200"} 1"#,
        r#"zulip_auth_http_requests_total{route="/api/v1/server_settings",status="200"} 1"#,
        r#"zulip_auth_http_requests_total{route="other",status="404"} 1"#,
        r#"zulip_auth_login_duration_seconds_count{method="api"} 7"#,
        r#"zulip_auth_login_duration_seconds_count{method="dev"} 1"#,
        // Right, wrong, two unknown (the dummy) and deactivated (the dummy too).
        "zulip_auth_password_verification_duration_seconds_count 5",
        "zulip_auth_hashing_queue_depth 0",
        "zulip_auth_hashing_queue_capacity 64",
        r#"zulip_auth_db_errors_total{kind="unavailable"} 0"#,
        r#"zulip_auth_db_errors_total{kind="refused"} 0"#,
        r#"zulip_auth_db_errors_total{kind="key_in_use"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
    let samples = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(samples("zulip_auth_logins_total{"), 7, "{text}");
    assert_eq!(samples("zulip_auth_http_requests_total{"), 7, "{text}");
    let build = text
        .lines()
        .find(|l| l.starts_with("zulip_auth_build_info{"))
        .unwrap();
    assert!(build.starts_with(r#"zulip_auth_build_info{version="0.1.0",commit=""#));
    assert!(build.ends_with("} 1"), "{build}");
    // No label names a user, a key or a client.
    for secret in ["@", key.as_str(), "127.0.0.1", "ghost"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
    assert!(get(&metrics_addr, "/other").starts_with("HTTP/1.1 404 "));
}

/// The metrics address a server logged.
fn metrics_addr(server: &TestServer) -> String {
    let log = server.log_containing("metrics on http://");
    log.split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .unwrap()
        .to_owned()
}

/// A second factor's wrong code is a refused login like a wrong password: counted once, as
/// `wrong_code`, and so is the code step's rate limit. Before, only the password step counted.
#[test]
fn a_code_steps_refusals_are_counted() {
    let (server, _) =
        TestServer::with_iago(&["--auth-rate", "2/600s", "--metrics-listen", "127.0.0.1:0"]);
    let (_, secret) = enroll(&server, IAGO);
    let login = "/accounts/login/";
    let first = submit(
        &server,
        login,
        &[("username", IAGO), ("password", IAGO_PASSWORD)],
        "",
    );
    let step = field(first.text(), "step_token");
    let right = secret.code_at(now());
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    for _ in 0..2 {
        let r = submit(
            &server,
            login,
            &[("step_token", &step), ("otp_token", wrong)],
            "",
        );
        assert_eq!(r.status, 200);
    }
    let text = get(&metrics_addr(&server), "/metrics");
    for line in [
        r#"zulip_auth_logins_total{method="web",outcome="wrong_code"} 1"#,
        r#"zulip_auth_logins_total{method="web",outcome="rate_limited"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
    }
}

#[test]
fn metrics_are_off_by_default() {
    let (server, _) = TestServer::with_iago(&[]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    assert!(
        !server.stderr().contains("metrics on"),
        "{}",
        server.stderr()
    );
}
