//! `GET`/`HEAD /api/v1/server_settings` (wire.md §6) and what each client requires of it.

use crate::support::*;

fn expected(
    url: &str,
    name: &str,
    icon: &str,
    description: &str,
    password: bool,
    dev: bool,
) -> String {
    format!(
        r#"{{"result":"success","msg":"","authentication_methods":{{"password":{password},"dev":{dev},"email":{password},"ldap":false,"remoteuser":false,"github":false,"azuread":false,"gitlab":false,"apple":false,"google":false,"saml":false,"openid connect":false}},"zulip_version":"10.0","zulip_merge_base":"10.0","zulip_feature_level":371,"push_notifications_enabled":false,"is_incompatible":false,"email_auth_enabled":{password},"require_email_format_usernames":true,"realm_url":"{url}","realm_name":"{name}","realm_icon":"{icon}","realm_description":"{description}","realm_web_public_access_enabled":false,"external_authentication_methods":[],"realm_uri":"{url}"}}"#
    )
}

#[test]
fn root_realm_exact_body_from_the_host_header() {
    let server = TestServer::start(&[]);
    let url = format!("http://{}", server.addr);
    let icon = format!("{url}/static/images/logo/zulip-icon-128x128.png");
    server
        .get("/api/v1/server_settings?ignored=1")
        .assert_json(200, &expected(&url, "Zulip", &icon, "", true, false));
}

#[test]
fn realm_fields_come_from_the_database_and_ignore_authorization() {
    let server = TestServer::start(&["--dev"]);
    server.ok(&[
        "realm",
        "set",
        "",
        "--name",
        "Ünïcode Org",
        "--description",
        "<p>Hi</p>",
        "--icon",
        "/icon.png",
        "--password-auth",
        "off",
    ]);
    let url = format!("http://{}", server.addr);
    let r = server.send(
        "GET",
        "/api/v1/server_settings",
        &[("Authorization", "Basic !!garbage")],
        b"",
    );
    r.assert_json(
        200,
        &expected(&url, "Ünïcode Org", "/icon.png", "<p>Hi</p>", false, true),
    );
}

#[test]
fn head_has_the_headers_and_no_body() {
    let server = TestServer::start(&[]);
    let get = server.get("/api/v1/server_settings");
    let head = server.send("HEAD", "/api/v1/server_settings", &[], b"");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("content-length"), get.header("content-length"));
}

#[test]
fn other_methods_get_an_empty_405() {
    let server = TestServer::start(&[]);
    for method in ["POST", "PUT", "OPTIONS", "DELETE"] {
        let r = server.send(method, "/api/v1/server_settings", &[], b"");
        assert_eq!((r.status, r.body.len()), (405, 0), "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
}

fn get_with_host(server: &TestServer, host: &str, user_agent: &str) -> HttpResponse {
    let request = format!(
        "GET /api/v1/server_settings HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nConnection: close\r\n\r\n"
    );
    server.raw(request.as_bytes())
}

#[test]
fn subdomains_with_an_external_url() {
    let server = TestServer::start(&["--external-url", "https://chat.example.test:8443"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let lear = get_with_host(&server, "lear.chat.example.test:8443", "x").json();
    assert_eq!(lear["realm_url"], "https://lear.chat.example.test:8443");
    assert_eq!(lear["realm_uri"], "https://lear.chat.example.test:8443");
    assert_eq!(lear["realm_name"], "Lear");
    let root = get_with_host(&server, "elsewhere.example.org", "x").json();
    assert_eq!(root["realm_url"], "https://chat.example.test:8443");
    get_with_host(&server, "nosuch.chat.example.test", "x").assert_json(
        400,
        r#"{"result":"error","msg":"Invalid subdomain","code":"BAD_REQUEST"}"#,
    );
    // A deactivated realm still answers.
    server.ok(&["realm", "deactivate", "lear"]);
    assert_eq!(
        get_with_host(&server, "lear.chat.example.test", "x").status,
        200
    );
}

#[test]
fn is_incompatible_test_hook() {
    let server = TestServer::start(&[]);
    let host = server.addr.to_string();
    assert_eq!(
        get_with_host(&server, &host, "ZulipInvalid/1.0").json()["is_incompatible"],
        true
    );
    assert_eq!(
        get_with_host(&server, &host, "ZulipInvalidX/1.0").json()["is_incompatible"],
        false
    );
    assert_eq!(
        get_with_host(&server, &host, "ZulipMobile/27.0").json()["is_incompatible"],
        false
    );
}
