//! The development endpoints (wire.md §7): absent without `--dev`, exact with it.

use crate::support::*;

#[test]
fn absent_without_dev_mode() {
    let (server, _) = TestServer::with_iago(&[]);
    for method in ["GET", "POST"] {
        for path in ["/api/v1/dev_fetch_api_key", "/api/v1/dev_list_users"] {
            server
                .send(method, path, &[], b"")
                .assert_json(404, NOT_FOUND);
        }
    }
    let settings = server.get("/api/v1/server_settings").json();
    assert_eq!(settings["authentication_methods"]["dev"], false);
}

#[test]
fn dev_fetch_api_key_checks_in_order() {
    let (server, id) =
        TestServer::with_iago(&["--dev", "--external-url", "http://dev.example.test"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    server.create_user("king@lear.org", "Lear-Pass-77", &["--realm", "lear"]);
    let post = |host: &str, body: &str| {
        let request = format!(
            "POST /api/v1/dev_fetch_api_key HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        server.raw(request.as_bytes())
    };
    let root = "dev.example.test";
    let r = post(root, "username=IAGO%40example.com&password=ignored");
    let key = r.api_key();
    r.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}","user_id":{id},"ignored_parameters_unsupported":["password"]}}"#
        ),
    );
    // The same stored key as a password login.
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), key);
    post(root, "").assert_json(400, E2);
    // The email check comes before the realm check here.
    post("nosuch.dev.example.test", "username=hamlet").assert_json(400, E5);
    post("nosuch.dev.example.test", "username=a%40b.cd").assert_json(404, E4);
    // Present in another realm: 404; absent everywhere: 401.
    post(root, "username=king%40lear.org").assert_json(404, E4);
    post(root, "username=nobody%40example.com").assert_json(401, E11);
    server.ok(&["user", "deactivate", IAGO]);
    post(root, "username=iago%40example.com").assert_json(401, E7);
    server.ok(&["realm", "deactivate", ""]);
    post(root, "username=iago%40example.com").assert_json(401, E8);
    let r = server.send("GET", "/api/v1/dev_fetch_api_key", &[], b"");
    assert_eq!((r.status, r.text()), (405, POST_ONLY_405));
    assert_eq!(
        server.get("/api/v1/server_settings").json()["authentication_methods"]["dev"],
        true
    );
}

#[test]
fn dev_list_users_lists_active_users_of_every_realm() {
    let (server, _) = TestServer::with_iago(&["--dev"]);
    server.create_user("hamlet@example.com", "Hamlet-Pass-1", &[]);
    server.create_user(
        "desdemona@example.com",
        "Desdemona-P-1",
        &["--role", "owner"],
    );
    server.create_user("gone@example.com", "Gone-Pass-123", &[]);
    server.ok(&["user", "deactivate", "gone@example.com"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    server.create_user(
        "King@lear.org",
        "Lear-Pass-77",
        &["--realm", "lear", "--role", "guest"],
    );
    server.ok(&["realm", "deactivate", "lear"]);
    let url = format!("http://{}", server.addr);
    for method in ["GET", "POST", "DELETE"] {
        server.send(method, "/api/v1/dev_list_users?x=1", &[], b"").assert_json(
            200,
            &format!(
                r#"{{"result":"success","msg":"","direct_admins":[{{"email":"desdemona@example.com","realm_url":"{url}"}},{{"email":"iago@example.com","realm_url":"{url}"}}],"direct_users":[{{"email":"King@lear.org","realm_url":"{url}"}},{{"email":"hamlet@example.com","realm_url":"{url}"}}]}}"#
            ),
        );
    }
}

#[test]
fn demo_serves_the_documented_login() {
    let server = TestServer::start(&["--demo"]);
    let r = server.login("iago@zulip.com", "abcd1234");
    let key = r.api_key();
    let id = r.json()["user_id"].as_i64().unwrap();
    r.assert_json(
        200,
        &format!(r#"{{"result":"success","msg":"","api_key":"{key}","email":"iago@zulip.com","user_id":{id}}}"#),
    );
    server.log_containing("--data-urlencode username=iago@zulip.com");
    // The demo database is not the one named by --db.
    assert!(!server.db.exists());
}
