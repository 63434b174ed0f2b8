//! Password reset on the web (web.md §6), without mail: links from `user reset-link`, the
//! request page's answers and limits. tests/it/mail.rs has the tests with a real SMTP server.

use std::time::Duration;

use crate::support::{E11, HttpResponse, IAGO, IAGO_PASSWORD, TestServer};

pub const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
pub const NEW_PASSWORD: &str = "Tulip-Quarry-47";
const INVALID: &str = "Sorry, the link you provided is invalid or has already been used.";

/// A form POST carrying the CSRF pair, with `cookies` besides it.
pub fn submit(
    server: &TestServer,
    path: &str,
    pairs: &[(&str, &str)],
    cookies: &str,
) -> HttpResponse {
    let mut all = vec![("csrfmiddlewaretoken", CSRF)];
    all.extend_from_slice(pairs);
    let cookie = format!("csrftoken={CSRF}{cookies}");
    server.post_form_with(path, &all, &[("Cookie", &cookie)])
}

/// `user reset-link`'s path for `email`.
pub fn reset_link(server: &TestServer, email: &str, extra: &[&str]) -> String {
    let mut args = vec!["user", "reset-link", email];
    args.extend_from_slice(extra);
    server.stdout(&args).trim().to_owned()
}

pub fn set_new_password(server: &TestServer, link: &str, one: &str, two: &str) -> HttpResponse {
    submit(
        server,
        link,
        &[("new_password1", one), ("new_password2", two)],
        "",
    )
}

#[track_caller]
fn assert_invalid(r: &HttpResponse) {
    assert_eq!(r.status, 200);
    assert!(r.text().contains(INVALID), "{}", r.text());
}

#[test]
fn a_link_sets_the_password_once_and_keeps_the_key() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let link = reset_link(&server, IAGO, &[]);
    assert!(
        link.starts_with("/accounts/password/reset/") && link.ends_with('/'),
        "{link}"
    );
    let form = server.get(&link);
    assert_eq!(form.status, 200);
    for field in [
        "name=\"new_password1\"",
        "name=\"new_password2\"",
        "name=\"csrfmiddlewaretoken\"",
    ] {
        assert!(form.text().contains(field), "{field}: {}", form.text());
    }
    assert!(form.text().contains(&format!("action=\"{link}\"")));
    assert_eq!(form.header("cache-control"), Some("no-store"));
    let r = set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/accounts/password/done/"))
    );
    let done = server.get("/accounts/password/done/");
    assert!(
        done.text().contains("You've set a new password!"),
        "{}",
        done.text()
    );
    assert!(
        done.text()
            .contains("Please log in with your new password.")
    );
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(IAGO, NEW_PASSWORD).api_key(), key);
    // Used once, it is dead.
    assert_invalid(&server.get(&link));
    assert_invalid(&set_new_password(
        &server,
        &link,
        "Another-Pass-93",
        "Another-Pass-93",
    ));
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(audit.contains("reset link"), "{audit}");
}

/// Issue 20: concurrent POSTs of one link change the password once; the others find the
/// link used.
#[test]
fn concurrent_posts_of_one_link_change_the_password_once() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &[]);
    let passwords: Vec<String> = (0..8).map(|i| format!("Tulip-Quarry-{i}7")).collect();
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let posts: Vec<_> = passwords
            .iter()
            .map(|password| {
                let (server, link) = (&server, &link);
                scope.spawn(move || set_new_password(server, link, password, password))
            })
            .collect();
        posts.into_iter().map(|post| post.join().unwrap()).collect()
    });
    let changed: Vec<&String> = passwords
        .iter()
        .zip(&answers)
        .filter(|(_, r)| r.status == 302)
        .map(|(password, _)| password)
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in answers.iter().filter(|r| r.status != 302) {
        assert_invalid(r);
    }
    server.login(IAGO, changed[0]).api_key();
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert_eq!(audit.matches("reset link").count(), 1, "{audit}");
}

#[test]
fn a_link_opens_only_on_its_own_realms_host() {
    let (server, _) = TestServer::with_iago(&["--external-url", "http://zulip.test"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let link = reset_link(&server, IAGO, &[]);
    let cookie = format!("csrftoken={CSRF}");
    let body = format!(
        "csrfmiddlewaretoken={CSRF}&new_password1={NEW_PASSWORD}&new_password2={NEW_PASSWORD}"
    );
    let on = |host: &str, method: &str, body: &[u8]| {
        let headers = [
            ("Host", host),
            ("Cookie", cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        server.send(method, &link, &headers, body)
    };
    assert_invalid(&on("lear.zulip.test", "GET", b""));
    assert_invalid(&on("lear.zulip.test", "POST", body.as_bytes()));
    // Nothing was set, and the link is still live on its own realm's host.
    server.login(IAGO, IAGO_PASSWORD).api_key();
    let form = on("zulip.test", "GET", b"");
    assert!(
        form.text().contains("Choose a new password for"),
        "{}",
        form.text()
    );
    assert_eq!(on("zulip.test", "POST", body.as_bytes()).status, 302);
}

#[test]
fn the_pages_after_a_request_answer_get_only() {
    let server = TestServer::start(&[]);
    for path in ["/accounts/password/reset/done/", "/accounts/password/done/"] {
        let refused = server.send("POST", path, &[], b"");
        assert_eq!(
            (refused.status, refused.header("allow")),
            (405, Some("GET, HEAD"))
        );
        assert!(refused.text().contains("This page answers GET only."));
    }
    let refused = server.send("PUT", "/accounts/password/reset/", &[], b"");
    assert_eq!(
        (refused.status, refused.header("allow")),
        (405, Some("GET, HEAD, POST"))
    );
}

#[test]
fn the_operator_link_has_the_realm_url_when_asked() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    server.create_user("cordelia@example.com", IAGO_PASSWORD, &["--realm", "lear"]);
    let link = reset_link(
        &server,
        "cordelia@example.com",
        &[
            "--realm",
            "lear",
            "--external-url",
            "https://chat.example.com",
        ],
    );
    assert!(
        link.starts_with("https://lear.chat.example.com/accounts/password/reset/"),
        "{link}"
    );
    let token = link.rsplit('/').nth(1).unwrap();
    assert_eq!(token.len(), 43, "256 bits in base64url");
    for (args, why) in [
        (vec!["user", "reset-link", "nobody@example.com"], "no user"),
        (
            vec!["user", "reset-link", IAGO, "--reset-link-lifetime", "25h"],
            "24h",
        ),
    ] {
        let out = server.cli(&args, "");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{stderr}");
    }
    server.ok(&["user", "deactivate", IAGO]);
    let out = server.cli(&["user", "reset-link", IAGO], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("deactivated"));
}

#[test]
fn a_newer_link_kills_the_older() {
    let (server, _) = TestServer::with_iago(&[]);
    let older = reset_link(&server, IAGO, &[]);
    let newer = reset_link(&server, IAGO, &[]);
    assert_ne!(older, newer);
    assert_invalid(&server.get(&older));
    assert_eq!(server.get(&newer).status, 200);
    assert!(!server.get(&newer).text().contains(INVALID));
}

#[test]
fn links_expire() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &["--reset-link-lifetime", "1s"]);
    assert!(!server.get(&link).text().contains(INVALID));
    std::thread::sleep(Duration::from_millis(1500));
    assert_invalid(&server.get(&link));
    assert_invalid(&set_new_password(
        &server,
        &link,
        NEW_PASSWORD,
        NEW_PASSWORD,
    ));
    server.login(IAGO, IAGO_PASSWORD).api_key();
}

#[test]
fn the_policy_and_matching_fields_and_csrf() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &[]);
    let r = set_new_password(&server, &link, "abcd1234", "abcd1234");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("The password is too weak."),
        "{}",
        r.text()
    );
    let r = set_new_password(&server, &link, NEW_PASSWORD, "Tulip-Quarry-48");
    assert!(
        r.text().contains("The two password fields didn"),
        "{}",
        r.text()
    );
    // Without the CSRF pair: 403, and nothing changed.
    let r = server.post_form(
        &link,
        &[
            ("new_password1", NEW_PASSWORD),
            ("new_password2", NEW_PASSWORD),
        ],
    );
    assert_eq!(r.status, 403);
    server.login(IAGO, IAGO_PASSWORD).api_key();
    // The link survived all three.
    let r = set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 302);
}

#[test]
fn a_reset_clears_the_username_limit() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/600s"]);
    server.login(IAGO, "wrong-1").assert_json(401, E11);
    server.login(IAGO, "wrong-2").assert_json(401, E11);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    let link = reset_link(&server, IAGO, &[]);
    assert_eq!(
        set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD).status,
        302
    );
    assert_eq!(server.login(IAGO, NEW_PASSWORD).status, 200);
}

#[test]
fn password_changes_and_deactivation_kill_the_link() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &[]);
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "Other-Pass-88\n",
    );
    assert!(out.status.success());
    assert_invalid(&server.get(&link));

    let link = reset_link(&server, IAGO, &[]);
    server.ok(&["user", "deactivate", IAGO]);
    server.ok(&["user", "reactivate", IAGO]);
    assert_invalid(&server.get(&link));

    // While the realm is deactivated, or password auth is off, a link opens nothing.
    let link = reset_link(&server, IAGO, &[]);
    server.ok(&["realm", "set", "", "--password-auth", "off"]);
    assert_invalid(&server.get(&link));
    server.ok(&["realm", "set", "", "--password-auth", "on"]);
    server.ok(&["realm", "deactivate", ""]);
    assert_invalid(&set_new_password(
        &server,
        &link,
        NEW_PASSWORD,
        NEW_PASSWORD,
    ));
}

#[test]
fn without_mail_the_page_sends_people_to_the_administrator() {
    let (server, _) = TestServer::with_iago(&[]);
    let page = server.get("/accounts/password/reset/");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("Your administrator resets passwords"),
        "{}",
        page.text()
    );
    assert!(!page.text().contains("name=\"email\""));
    let r = submit(&server, "/accounts/password/reset/", &[("email", IAGO)], "");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Your administrator resets passwords"));
}

/// A server whose mail goes to a port where nothing listens: every send fails.
pub fn with_dead_relay(extra: &[&str]) -> TestServer {
    let mut args = vec![
        "--smtp-url",
        "smtp://127.0.0.1:9?tls=none",
        "--mail-from",
        "Zulip <noreply@example.com>",
        "--external-url",
        "http://zulip.example.com",
    ];
    args.extend_from_slice(extra);
    let (server, _) = TestServer::with_iago(&args);
    server
}

#[test]
fn the_same_answer_for_every_address() {
    let server = with_dead_relay(&[]);
    server.create_user("gone@example.com", IAGO_PASSWORD, &[]);
    server.ok(&["user", "deactivate", "gone@example.com"]);
    let form = server.get("/accounts/password/reset/");
    assert!(form.text().contains("name=\"email\""), "{}", form.text());
    let answers: Vec<_> = [IAGO, "nobody@example.com", "gone@example.com"]
        .iter()
        .map(|email| {
            let r = submit(
                &server,
                "/accounts/password/reset/",
                &[("email", email)],
                "",
            );
            (r.status, r.header("location").map(str::to_owned), r.body)
        })
        .collect();
    assert_eq!(
        answers[0],
        (
            302,
            Some("/accounts/password/reset/done/".to_owned()),
            Vec::new()
        )
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let sent = server.get("/accounts/password/reset/done/");
    assert!(sent.text().contains("Password reset sent!"));
    assert!(
        sent.text()
            .contains("Check your email in a few minutes to finish the process.")
    );
    // The relay's failure is logged, never shown.
    server.log_containing("password reset mail to user 1 not sent");
    server.log_containing("address without an account");
    server.log_containing("the user is deactivated; nothing sent");
    // A bad address is the form again, with Django's words.
    let r = submit(
        &server,
        "/accounts/password/reset/",
        &[("email", "not-an-email")],
        "",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Enter a valid email address."));
    let r = server.post_form("/accounts/password/reset/", &[("email", IAGO)]);
    assert_eq!(r.status, 403);
}

#[test]
fn two_requests_an_hour_per_email_address() {
    let server = with_dead_relay(&[]);
    let post = |email: &str| {
        submit(
            &server,
            "/accounts/password/reset/",
            &[("email", email)],
            "",
        )
    };
    assert_eq!(post(IAGO).status, 302);
    assert_eq!(post("IAGO@example.com").status, 302);
    let refused = post(IAGO);
    assert_eq!(refused.status, 429);
    assert!(refused.text().contains("Rate limit exceeded."));
    // Unknown addresses are limited alike, so the limit reveals nothing.
    assert_eq!(post("nobody@example.com").status, 302);
    assert_eq!(post("nobody@example.com").status, 302);
    assert_eq!(post("nobody@example.com").body, refused.body);
}

#[test]
fn five_requests_a_day_per_client_address() {
    let server = with_dead_relay(&[]);
    for i in 0..5 {
        let email = format!("person{i}@example.com");
        let r = submit(
            &server,
            "/accounts/password/reset/",
            &[("email", &email)],
            "",
        );
        assert_eq!(r.status, 302, "request {i}");
    }
    let r = submit(&server, "/accounts/password/reset/", &[("email", IAGO)], "");
    assert_eq!(r.status, 429);
}

#[test]
fn mail_settings_are_checked_at_start() {
    let server = TestServer::start(&[]);
    for (args, code, why) in [
        (
            vec!["--smtp-url", "smtp://127.0.0.1:25?tls=maybe"],
            2,
            "tls=",
        ),
        (
            vec!["--smtp-url", "smtp://mail.example.com?tls=none"],
            2,
            "loopback",
        ),
        (
            vec!["--smtp-url", "smtp://u:p@mail.example.com"],
            2,
            "ZULIP_AUTH_SMTP_PASSWORD",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://mail.example.com",
                "--mail-from",
                "a@example.com",
            ],
            1,
            "--external-url",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://mail.example.com",
                "--external-url",
                "https://x.example.com",
            ],
            1,
            "--mail-from",
        ),
        (
            vec![
                "--smtp-url",
                "smtp://zulip@mail.example.com",
                "--external-url",
                "https://x.example.com",
                "--mail-from",
                "a@example.com",
            ],
            1,
            "no password",
        ),
        (vec!["--mail-from", "a@example.com"], 1, "--smtp-url"),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(&args);
        let out = server.cli(&all, "");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn ldap_managed_addresses_get_no_link() {
    let server = with_dead_relay(&[]);
    server.ok(&[
        "realm",
        "set",
        "",
        "--ldap-url",
        "ldap://127.0.0.1:9",
        "--ldap-append-domain",
        "example.com",
    ]);
    let r = submit(&server, "/accounts/password/reset/", &[("email", IAGO)], "");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/accounts/password/reset/done/"))
    );
    server.log_containing("the password is managed in LDAP; nothing sent");
    let out = server.cli(&["user", "reset-link", IAGO], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("managed in LDAP"));
    // Addresses outside the directory's domain are this server's.
    server.create_user("guest@other.org", IAGO_PASSWORD, &[]);
    assert!(reset_link(&server, "guest@other.org", &[]).starts_with("/accounts/password/reset/"));
}
