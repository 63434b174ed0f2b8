//! Keys per device (wire.md §9.5), over HTTP on whichever engine the run uses.

use base64ct::{Base64, Encoding};

use crate::support::*;

const PER_DEVICE: &[&str] = &["realm", "set", "", "--api-keys", "per-device"];
const INVALID_ID: &str = r#"{"result":"error","msg":"Invalid API key ID","code":"BAD_REQUEST"}"#;

fn basic(email: &str, key: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{email}:{key}").as_bytes())
    )
}

fn with_key(server: &TestServer, method: &str, target: &str, key: &str) -> HttpResponse {
    let auth = basic(IAGO, key);
    server.send(method, target, &[("Authorization", &auth)], b"")
}

fn login_as(server: &TestServer, user_agent: &str) -> String {
    server
        .post_form_with(
            "/api/v1/fetch_api_key",
            &[("username", IAGO), ("password", IAGO_PASSWORD)],
            &[("User-Agent", user_agent)],
        )
        .api_key()
}

fn works(server: &TestServer, key: &str) -> bool {
    match with_key(server, "GET", "/api/v1/users/me", key).status {
        200 => true,
        401 => false,
        other => panic!("users/me answered {other}"),
    }
}

fn listed(server: &TestServer, key: &str) -> Vec<serde_json::Value> {
    let r = with_key(server, "GET", "/api/v1/users/me/api_keys", key);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["api_keys"].as_array().unwrap().clone()
}

#[test]
fn two_logins_give_two_working_keys_listed_with_names_and_current() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(PER_DEVICE);
    let phone = login_as(&server, "ZulipFlutter/30.0.256 (Android 14)");
    let laptop = login_as(&server, "ZulipPython/0.9.0 (Linux; x86_64)");
    assert_ne!(phone, laptop);
    assert!(works(&server, &phone));
    assert_eq!(server.row_count("api_key"), 2);

    let keys = listed(&server, &phone);
    let names: Vec<&str> = keys.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ZulipPython on Linux", "ZulipFlutter on Android"]);
    let current: Vec<bool> = keys
        .iter()
        .map(|k| k["current"].as_bool().unwrap())
        .collect();
    assert_eq!(current, [false, true]);
    for key in &keys {
        assert_eq!(key["method"], "password");
        assert!(key["created"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(key.as_object().unwrap().len(), 6);
    }
    // The fields in the issue's order.
    let r = with_key(&server, "GET", "/api/v1/users/me/api_keys", &phone);
    let text = r.text();
    let at = |field: &str| text.find(&format!("\"{field}\":")).unwrap();
    let order = [
        "result",
        "msg",
        "api_keys",
        "id",
        "name",
        "method",
        "created",
        "last_used",
        "current",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    // The phone's key was used just now; the laptop's never.
    assert!(keys[1]["last_used"].is_i64());
    assert!(keys[0]["last_used"].is_null());
    assert!(works(&server, &laptop));
}

#[test]
fn revoking_one_leaves_the_other_and_regenerate_ends_all() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(PER_DEVICE);
    let phone = login_as(&server, "ZulipMobile/27.0 (Android 13)");
    let laptop = login_as(&server, "ZulipTerminal/0.7.0");
    let phone_id = listed(&server, &laptop)[1]["id"].as_i64().unwrap();

    let r = with_key(
        &server,
        "DELETE",
        &format!("/api/v1/users/me/api_keys/{phone_id}"),
        &laptop,
    );
    r.assert_json(200, r#"{"result":"success","msg":""}"#);
    assert!(!works(&server, &phone));
    assert!(works(&server, &laptop));
    // Gone is gone: a second revocation is an unknown id.
    with_key(
        &server,
        "DELETE",
        &format!("/api/v1/users/me/api_keys/{phone_id}"),
        &laptop,
    )
    .assert_json(400, INVALID_ID);

    let another = login_as(&server, "curl/8.5.0");
    let r = with_key(
        &server,
        "POST",
        "/api/v1/users/me/api_key/regenerate",
        &laptop,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = r.api_key();
    assert!(!works(&server, &laptop) && !works(&server, &another));
    assert!(works(&server, &fresh));
    assert_eq!(server.row_count("api_key"), 0);
}

#[test]
fn another_users_key_id_or_junk_is_an_invalid_id() {
    let (server, _) = TestServer::with_iago(&[]);
    server.create_user("hamlet@example.com", IAGO_PASSWORD, &[]);
    server.ok(PER_DEVICE);
    let mine = login_as(&server, "ZulipFlutter/30.0 (iOS 17)");
    let theirs = server.login("hamlet@example.com", IAGO_PASSWORD).api_key();
    let auth = basic("hamlet@example.com", &theirs);
    let r = server.send(
        "GET",
        "/api/v1/users/me/api_keys",
        &[("Authorization", &auth)],
        b"",
    );
    let their_id = r.json()["api_keys"][0]["id"].as_i64().unwrap();
    for target in [
        format!("/api/v1/users/me/api_keys/{their_id}"),
        "/api/v1/users/me/api_keys/999999".to_owned(),
        "/api/v1/users/me/api_keys/+1".to_owned(),
        "/api/v1/users/me/api_keys/x".to_owned(),
        "/api/v1/users/me/api_keys/".to_owned(),
    ] {
        with_key(&server, "DELETE", &target, &mine).assert_json(400, INVALID_ID);
    }
    assert_eq!(server.row_count("api_key"), 2);
    assert_eq!(
        with_key(&server, "GET", "/api/v1/users/me/api_keys/1", &mine).status,
        405
    );
}

#[test]
fn switching_either_way_loses_no_key() {
    let (server, id) = TestServer::with_iago(&["--dev"]);
    let own = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.ok(PER_DEVICE);
    let device = login_as(&server, "ZulipFlutter/30.0 (Android 14)");
    assert_ne!(device, own);
    let dev = server
        .post_form("/api/v1/dev_fetch_api_key", &[("username", IAGO)])
        .api_key();
    assert!(works(&server, &own) && works(&server, &device) && works(&server, &dev));
    let methods: Vec<String> = listed(&server, &own)
        .iter()
        .map(|k| format!("{}:{}", k["method"], k["current"]))
        .collect();
    assert_eq!(
        methods,
        [r#""dev":false"#, r#""password":false"#, r#""account":true"#]
    );

    server.ok(&["realm", "set", "", "--api-keys", "per-user"]);
    // Zulip's behaviour again: the user's one key, byte for byte.
    server.login(IAGO, IAGO_PASSWORD).assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{own}","email":"{IAGO}","user_id":{id}}}"#
        ),
    );
    assert!(works(&server, &device) && works(&server, &dev));
    assert_eq!(listed(&server, &device).len(), 3);

    // Revoking the user's own key (id 0): the next login mints another.
    with_key(&server, "DELETE", "/api/v1/users/me/api_keys/0", &device)
        .assert_json(200, r#"{"result":"success","msg":""}"#);
    assert!(!works(&server, &own));
    let next = server.login(IAGO, IAGO_PASSWORD).api_key();
    assert_ne!(next, own);
    assert!(works(&server, &next));
}

#[test]
fn the_101st_login_revokes_the_least_recently_used_and_idle_keys_are_pruned() {
    let (mut server, _) = TestServer::with_iago(&["--dev"]);
    server.ok(PER_DEVICE);
    let dev_login = || {
        server
            .post_form("/api/v1/dev_fetch_api_key", &[("username", IAGO)])
            .api_key()
    };
    let first = dev_login();
    let second = dev_login();
    // The first is used now, so the second is the least recently used.
    assert!(works(&server, &first));
    for _ in 0..99 {
        dev_login();
    }
    assert_eq!(server.row_count("api_key"), 100);
    assert!(works(&server, &first));
    assert!(!works(&server, &second));
    let audited = server.stdout(&["audit", "--json"]);
    assert!(
        audited.contains("more than 100 keys, the least recently used"),
        "{audited}"
    );

    // Idle past the realm's limit: the pruner (which runs at start) revokes it.
    server.ok(&["realm", "set", "", "--api-key-idle-days", "30"]);
    server.execute(
        "UPDATE api_key SET created_at = 0, last_used_at = NULL WHERE key_hash <> $1",
        "none",
    );
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.row_count("api_key") > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(server.row_count("api_key"), 0);
    assert!(!works(&server, &first));
    let audited = server.stdout(&["audit", "--json"]);
    assert!(audited.contains("unused for 30 days"), "{audited}");
}

#[test]
fn the_cli_lists_and_revokes_keys() {
    let (server, _) = TestServer::with_iago(&[]);
    let own = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.ok(PER_DEVICE);
    let phone = login_as(&server, "ZulipFlutter/30.0 (Android 14)");
    let laptop = login_as(&server, "ZulipTerminal/0.7.0");
    let listing = server.stdout(&["user", "keys", IAGO]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 4, "{listing}");
    assert!(lines[0].starts_with("ID  NAME"), "{listing}");
    assert!(lines[1].contains("ZulipTerminal") && lines[1].contains("password"));
    assert!(lines[2].contains("ZulipFlutter on Android"));
    let own_row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(
        own_row[..5],
        ["0", "Your", "API", "key", "account"],
        "{listing}"
    );
    let laptop_id = lines[1].split_whitespace().next().unwrap();

    server.ok(&["user", "revoke-key", IAGO, laptop_id]);
    assert!(!works(&server, &laptop) && works(&server, &phone));
    let again = server.cli(&["user", "revoke-key", IAGO, laptop_id], "");
    assert_eq!(again.status.code(), Some(1));
    let said = String::from_utf8(again.stderr).unwrap();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains(&format!("has no key {laptop_id}")), "{said}");

    server.ok(&["user", "revoke-key", IAGO, "--all"]);
    assert!(!works(&server, &phone) && !works(&server, &own));
    assert_eq!(server.stdout(&["user", "keys", IAGO]).lines().count(), 1);
    assert!(
        !server
            .cli(&["user", "revoke-key", IAGO], "")
            .status
            .success()
    );
}
