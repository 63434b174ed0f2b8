//! Request hygiene (wire.md §3.4, §3.5) and the adapter's guards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

const TOO_LARGE: &str = r#"{"result":"error","msg":"Request body too large","code":"BAD_REQUEST"}"#;

#[test]
fn unknown_routes_are_a_json_404() {
    let server = TestServer::start(&[]);
    for path in [
        "/",
        "/api/v1/fetch_api_key/",
        "/API/v1/fetch_api_key",
        "/api/v1/register",
        "/json/fetch_api_key",
    ] {
        server.get(path).assert_json(404, NOT_FOUND);
    }
    server
        .send("POST", "/api/v1/nothing", &[], b"")
        .assert_json(404, NOT_FOUND);
}

#[test]
fn declared_large_body_is_refused_unread() {
    let server = TestServer::start(&[]);
    // Declares 1 MiB but sends nothing: the answer must not wait for the body.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.ends_with(&format!("{TOO_LARGE}\n")), "{head}");
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let server = TestServer::start(&[]);
    let chunk = "a".repeat(0x8000);
    let mut request = String::from(
        "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
    );
    for _ in 0..3 {
        request.push_str(&format!("8000\r\n{chunk}\r\n"));
    }
    request.push_str("0\r\n\r\n");
    server.raw(request.as_bytes()).assert_json(413, TOO_LARGE);
    // Exactly 64 KiB is still accepted.
    let prefix = "username=x&password=y&pad=";
    let body = format!("{prefix}{}", "a".repeat(64 * 1024 - prefix.len()));
    assert_eq!(body.len(), 64 * 1024);
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .assert_json(400, E5);
}

#[test]
fn parameter_count_nul_and_utf8() {
    let server = TestServer::start(&[]);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let many = "a=1&".repeat(99);
    let r = server.send("POST", "/api/v1/fetch_api_key?b=2", &form, many.as_bytes());
    r.assert_json(400, E2);
    let r = server.send(
        "POST",
        "/api/v1/fetch_api_key?b=2&c=3",
        &form,
        many.as_bytes(),
    );
    r.assert_json(
        400,
        r#"{"result":"error","msg":"Too many parameters","code":"BAD_REQUEST"}"#,
    );
    let nul = r#"{"result":"error","msg":"Invalid characters in request parameters","code":"BAD_REQUEST"}"#;
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &form,
            b"username=a%00b&password=x",
        )
        .assert_json(400, nul);
    server
        .send("POST", "/api/v1/fetch_api_key?x%00=1", &form, b"")
        .assert_json(400, nul);
    let utf8 =
        r#"{"result":"error","msg":"Invalid UTF-8 in request parameters","code":"BAD_REQUEST"}"#;
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &form,
            b"username=a&password=%C3%28",
        )
        .assert_json(400, utf8);
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &form,
            b"username=a&password=\xff",
        )
        .assert_json(400, utf8);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    stream.write_all(one).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
}

#[test]
fn health() {
    let server = TestServer::start(&[]);
    server
        .get("/health")
        .assert_json(200, r#"{"result":"success","msg":""}"#);
    assert_eq!(server.send("HEAD", "/health", &[], b"").status, 200);
    for method in ["POST", "OPTIONS"] {
        let r = server.send(method, "/health", &[], b"");
        assert_eq!(
            (r.status, r.text()),
            (
                405,
                r#"{"result":"error","msg":"Method Not Allowed","allowed_methods":["GET","HEAD"]}"#
            )
        );
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert!(!server.stderr().contains("GET /health"));
}

#[test]
fn a_forms_path_refused_before_its_handler_gets_a_plain_page() {
    let server = TestServer::start(&[]);
    let body = vec![b'a'; 64 * 1024 + 1];
    for path in ["/accounts/login/", "/accounts/password/reset/x/"] {
        let page = server.send(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &body,
        );
        assert_eq!(page.status, 413, "{path}");
        assert_eq!(
            page.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
        assert!(
            page.text().contains("<p>Request body too large</p>"),
            "{}",
            page.text()
        );
    }
    let bad_host =
        server.raw(b"GET /accounts/login/ HTTP/1.1\r\nHost: x:abc\r\nConnection: close\r\n\r\n");
    assert_eq!(bad_host.status, 400);
    assert!(
        bad_host.text().contains("<p>Invalid host</p>"),
        "{}",
        bad_host.text()
    );
    // The API beside them keeps its JSON.
    server
        .send("POST", "/api/v1/fetch_api_key", &[], &body)
        .assert_json(413, TOO_LARGE);
}
