//! Sign-in through a realm's OpenID provider (issue 22, web.md §10): `idp` and its
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

/// Issue 25: a realm's providers are remembered with its row while the realm version holds,
/// which migration 13's triggers bump: a provider added, changed or removed by `idp` in
/// another process shows in the very next `server_settings` and sign-in page. One worker, so
/// each request finds what the one before left in its cache.
#[test]
fn a_provider_change_by_another_process_shows_at_the_very_next_request() {
    let server = TestServer::start(&["--workers", "1"]);
    let external = |server: &TestServer| {
        let settings = server.get("/api/v1/server_settings").json();
        let methods = settings["external_authentication_methods"]
            .as_array()
            .unwrap();
        let shown: Vec<String> = methods
            .iter()
            .map(|m| format!("{}={}", m["name"], m["display_name"]))
            .collect();
        (
            settings["authentication_methods"]["openid connect"].clone(),
            shown.join(" "),
        )
    };
    let sign_in = |server: &TestServer| server.get("/accounts/login/").text().to_owned();
    assert_eq!(external(&server), (false.into(), String::new()));
    assert!(!sign_in(&server).contains("Sign in with"));

    add(&server, "sso", "http://127.0.0.1:9/", &[]);
    let url = format!("http://{}", server.addr);
    let icon = format!("{url}/static/images/logo/zulip-icon-128x128.png");
    let expected = format!(
        r#"{{"result":"success","msg":"","authentication_methods":{{"password":true,"dev":false,"email":true,"ldap":false,"remoteuser":false,"github":false,"azuread":false,"gitlab":false,"apple":false,"google":false,"saml":false,"openid connect":true}},"zulip_version":"10.0","zulip_merge_base":"10.0","zulip_feature_level":371,"push_notifications_enabled":false,"is_incompatible":false,"email_auth_enabled":true,"require_email_format_usernames":true,"realm_url":"{url}","realm_name":"Zulip","realm_icon":"{icon}","realm_description":"","realm_web_public_access_enabled":false,"external_authentication_methods":[{{"name":"oidc:sso","display_name":"OpenID Connect","display_icon":null,"login_url":"/accounts/login/social/oidc/sso","signup_url":"/accounts/register/social/oidc/sso"}}],"realm_uri":"{url}"}}"#
    );
    server
        .get("/api/v1/server_settings")
        .assert_json(200, &expected);

    server.ok(&["idp", "set", "sso", "--display-name", "Company SSO"]);
    assert_eq!(
        external(&server),
        (true.into(), r#""oidc:sso"="Company SSO""#.to_owned())
    );
    assert!(sign_in(&server).contains(
        r#"<a class="button" href="/accounts/login/social/oidc/sso">Sign in with Company SSO</a>"#
    ));

    server.ok(&["idp", "remove", "sso"]);
    assert_eq!(external(&server), (false.into(), String::new()));
    assert!(!sign_in(&server).contains("Sign in with"));
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

#[test]
fn the_sign_in_page_links_each_provider_keeping_the_pad() {
    let server = TestServer::start(&[]);
    add(
        &server,
        "b",
        "http://127.0.0.1:9/",
        &["--display-name", "B <&> Co"],
    );
    add(
        &server,
        "a",
        "http://127.0.0.1:9/",
        &["--display-name", "Acme"],
    );
    let page = server.get("/accounts/login/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains(
        r#"<a class="button" href="/accounts/login/social/oidc/a">Sign in with Acme</a><a class="button" href="/accounts/login/social/oidc/b">Sign in with B &lt;&amp;&gt; Co</a>"#
    ), "{}", page.text());
    let pad = "ab".repeat(32);
    let page = server.get(&format!("/accounts/login/?mobile_flow_otp={pad}"));
    assert!(
        page.text().contains(&format!(
            r#"href="/accounts/login/social/oidc/a?mobile_flow_otp={pad}">Sign in with Acme</a>"#
        )),
        "{}",
        page.text()
    );
}

/// What the start refuses before asking any provider, and a stopped provider's page.
#[test]
fn the_start_refuses_with_plain_pages() {
    let server = TestServer::start(&[]);
    let expect = |target: &str, status: u16, says: &str| {
        let r = server.get(target);
        assert_eq!(r.status, status, "{target}: {}", r.text());
        assert!(r.text().contains(says), "{target}: {}", r.text());
        assert_eq!(r.header("set-cookie"), None, "{target}");
    };
    let no_such = "This organization has no such identity provider.";
    expect("/accounts/login/social/oidc/nope", 404, no_such);
    expect("/accounts/login/social/oidc", 404, no_such);
    add(&server, "down", "http://127.0.0.1:9/", &[]);
    expect(
        "/accounts/login/social/oidc/down?mobile_flow_otp=12",
        400,
        "Invalid OTP",
    );
    expect(
        "/accounts/login/social/oidc/down?desktop_flow_otp=12",
        400,
        "The desktop sign-in flow is not supported.",
    );
    // Nothing listens on port 9: a clear page at once, from every start URL.
    let unreachable = "The identity provider could not be reached.";
    for target in [
        "/accounts/login/social/oidc/down",
        "/accounts/login/social/oidc/down/",
        "/accounts/register/social/oidc/down",
        "/accounts/login/social/oidc",
    ] {
        expect(target, 503, unreachable);
    }
    let posted = server.send("POST", "/accounts/login/social/oidc/down", &[], b"");
    assert_eq!(posted.status, 405);
    assert_eq!(server.get("/accounts/login/social/oidc/a/b").status, 404);
    assert_eq!(server.get("/accounts/login/social/oidcx").status, 404);
    // The access log names the provider: only a reset link's path hides what is below it.
    let log = server.log_containing("GET /accounts/register/social/oidc/down ");
    assert!(
        log.contains("GET /accounts/register/social/oidc/down 503"),
        "{log}"
    );
}

/// A callback without a live sign-in of this browser: a page, never the provider asked.
#[test]
fn a_callback_without_its_sign_in_is_refused() {
    let server = TestServer::start(&[]);
    add(&server, "down", "http://127.0.0.1:9/", &[]);
    for target in [
        "/complete/oidc/",
        "/complete/oidc/?state=x&code=y",
        "/complete/oidc/?state=x&error=access_denied",
    ] {
        let r = server.send("GET", target, &[("Cookie", "oidc_signin=abc")], b"");
        assert_eq!(r.status, 400, "{target}");
        assert!(
            r.text()
                .contains("This sign-in is unknown, was used already")
        );
        // The cookie stays for the real callback of this browser's sign-in.
        assert_eq!(r.header("set-cookie"), None);
    }
    assert_eq!(server.send("POST", "/complete/oidc/", &[], b"").status, 405);
    let log = std::fs::read_to_string(&server.stderr).unwrap();
    assert!(log.contains("GET /complete/oidc/ 400"), "{log}");
    assert!(!log.contains("code=y") && !log.contains("state=x"), "{log}");
}

/// Each start keeps a row: an address starts at most 30 in ten minutes, then gets a page.
#[test]
fn an_address_starts_thirty_sign_ins_in_ten_minutes() {
    let server = TestServer::start(&[]);
    add(&server, "down", "http://127.0.0.1:9/", &[]);
    for n in 1..=30 {
        let r = server.get("/accounts/login/social/oidc/down");
        assert_eq!(r.status, 503, "start {n}");
    }
    let r = server.get("/accounts/login/social/oidc/down");
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("Too many attempts"), "{}", r.text());
    // The sign-in page and the password login are not held back by it.
    assert_eq!(server.get("/accounts/login/").status, 200);
}
