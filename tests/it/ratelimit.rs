//! Rate limits (wire.md §8, §8.1) through the real binary: upstream's test sequence, headers,
//! persistence across a restart, and the per-address limit behind a trusted proxy.

use std::thread::sleep;
use std::time::Duration;

use crate::support::*;

const E6_PREFIX: &str = r#"{"result":"error","msg":"API usage exceeded rate limit; see https://zulip.com/api/http-headers#rate-limiting-response-headers","code":"RATE_LIMIT_HIT","retry-after":"#;

#[track_caller]
fn assert_limited(r: &HttpResponse) -> f64 {
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(
        r.text().starts_with(E6_PREFIX) && r.text().ends_with("}\n"),
        "{}",
        r.text()
    );
    // The header and the JSON key hold the same float, written the same way.
    let header = r.header("retry-after").unwrap();
    assert!(
        r.text()
            .ends_with(&format!(",\"retry-after\":{header}}}\n")),
        "{header} vs {}",
        r.text()
    );
    assert!(header.contains('.'), "{header}");
    let retry_after: f64 = header.parse().unwrap();
    retry_after
}

/// A 429 from the username bucket, whose headers say it is empty.
#[track_caller]
fn assert_username_limited(r: &HttpResponse) -> f64 {
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_limited(r)
}

fn remaining(r: &HttpResponse) -> Option<&str> {
    r.header("x-ratelimit-remaining")
}

/// zulip/zulip's RateLimitAuthenticationTests, with its rule of 2 attempts per 3 s.
#[test]
fn upstream_sequence() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/3s", "--address-rate", "off"]);
    assert_eq!(remaining(&server.login(IAGO, "wrong")), Some("1"));
    assert_eq!(remaining(&server.login(IAGO, "wrong")), Some("0"));
    let retry_after = assert_username_limited(&server.login(IAGO, IAGO_PASSWORD));
    assert!(retry_after > 0.0 && retry_after <= 3.0, "{retry_after}");
    assert_username_limited(&server.login(IAGO, "wrong"));
    sleep(Duration::from_secs_f64(retry_after + 0.2));
    server.login(IAGO, "wrong").assert_json(401, E11);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    // The success cleared the bucket.
    server.login(IAGO, "wrong").assert_json(401, E11);
    server.login(IAGO, "wrong").assert_json(401, E11);
    assert_username_limited(&server.login(IAGO, "wrong"));
}

#[test]
fn six_attempts_with_the_default_rule_and_headers_on_every_counted_answer() {
    let (server, id) = TestServer::with_iago(&["--address-rate", "off"]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = server.login(IAGO, "wrong");
    assert_eq!(first.header("x-ratelimit-limit"), Some("5"));
    let reset: u64 = first.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((before + 1799..=before + 1801).contains(&reset), "{reset}");
    for expected in ["3", "2", "1", "0"] {
        assert_eq!(remaining(&server.login(IAGO, "wrong")), Some(expected));
    }
    let retry_after = assert_username_limited(&server.login(IAGO, IAGO_PASSWORD));
    assert!(retry_after > 1790.0 && retry_after < 1800.0);
    // Every spelling of the account is the same bucket (wire.md §8, ours; upstream keys the
    // raw string, so each spelling would get five more guesses).
    for spelling in ["Iago@example.com", "IAGO@EXAMPLE.COM", "iaGO@exAMple.cOm"] {
        assert_username_limited(&server.login(spelling, IAGO_PASSWORD));
    }
    // Other accounts are other buckets.
    let other = server.create_user("othello@example.com", "Moor-Of-Venice-9", &[]);
    let r = server.login("Othello@example.com", "Moor-Of-Venice-9");
    assert_eq!(
        (r.json()["user_id"].as_i64(), remaining(&r)),
        (Some(other), Some("4"))
    );
    assert_ne!(other, id);
    // Checks before step 5 neither count nor carry headers.
    for r in [
        server.login("hamlet", "x"),
        server.post_form("/api/v1/fetch_api_key", &[("username", IAGO)]),
    ] {
        assert_eq!(r.status, 400);
        assert_eq!(r.header("x-ratelimit-limit"), None);
    }
    // Deactivation, E9 and empty passwords are counted attempts with headers.
    server.create_user("d@example.com", "Deact-Pass-1", &[]);
    server.ok(&["user", "deactivate", "d@example.com"]);
    assert_eq!(remaining(&server.login("d@example.com", "x")), Some("4"));
    assert_eq!(remaining(&server.login("d@example.com", "")), Some("3"));
    server.ok(&["realm", "set", "", "--password-auth", "off"]);
    let disabled = server.login("d@example.com", "x");
    assert_eq!((disabled.status, remaining(&disabled)), (401, Some("2")));
}

#[test]
fn limits_survive_a_restart() {
    let (mut server, _) =
        TestServer::with_iago(&["--auth-rate", "2/1800s", "--address-rate", "off"]);
    server.login(IAGO, "wrong");
    server.login(IAGO, "wrong");
    server.restart();
    assert_username_limited(&server.login(IAGO, IAGO_PASSWORD));
}

#[test]
fn off_means_no_limit_and_no_headers() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "off", "--address-rate", "off"]);
    for _ in 0..8 {
        let r = server.login(IAGO, "wrong");
        assert_eq!((r.status, r.header("x-ratelimit-limit")), (401, None));
    }
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
}

#[test]
fn address_limit_stops_password_spraying() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "3/600s"]);
    for n in 0..3 {
        server
            .login(&format!("victim{n}@example.com"), "Spring2026!")
            .assert_json(401, E11);
    }
    // The fourth account, even with the right password, is refused for this address…
    let r = server.login(IAGO, IAGO_PASSWORD);
    let retry_after = assert_limited(&r);
    assert!(retry_after > 590.0 && retry_after <= 600.0);
    // …before any username bucket is consulted, so no X-RateLimit-* headers describe one.
    assert_eq!(r.header("x-ratelimit-limit"), None);
    assert_eq!(r.header("x-ratelimit-remaining"), None);
    server.log_containing("reason=UNKNOWN_USER client=127.0.0.1");
}

fn rate_limit_rows(server: &TestServer) -> i64 {
    server.row_count("rate_limit_event")
}

/// Issue 12 item 5: a blocked client's requests count against nobody and write nothing.
#[test]
fn a_blocked_address_cannot_lock_a_victim_out() {
    let (server, _) =
        TestServer::with_iago(&["--address-rate", "3/600s", "--trusted-proxy", "127.0.0.1"]);
    let from = |client: &str, password: &str| {
        server.post_form_with(
            "/api/v1/fetch_api_key",
            &[("username", IAGO), ("password", password)],
            &[("X-Forwarded-For", client)],
        )
    };
    for _ in 0..3 {
        from("198.51.100.1", "wrong").assert_json(401, E11);
    }
    let rows = rate_limit_rows(&server);
    for _ in 0..10 {
        let r = from("198.51.100.1", "wrong");
        assert_limited(&r);
        assert_eq!(r.header("x-ratelimit-remaining"), None);
    }
    assert_eq!(
        rate_limit_rows(&server),
        rows,
        "a refused request wrote rows"
    );
    // The victim, from its own address: two attempts left of five, as three were counted.
    let r = from("198.51.100.2", IAGO_PASSWORD);
    assert_eq!((r.status, remaining(&r)), (200, Some("1")));
}

#[test]
fn a_success_does_not_clear_the_address_bucket() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "3/600s"]);
    server.login("a@example.com", "x").assert_json(401, E11);
    server.login("b@example.com", "x").assert_json(401, E11);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    server.login("c@example.com", "x").assert_json(401, E11);
    // Three failures in the window, the success between them notwithstanding.
    assert_limited(&server.login(IAGO, IAGO_PASSWORD));
}

#[test]
fn behind_a_trusted_proxy_each_client_has_its_own_bucket() {
    let (server, _) =
        TestServer::with_iago(&["--address-rate", "2/600s", "--trusted-proxy", "127.0.0.1"]);
    let from = |client: &str, username: &str, password: &str| {
        server.post_form_with(
            "/api/v1/fetch_api_key",
            &[("username", username), ("password", password)],
            &[("X-Forwarded-For", &format!("203.0.113.66, {client}"))],
        )
    };
    from("198.51.100.1", "a@example.com", "x").assert_json(401, E11);
    from("198.51.100.1", "b@example.com", "x").assert_json(401, E11);
    assert_limited(&from("198.51.100.1", IAGO, IAGO_PASSWORD));
    assert_eq!(from("198.51.100.2", IAGO, IAGO_PASSWORD).status, 200);
    server.log_containing("client=198.51.100.1");
}

/// The abuse issue's bar: 1000 guesses against one account verify at most 5 of them.
#[test]
fn a_thousand_guesses_verify_five() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "off"]);
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..1000 {
        let r = server.login(IAGO, &format!("guess-{n}"));
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(401, 5), (429, 995)].into_iter().collect());
    // The owner still cannot get in until the window passes, as upstream.
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
}

/// Issue 25 item 4: a username over its limit is answered on a front thread, never behind
/// the hashing threads. Here the only one is held by a login whose directory accepts and
/// never answers (for up to the 5 s LDAP budget); the 429 comes while it is still held,
/// which the directory's end of that connection shows: still open, where a login that had
/// ended (as it must before its thread takes the next request) would have closed it.
#[test]
fn a_limited_username_is_answered_while_every_hashing_thread_is_busy() {
    use std::io::{ErrorKind, Read};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::ldap::use_directory_at;

    // On PostgreSQL a login's front step reads nothing (wire.md §8, overload): its 429 waits
    // for a hashing thread.
    if on_postgres() {
        return;
    }
    let server = TestServer::start(&["--workers", "1", "--address-rate", "off"]);
    let directory = TcpListener::bind("127.0.0.1:0").unwrap();
    use_directory_at(&server, directory.local_addr().unwrap().port());
    // First the directory hangs up at once, so each attempt fails fast: five fill hamlet's
    // bucket.
    directory.set_nonblocking(true).unwrap();
    let hanging_up = Arc::new(AtomicBool::new(true));
    let hang_up = {
        let (directory, hanging_up) = (directory.try_clone().unwrap(), Arc::clone(&hanging_up));
        std::thread::spawn(move || {
            while hanging_up.load(Ordering::SeqCst) {
                if directory.accept().is_err() {
                    sleep(Duration::from_millis(10));
                }
            }
        })
    };
    for _ in 0..5 {
        server.login("hamlet", "Wrong-1").assert_json(401, E11);
    }
    hanging_up.store(false, Ordering::SeqCst);
    hang_up.join().unwrap();
    // Then it accepts and never answers.
    directory.set_nonblocking(false).unwrap();
    let addr = server.addr;
    let held_login =
        std::thread::spawn(move || login_on_the_side(addr, "username=ophelia&password=Wrong-1"));
    // The hashing thread is inside ophelia's login: it reached the directory.
    let (mut held, _) = directory.accept().unwrap();
    let limited = server.login("hamlet", "Wrong-1");
    // The per-username 429 (X-RateLimit-Remaining: 0).
    assert_username_limited(&limited);
    held.set_nonblocking(true).unwrap();
    let mut bind_request = [0u8; 256];
    let open = loop {
        match held.read(&mut bind_request) {
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
            Err(e) => panic!("{e}"),
        }
    };
    assert!(open, "the held login ended before the 429 was answered");
    drop(held);
    let reply = held_login.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    assert!(reply.ends_with(&format!("{E11}\n")), "{reply}");
}
