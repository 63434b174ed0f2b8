//! Sign-in through a realm's OpenID provider (issue 22, web.md §9): `idp` and its
//! `server_settings` entries, and the start and the callback's refusals over raw HTTP. The
//! full flow against a real provider is tests/oidc/run's and the browser's (tests/web).

use crate::support::*;

/// Adds provider `name` to the root realm with a secret from a file, and `extra` settings.
fn add(server: &TestServer, name: &str, issuer: &str, extra: &[&str]) {
    let secret = server.dir.join("client-secret");
    std::fs::write(&secret, "the-client-secret\n").unwrap();
    let mut args = vec![
        "idp",
        "add",
        name,
        "--issuer",
        issuer,
        "--client-id",
        "zulip",
        "--client-secret-file",
        secret.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    server.ok(&args);
}

#[test]
fn providers_are_listed_in_server_settings_by_name_after_the_password_page() {
    let server = TestServer::start(&[]);
    add(
        &server,
        "keycloak",
        "https://id.example.com/realms/zulip",
        &[],
    );
    add(
        &server,
        "authentik",
        "https://auth.example.com/application/o/zulip/",
        &[
            "--display-name",
            "Authentik & Co",
            "--display-icon",
            "https://auth.example.com/icon.png",
        ],
    );
    server.ok(&["realm", "set", "", "--web-login", "on"]);
    let url = format!("http://{}", server.addr);
    let icon = format!("{url}/static/images/logo/zulip-icon-128x128.png");
    let expected = format!(
        r#"{{"result":"success","msg":"","authentication_methods":{{"password":true,"dev":false,"email":true,"ldap":false,"remoteuser":false,"github":false,"azuread":false,"gitlab":false,"apple":false,"google":false,"saml":false,"openid connect":true}},"zulip_version":"10.0","zulip_merge_base":"10.0","zulip_feature_level":371,"push_notifications_enabled":false,"is_incompatible":false,"email_auth_enabled":true,"require_email_format_usernames":true,"realm_url":"{url}","realm_name":"Zulip","realm_icon":"{icon}","realm_description":"","realm_web_public_access_enabled":false,"external_authentication_methods":[{{"name":"zulip-auth","display_name":"Zulip","display_icon":null,"login_url":"/accounts/login/","signup_url":"/accounts/login/"}},{{"name":"oidc:authentik","display_name":"Authentik & Co","display_icon":"https://auth.example.com/icon.png","login_url":"/accounts/login/social/oidc/authentik","signup_url":"/accounts/register/social/oidc/authentik"}},{{"name":"oidc:keycloak","display_name":"OpenID Connect","display_icon":null,"login_url":"/accounts/login/social/oidc/keycloak","signup_url":"/accounts/register/social/oidc/keycloak"}}],"realm_uri":"{url}"}}"#
    );
    server
        .get("/api/v1/server_settings")
        .assert_json(200, &expected);

    // Without providers, "openid connect" is false again and no entry is left.
    server.ok(&["idp", "remove", "keycloak"]);
    server.ok(&["idp", "remove", "authentik"]);
    server.ok(&["realm", "set", "", "--web-login", "off"]);
    let settings = server.get("/api/v1/server_settings").json();
    assert_eq!(settings["authentication_methods"]["openid connect"], false);
    assert_eq!(
        settings["external_authentication_methods"],
        serde_json::json!([])
    );
}

#[test]
fn the_secret_is_never_shown_and_bad_settings_are_one_line() {
    let server = TestServer::start(&[]);
    add(
        &server,
        "sso",
        "http://127.0.0.1:9/",
        &["--auto-signup", "on"],
    );
    let table = server.stdout(&["idp", "list"]);
    assert_eq!(
        table,
        "NAME  ISSUER               CLIENT ID  DISPLAY NAME    ICON  SCOPES                AUTO-SIGNUP\n\
         sso   http://127.0.0.1:9/  zulip      OpenID Connect  -     openid email profile  on\n"
    );
    let json = server.stdout(&["idp", "list", "--json"]);
    assert_eq!(
        json,
        "[{\"name\":\"sso\",\"issuer\":\"http://127.0.0.1:9/\",\"client_id\":\"zulip\",\"display_name\":\"OpenID Connect\",\"display_icon\":null,\"scopes\":\"openid email profile\",\"auto_signup\":true}]\n"
    );
    let audit = server.stdout(&["audit"]);
    assert!(
        audit.contains("identity provider sso added by operator"),
        "{audit}"
    );
    for shown in [&table, &json, &audit] {
        assert!(!shown.contains("the-client-secret"));
    }
    let refused = |args: &[&str], message: &str| {
        let out = server.cli(args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("zulip-auth: {message}\n"),
            "{args:?}"
        );
    };
    refused(
        &[
            "idp",
            "add",
            "sso",
            "--issuer",
            "https://x.example",
            "--client-id",
            "a",
        ],
        "idp add needs --client-secret-file or ZULIP_AUTH_OIDC_CLIENT_SECRET",
    );
    refused(
        &["idp", "add", "x"],
        "idp add needs --issuer and --client-id",
    );
    refused(
        &["idp", "set", "sso", "--issuer", "http://id.example.com"],
        "\"http://id.example.com\" must use https (plain http only on localhost or a loopback address)",
    );
    refused(
        &["idp", "set", "sso", "--display-icon", "/icon.png"],
        "the display icon must be an absolute http(s) URL",
    );
    refused(
        &["idp", "remove", "nope"],
        "realm \"\" has no identity provider named \"nope\"",
    );
    refused(
        &["idp", "list", "--realm", "nope"],
        "no realm with subdomain \"nope\"",
    );
}
