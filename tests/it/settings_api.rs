//! `PATCH /api/v1/settings` (web.md §5): Zulip's messages and codes, in its check order.

use base64ct::{Base64, Encoding};

use crate::support::{E11, HttpResponse, IAGO, IAGO_PASSWORD, TestServer};

const NEW_PASSWORD: &str = "Tulip-Quarry-47";
const WRONG: &str = r#"{"result":"error","msg":"Wrong password!","code":"BAD_REQUEST"}"#;
const WEAK: &str = r#"{"result":"error","msg":"New password is too weak!","code":"BAD_REQUEST"}"#;
const LDAP: &str =
    r#"{"result":"error","msg":"Your Zulip password is managed in LDAP","code":"BAD_REQUEST"}"#;
const SUCCESS: &str = r#"{"result":"success","msg":""}"#;

fn patch(server: &TestServer, key: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let auth = format!(
        "Basic {}",
        Base64::encode_string(format!("{IAGO}:{key}").as_bytes())
    );
    server.send(
        "PATCH",
        "/api/v1/settings",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    )
}

fn change(server: &TestServer, key: &str, old: &str, new: &str) -> HttpResponse {
    patch(server, key, &[("old_password", old), ("new_password", new)])
}

#[test]
fn a_change_keeps_the_key_and_retires_the_old_password() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let r = change(&server, &key, IAGO_PASSWORD, NEW_PASSWORD);
    r.assert_json(200, SUCCESS);
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(IAGO, NEW_PASSWORD).api_key(), key);
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(audit.contains("password_changed"), "{audit}");
}

#[test]
fn refusals_in_zulips_order_and_words() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "20/600s"]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    change(&server, &key, "not-it-at-all", NEW_PASSWORD).assert_json(400, WRONG);
    patch(&server, &key, &[("new_password", NEW_PASSWORD)]).assert_json(400, WRONG);
    // The old password is checked before the new one's strength.
    change(&server, &key, "not-it-at-all", "abcd1234").assert_json(400, WRONG);
    change(&server, &key, IAGO_PASSWORD, "abcd1234").assert_json(400, WEAK);
    change(&server, &key, IAGO_PASSWORD, "short").assert_json(400, WEAK);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), key);
}

#[test]
fn without_a_new_password_nothing_changes() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    patch(&server, &key, &[]).assert_json(200, SUCCESS);
    patch(
        &server,
        &key,
        &[("old_password", "x"), ("new_password", "")],
    )
    .assert_json(200, SUCCESS);
    patch(&server, &key, &[("full_name", "Iago the Great")]).assert_json(
        200,
        r#"{"result":"success","msg":"","ignored_parameters_unsupported":["full_name"]}"#,
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), key);
}

#[test]
fn methods_and_authentication() {
    let (server, _) = TestServer::with_iago(&[]);
    let r = server.send("GET", "/api/v1/settings", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PATCH"));
    let r = server.send("PATCH", "/api/v1/settings", &[], b"");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.text(),
        "{\"result\":\"error\",\"msg\":\"Not logged in: API authentication or user session required\",\"code\":\"UNAUTHORIZED\"}\n"
    );
}

#[test]
fn wrong_old_passwords_count_against_the_username_limit() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/600s"]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    change(&server, &key, "wrong-one", NEW_PASSWORD).assert_json(400, WRONG);
    change(&server, &key, "wrong-two", NEW_PASSWORD).assert_json(400, WRONG);
    // Refused before the password is looked at, even the right one.
    let r = change(&server, &key, IAGO_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 400);
    let msg = r.json()["msg"].as_str().unwrap().to_owned();
    let seconds = msg
        .strip_prefix("You're making too many attempts! Try again in ")
        .and_then(|rest| rest.strip_suffix(" seconds."))
        .unwrap_or_else(|| panic!("{msg}"));
    assert!(
        seconds
            .parse::<u32>()
            .is_ok_and(|s| (590..=600).contains(&s)),
        "{msg}"
    );
    assert_eq!(r.json()["code"], "BAD_REQUEST");
    // And so are logins: it is the same bucket.
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
}

#[test]
fn a_success_clears_the_username_limit() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/600s"]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    change(&server, &key, "wrong-one", NEW_PASSWORD).assert_json(400, WRONG);
    change(&server, &key, IAGO_PASSWORD, NEW_PASSWORD).assert_json(200, SUCCESS);
    // Two more attempts fit: the bucket was emptied by the success.
    change(&server, &key, "wrong-two", NEW_PASSWORD).assert_json(400, WRONG);
    change(&server, &key, NEW_PASSWORD, IAGO_PASSWORD).assert_json(200, SUCCESS);
}

#[test]
fn ldap_managed_passwords_are_refused_first() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "1/600s"]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.ok(&[
        "realm",
        "set",
        "",
        "--ldap-url",
        "ldap://127.0.0.1:9",
        "--ldap-append-domain",
        "example.com",
    ]);
    for _ in 0..3 {
        change(&server, &key, IAGO_PASSWORD, NEW_PASSWORD).assert_json(400, LDAP);
    }
}

#[test]
fn with_password_auth_off_no_old_password_is_right() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.ok(&["realm", "set", "", "--password-auth", "off"]);
    change(&server, &key, IAGO_PASSWORD, NEW_PASSWORD).assert_json(400, WRONG);
}
