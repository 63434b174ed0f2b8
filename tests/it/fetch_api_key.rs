//! `POST /api/v1/fetch_api_key`: every row of wire.md §5.3 through the real binary.

use std::sync::{Arc, Barrier};
use std::thread;

use crate::support::*;

#[test]
fn success_returns_the_stored_email_and_a_stable_key() {
    let (server, id) = TestServer::with_iago(&[]);
    let first = server.login("IAGO@Example.COM", IAGO_PASSWORD);
    let key = first.api_key();
    assert!(
        key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{key}"
    );
    first.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}","user_id":{id}}}"#
        ),
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), key);
}

#[test]
fn method_other_than_post_is_e1_before_anything_else() {
    let server = TestServer::start(&[]);
    for method in ["GET", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = server.send(method, "/api/v1/fetch_api_key?username=x", &[], b"");
        assert_eq!((r.status, r.text()), (405, POST_ONLY_405), "{method}");
        assert_eq!(r.header("allow"), Some("POST"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    let head = server.send("HEAD", "/api/v1/fetch_api_key", &[], b"");
    assert_eq!((head.status, head.body.len()), (405, 0));
}

#[test]
fn missing_parameters_are_e2_then_e3() {
    let server = TestServer::start(&[]);
    server
        .post_form("/api/v1/fetch_api_key", &[])
        .assert_json(400, E2);
    server
        .post_form("/api/v1/fetch_api_key", &[("password", "x")])
        .assert_json(400, E2);
    server
        .post_form("/api/v1/fetch_api_key", &[("username", "x")])
        .assert_json(400, E3);
}

#[test]
fn a_json_body_is_ignored() {
    let server = TestServer::start(&[]);
    let body = br#"{"username":"iago@example.com","password":"x"}"#;
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &[("Content-Type", "application/json")],
            body,
        )
        .assert_json(400, E2);
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &[],
            b"username=a@b.cd&password=x",
        )
        .assert_json(400, E2);
}

#[test]
fn invalid_emails_are_e5() {
    let server = TestServer::start(&[]);
    let too_long = format!("{}@example.com", "a".repeat(310));
    for username in [
        "hamlet",
        "iago@example",
        " iago@example.com",
        "",
        too_long.as_str(),
    ] {
        server.login(username, "x").assert_json(400, E5);
    }
}

#[test]
fn unknown_subdomain_is_e4_and_beats_a_bad_email() {
    let server = TestServer::start(&["--external-url", "http://chat.example.test"]);
    let headers = [("Host", "nosuch.chat.example.test")];
    let login = |username: &str| {
        let body = format!("username={username}&password=x");
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(&headers);
        server.send("POST", "/api/v1/fetch_api_key", &all, body.as_bytes())
    };
    login("hamlet").assert_json(404, E4);
    login("hamlet@example.com").assert_json(404, E4);
}

#[test]
fn realms_are_chosen_by_host_with_an_external_url() {
    let server = TestServer::start(&["--external-url", "http://chat.example.test"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear & Co."]);
    let cordelia = server.create_user("cordelia@lear.org", "Lear-Pass-77", &["--realm", "lear"]);
    let login = |host: &str, password: &str| {
        let body = format!("username=cordelia%40lear.org&password={password}");
        server.send(
            "POST",
            "/api/v1/fetch_api_key",
            &[
                ("Host", host),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
    };
    assert_eq!(
        login("lear.chat.example.test", "Lear-Pass-77").json()["user_id"],
        cordelia
    );
    assert_eq!(
        login("LEAR.chat.example.test:443", "Lear-Pass-77").status,
        200
    );
    // Right password, wrong realm: the generic failure, never a hint of the other realm.
    login("chat.example.test", "Lear-Pass-77").assert_json(401, E11);
}

#[test]
fn credential_failures_are_all_e11() {
    let (server, _) = TestServer::with_iago(&[]);
    server.login(IAGO, "wrong").assert_json(401, E11);
    server.login(IAGO, "").assert_json(401, E11);
    server
        .login("nobody@example.com", IAGO_PASSWORD)
        .assert_json(401, E11);
    server.login(IAGO, &"x".repeat(1025)).assert_json(401, E11);
}

#[test]
fn overlong_password_never_matches_even_if_stored() {
    // The policy refuses such a password, so the hash arrives by import.
    let server = TestServer::start(&[]);
    let long = "Ab1-".repeat(300);
    let hasher =
        zulip_auth::auth::password::Hasher::new(zulip_auth::auth::password::Argon2Config {
            m_kib: 256,
            t: 1,
            p: 1,
        });
    let line = serde_json::json!({"email": "long@example.com", "password": hasher.hash(&long)});
    server.import(&format!("{line}\n"));
    server
        .login("long@example.com", &long)
        .assert_json(401, E11);
}

#[test]
fn deactivated_user_is_e7_for_any_nonempty_password() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["user", "deactivate", IAGO]);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E7);
    server.login(IAGO, "wrong").assert_json(401, E7);
    server.login(IAGO, "").assert_json(401, E11);
    server.ok(&["user", "reactivate", IAGO]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
}

#[test]
fn deactivated_realm_is_e8_only_for_its_users() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["user", "deactivate", IAGO]);
    server.ok(&["realm", "deactivate", ""]);
    server.login(IAGO, "wrong").assert_json(401, E8);
    server
        .login("nobody@example.com", "wrong")
        .assert_json(401, E11);
    server.ok(&["realm", "reactivate", ""]);
    server.login(IAGO, "wrong").assert_json(401, E7);
}

#[test]
fn password_auth_disabled_is_e9_whatever_the_user() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "set", "", "--password-auth", "off"]);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E9);
    server.login("nobody@example.com", "").assert_json(401, E9);
    server.login("hamlet", "x").assert_json(400, E5);
    server.ok(&["realm", "set", "", "--password-auth", "on"]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
}

#[test]
fn multipart_as_zulip_js_sends_it() {
    let (server, id) = TestServer::with_iago(&[]);
    let boundary = "--------------------------519617c5a1b2c3d4e5f60718";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\n{IAGO}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{IAGO_PASSWORD}\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data;boundary={boundary}");
    let r = server.send(
        "POST",
        "/api/v1/fetch_api_key",
        &[("Content-Type", &content_type)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["user_id"], id);
    let quoted = format!("Multipart/Form-Data; boundary=\"{boundary}\"");
    let r = server.send(
        "POST",
        "/api/v1/fetch_api_key",
        &[("Content-Type", &quoted)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let truncated = &body[..body.len() - 10];
    server
        .send(
            "POST",
            "/api/v1/fetch_api_key",
            &[("Content-Type", &content_type)],
            truncated.as_bytes(),
        )
        .assert_json(400, E2);
}

#[test]
fn query_string_parameters_and_ignored_ones() {
    let (server, id) = TestServer::with_iago(&[]);
    let target = format!("/api/v1/fetch_api_key?username={IAGO}&password={IAGO_PASSWORD}");
    let r = server.send("POST", &target, &[], b"");
    assert_eq!(r.json()["user_id"], id);

    // The body wins over the query; unknown names are reported sorted, the empty one too.
    let r = server.post_form(
        "/api/v1/fetch_api_key?password=wrong&client=x&zeta=1",
        &[
            ("username", IAGO),
            ("password", IAGO_PASSWORD),
            ("", "e"),
            ("Alpha", "1"),
        ],
    );
    let key = r.api_key();
    r.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}","user_id":{id},"ignored_parameters_unsupported":["","Alpha","client","zeta"]}}"#
        ),
    );
    // Never on errors.
    server
        .post_form(
            "/api/v1/fetch_api_key?client=x",
            &[("username", IAGO), ("password", "wrong")],
        )
        .assert_json(401, E11);
}

#[test]
fn spaces_as_plus_and_percent_20_both_decode() {
    let server = TestServer::start(&[]);
    server.create_user("sp@example.com", "two words here", &[]);
    for body in [
        "username=sp%40example.com&password=two+words%20here",
        "username=sp%40example.com&password=two%20words+here",
        "username=sp@example.com&password=two+words+here",
    ] {
        let r = server.send(
            "POST",
            "/api/v1/fetch_api_key",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

#[test]
fn authorization_header_is_ignored() {
    let (server, _) = TestServer::with_iago(&[]);
    for auth in [
        "Basic cGxhY2Vob2xkZXI6cGxhY2Vob2xkZXI=",
        "Garbage",
        "Basic !!!",
    ] {
        let r = server.post_form_with(
            "/api/v1/fetch_api_key",
            &[("username", IAGO), ("password", IAGO_PASSWORD)],
            &[("Authorization", auth)],
        );
        assert_eq!(r.status, 200);
    }
}

#[test]
fn twenty_simultaneous_first_logins_get_one_key() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "off", "--address-rate", "off"]);
    let server = Arc::new(server);
    let barrier = Arc::new(Barrier::new(20));
    let keys: Vec<String> = (0..20)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                server.login(IAGO, IAGO_PASSWORD).api_key()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
}
