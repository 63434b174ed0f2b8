//! The clients that cannot run here (wire.md §6.4, §12, §13 D): the Flutter app, zulip-mobile
//! and zulip-desktop, checked by the shape of what each requires, table by table. The clients
//! that can run here are driven for real by tests/clients/run.

use serde_json::Value;

use crate::support::*;

/// Whether a JSON value has the type a client requires.
type TypeCheck = fn(&Value) -> bool;

fn settings(server: &TestServer) -> Value {
    let r = server.get("/api/v1/server_settings");
    assert_eq!(r.status, 200);
    r.json()
}

/// A login as the apps send it: urlencoded with `; charset=utf-8`, no Authorization.
fn app_login(server: &TestServer, body: &str) -> HttpResponse {
    server.send(
        "POST",
        "/api/v1/fetch_api_key",
        &[(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body.as_bytes(),
    )
}

fn is_absolute_url(value: &Value) -> bool {
    value.as_str().is_some_and(|s| {
        (s.starts_with("http://") || s.starts_with("https://")) && !s.ends_with('/')
    })
}

#[test]
fn zulip_flutter() {
    let (server, id) = TestServer::with_iago(&[]);
    let s = settings(&server);
    // 14 keys, each present with exactly its JSON type, or parsing fails.
    let types: [(&str, TypeCheck); 14] = [
        ("authentication_methods", Value::is_object),
        ("zulip_version", Value::is_string),
        ("zulip_merge_base", Value::is_string),
        ("zulip_feature_level", Value::is_number),
        ("push_notifications_enabled", Value::is_boolean),
        ("is_incompatible", Value::is_boolean),
        ("email_auth_enabled", Value::is_boolean),
        ("require_email_format_usernames", Value::is_boolean),
        ("realm_uri", Value::is_string),
        ("realm_name", Value::is_string),
        ("realm_icon", Value::is_string),
        ("realm_description", Value::is_string),
        ("realm_web_public_access_enabled", Value::is_boolean),
        ("external_authentication_methods", Value::is_array),
    ];
    for (key, has_type) in types {
        assert!(has_type(&s[key]), "{key}: {}", s[key]);
    }
    assert!(s["authentication_methods"]["ldap"].is_boolean());
    assert!(
        s["zulip_feature_level"].as_u64().unwrap() >= 371,
        "no warning below 371"
    );
    assert!(is_absolute_url(&s["realm_uri"]));
    assert!(s["realm_icon"].as_str().unwrap().starts_with("http://"));
    // The password form appears only if email_auth_enabled or ldap.
    assert_eq!(s["email_auth_enabled"], true);
    // It stores the returned email and needs user_id, else it calls users/me.
    let r = app_login(
        &server,
        "username=IAGO%40example.com&password=Correct-Horse-9",
    );
    let body = r.json();
    assert_eq!(
        (body["email"].as_str(), body["user_id"].as_i64()),
        (Some(IAGO), Some(id))
    );
}

#[test]
fn zulip_mobile() {
    let (server, _) = TestServer::with_iago(&[]);
    let s = settings(&server);
    let version: Vec<u32> = s["zulip_version"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(version >= vec![8, 0], "refused below 7.0, warned below 8.0");
    assert!(s["realm_name"].is_string(), "else \"Subdomain required\"");
    assert!(is_absolute_url(&s["realm_uri"]));
    assert_eq!(
        s["authentication_methods"]["password"], true,
        "else no password button"
    );
    assert!(s["external_authentication_methods"].is_array());
    // It encodes spaces as %20; python requests as +.
    server.create_user("sp@example.com", "two words here", &[]);
    for body in [
        "username=sp%40example.com&password=two%20words%20here",
        "username=sp%40example.com&password=two+words+here",
    ] {
        let r = app_login(&server, body);
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        // Exactly these keys, in this order.
        let key = r.api_key();
        let expected_prefix = format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"sp@example.com","user_id":"#
        );
        assert!(r.text().starts_with(&expected_prefix), "{}", r.text());
        assert!(r.json()["user_id"].is_i64() && r.json().as_object().unwrap().len() == 5);
        assert_eq!(r.api_key().len(), 32);
    }
    // A bad password is a Zulip-shaped 4xx, never a 5xx (the apps show the message).
    let bad = app_login(&server, "username=iago%40example.com&password=wrong");
    assert_eq!(
        (bad.status, bad.json()["code"].as_str()),
        (401, Some("AUTHENTICATION_FAILED"))
    );
}

#[test]
fn zulip_desktop() {
    let server = TestServer::start(&[]);
    // Its online check is a HEAD that must be 2xx.
    let head = server.send("HEAD", "/api/v1/server_settings", &[], b"");
    assert!((200..300).contains(&head.status));
    let s = settings(&server);
    assert!(s["realm_name"].is_string());
    assert!(is_absolute_url(&s["realm_uri"]));
    assert!(s["realm_icon"].is_string());
    // A /-relative icon is prefixed with realm_uri by the app: both forms are served.
    server.ok(&["realm", "set", "", "--icon", "/static/icon.png"]);
    assert_eq!(settings(&server)["realm_icon"], "/static/icon.png");
}

#[test]
fn unknown_routes_look_like_zulip() {
    // Apps treat a Zulip-shaped 4xx as a server message rather than "not a Zulip server".
    let server = TestServer::start(&[]);
    let r = server.send("POST", "/api/v1/register", &[], b"");
    assert_eq!(r.status, 404);
    let body = r.json();
    assert_eq!(
        (body["result"].as_str(), body["code"].as_str()),
        (Some("error"), Some("BAD_REQUEST"))
    );
}
