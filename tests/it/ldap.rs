//! A realm's LDAP directory when it cannot answer: stopped (the port is closed) or frozen
//! (it accepts the connection and never says a word). Either way a login gets the generic
//! 401 within seconds and the log says why. tests/ldap/run covers a real directory.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use crate::support::*;

/// The LDAP budget is 5 s for a whole login; before it, a frozen directory cost about 10 s.
const LIVENESS: Duration = Duration::from_secs(8);

fn with_directory_at(port: u16) -> TestServer {
    let server = TestServer::start(&[]);
    use_directory_at(&server, port);
    server
}

/// The root realm's logins go to a directory on this loopback port.
pub fn use_directory_at(server: &TestServer, port: u16) {
    let url = format!("ldap://127.0.0.1:{port}");
    server.ok(&[
        "realm",
        "set",
        "",
        "--ldap-url",
        &url,
        "--ldap-bind-dn",
        "cn=zulip,dc=example,dc=com",
        "--ldap-user-search",
        "ou=people,dc=example,dc=com",
        "--ldap-append-domain",
        "example.com",
    ]);
}

fn login_fails_in_time(server: &TestServer, log_needle: &str) {
    let started = Instant::now();
    server
        .login("hamlet", "Hamlet-Ldap-1")
        .assert_json(401, E11);
    let took = started.elapsed();
    assert!(took < LIVENESS, "the login took {took:?}");
    let log = server.log_containing("reason=LDAP_UNAVAILABLE");
    assert!(
        log.contains("unreachable") && log.contains(log_needle),
        "{log}"
    );
}

#[test]
fn a_stopped_directory_fails_the_login_at_once() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let server = with_directory_at(port);
    login_fails_in_time(&server, "refused");
}

#[test]
fn a_frozen_directory_costs_a_login_at_most_the_budget() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept every connection, hold it open, never answer.
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().collect();
        drop(held);
    });
    let server = with_directory_at(port);
    login_fails_in_time(&server, "no answer within 5 s");
}
