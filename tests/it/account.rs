//! The account page and its sessions (web.md §7) over raw HTTP: who is signed in, the key
//! and zuliprc after the password, a new key, a new password, the second factor, signing
//! out, and every way a session ends.

use std::time::{Duration, Instant};

use base64ct::{Base64, Encoding};

use crate::reset::{CSRF, NEW_PASSWORD, reset_link, set_new_password, submit};
use crate::support::{E11, HttpResponse, IAGO, IAGO_PASSWORD, TestServer};
use crate::web::{field, now, shown_secret};

const SETTINGS: &str = "/accounts/settings/";
const TWO_FACTOR_ON: &str = "/accounts/settings/two-factor/";

/// Signs in on the login page; the `sessionid` cookie's value.
fn sign_in(server: &TestServer, password: &str) -> String {
    let r = submit(
        server,
        "/accounts/login/",
        &[("username", IAGO), ("password", password)],
        "",
    );
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some(SETTINGS)),
        "{}",
        r.text()
    );
    session_of(&r)
}

fn session_of(r: &HttpResponse) -> String {
    r.headers
        .iter()
        .filter(|(name, _)| name == "set-cookie")
        .find_map(|(_, c)| c.strip_prefix("sessionid="))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {:?}", r.headers))
        .to_owned()
}

fn page(server: &TestServer, session: &str) -> HttpResponse {
    let cookie = format!("csrftoken={CSRF}; sessionid={session}");
    server.send("GET", SETTINGS, &[("Cookie", &cookie)], b"")
}

fn post(server: &TestServer, path: &str, session: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    submit(server, path, pairs, &format!("; sessionid={session}"))
}

#[track_caller]
fn assert_signed_out(server: &TestServer, session: &str) {
    let r = page(server, session);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/accounts/login/"))
    );
}

fn users_me(server: &TestServer, key: &str) -> u16 {
    let auth = format!(
        "Basic {}",
        Base64::encode_string(format!("{IAGO}:{key}").as_bytes())
    );
    server
        .send("GET", "/api/v1/users/me", &[("Authorization", &auth)], b"")
        .status
}

#[test]
fn signing_in_opens_a_session_whose_page_says_who() {
    let (server, _) = TestServer::with_iago(&[]);
    let r = submit(
        &server,
        "/accounts/login/",
        &[("username", IAGO), ("password", IAGO_PASSWORD)],
        "",
    );
    let cookie = r.header("set-cookie").unwrap();
    let session = session_of(&r);
    assert_eq!(
        cookie,
        format!("sessionid={session}; Path=/; HttpOnly; Max-Age=43200; SameSite=Strict")
    );
    assert_eq!(session.len(), 43);
    let account = page(&server, &session);
    assert_eq!(account.status, 200);
    assert_eq!(account.header("cache-control"), Some("no-store"));
    let html = account.text();
    assert!(
        html.contains("Signed in as <b>Iago</b> (iago@example.com)."),
        "{html}"
    );
    // Every form posts the CSRF token to a path-absolute action, its section's fragment
    // bringing the answer into view; the destructive actions are links to a confirmation.
    let forms = html
        .matches("<form method=\"post\" action=\"/accounts/")
        .count();
    assert_eq!(forms, 3, "{html}");
    assert_eq!(html.matches("name=\"csrfmiddlewaretoken\"").count(), forms);
    for needle in [
        "<section id=\"api-key\"><h2>API key</h2>",
        "action=\"/accounts/settings/api-key#api-key\"",
        "formaction=\"/accounts/settings/zuliprc\"",
        "<a class=\"button danger\" href=\"/accounts/settings/api-key/regenerate\">Generate a new API key</a>",
        "<section id=\"password\"><h2>Password</h2>",
        "action=\"/accounts/settings/password#password\"",
        "<section id=\"two-factor\"><h2>Two-factor authentication</h2>",
        "action=\"/accounts/settings/two-factor/#two-factor\"",
        "<a class=\"button danger\" href=\"/accounts/logout/\">Sign out</a>",
        "Use 8 to 100 characters that are hard to guess",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
    // The key comes before the password, the password before the second factor.
    let at = |needle: &str| html.find(needle).unwrap();
    assert!(at("id=\"api-key\"") < at("id=\"password\""));
    assert!(at("id=\"password\"") < at("id=\"two-factor\""));
    // The top is the point: no field takes the focus.
    assert!(!html.contains("autofocus"), "{html}");
    // No session, a made-up one, another browser's garbage: the login page.
    let r = server.get(SETTINGS);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/accounts/login/"))
    );
    assert_signed_out(&server, "x");
    assert_signed_out(&server, &"A".repeat(43));
}

#[test]
fn under_https_the_cookie_is_secure() {
    let (server, _) = TestServer::with_iago(&["--external-url", "https://chat.example.com"]);
    let r = submit(
        &server,
        "/accounts/login/",
        &[("username", IAGO), ("password", IAGO_PASSWORD)],
        "",
    );
    assert!(
        r.header("set-cookie")
            .unwrap()
            .ends_with("; SameSite=Strict; Secure")
    );
}

#[test]
fn the_key_and_zuliprc_after_the_password() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "4/600s"]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let r = post(
        &server,
        "/accounts/settings/api-key",
        &session,
        &[("password", "wrong")],
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Wrong password!"), "{}", r.text());
    assert!(!r.text().contains(&key));
    let r = post(
        &server,
        "/accounts/settings/api-key",
        &session,
        &[("password", IAGO_PASSWORD)],
    );
    // In the key's section, where the person is looking.
    assert!(
        r.text().contains(&format!(
            "<section id=\"api-key\"><h2>API key</h2><p class=\"status\" role=\"status\">Your API key: <code>{key}</code></p>"
        )),
        "{}",
        r.text()
    );
    let r = post(
        &server,
        "/accounts/settings/zuliprc",
        &session,
        &[("password", IAGO_PASSWORD)],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"zuliprc\"")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let site = format!("http://{}", server.addr);
    assert_eq!(
        r.text(),
        format!("[api]\nemail={IAGO}\nkey={key}\nsite={site}\n")
    );
    // Wrong passwords here count against the username's limit, as logins do.
    for _ in 0..4 {
        let r = post(
            &server,
            "/accounts/settings/zuliprc",
            &session,
            &[("password", "wrong")],
        );
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    let r = post(
        &server,
        "/accounts/settings/zuliprc",
        &session,
        &[("password", IAGO_PASSWORD)],
    );
    assert!(
        r.text().contains("Too many attempts. Please try again in "),
        "{}",
        r.text()
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
}

#[test]
fn a_new_key_and_the_old_fails_at_once() {
    let (server, _) = TestServer::with_iago(&[]);
    let old = server.login(IAGO, IAGO_PASSWORD).api_key();
    let session = sign_in(&server, IAGO_PASSWORD);
    let r = post(
        &server,
        "/accounts/settings/api-key/regenerate",
        &session,
        &[("password", IAGO_PASSWORD)],
    );
    // The new key shows in the key's section, where the person is looking.
    let html = r.text();
    let shown = "<section id=\"api-key\"><h2>API key</h2><p class=\"status\" role=\"status\">Your API key: <code>";
    let start = html.find(shown).expect("the new key") + shown.len();
    let new = &html[start..start + 32];
    assert_ne!(new, old);
    assert_eq!(users_me(&server, &old), 401);
    assert_eq!(users_me(&server, new), 200);
    assert!(
        server
            .stdout(&["audit", "--user", IAGO])
            .contains("key_rotated")
    );
}

#[test]
fn a_new_password_keeps_this_browser_signed_in_and_ends_the_others() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let here = sign_in(&server, IAGO_PASSWORD);
    let elsewhere = sign_in(&server, IAGO_PASSWORD);
    let change = |old: &str, one: &str, two: &str| {
        post(
            &server,
            "/accounts/settings/password",
            &here,
            &[
                ("old_password", old),
                ("new_password1", one),
                ("new_password2", two),
            ],
        )
    };
    for (old, one, two, message) in [
        ("wrong", NEW_PASSWORD, NEW_PASSWORD, "Wrong password!"),
        (
            IAGO_PASSWORD,
            NEW_PASSWORD,
            "Tulip-Quarry-48",
            "The two password fields didn",
        ),
        (
            IAGO_PASSWORD,
            "abcd1234",
            "abcd1234",
            // In the password's section, where the person is looking.
            "<section id=\"password\"><h2>Password</h2><p class=\"error\" role=\"alert\">The password is too weak.</p>",
        ),
    ] {
        let r = change(old, one, two);
        assert!(r.text().contains(message), "{message}: {}", r.text());
    }
    let r = change(IAGO_PASSWORD, NEW_PASSWORD, NEW_PASSWORD);
    assert!(
        r.text().contains("Your password has been changed."),
        "{}",
        r.text()
    );
    let renewed = session_of(&r);
    assert_eq!(page(&server, &renewed).status, 200);
    assert_signed_out(&server, &here);
    assert_signed_out(&server, &elsewhere);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(IAGO, NEW_PASSWORD).api_key(), key);
}

#[test]
fn signing_out_resets_deactivation_and_other_changes_end_sessions() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let r = post(&server, "/accounts/logout/", &session, &[]);
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/accounts/login/"))
    );
    assert_eq!(
        r.header("set-cookie"),
        Some("sessionid=; Path=/; HttpOnly; Max-Age=0; SameSite=Strict")
    );
    assert_signed_out(&server, &session);

    let session = sign_in(&server, IAGO_PASSWORD);
    let link = reset_link(&server, IAGO, &[]);
    assert_eq!(
        set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD).status,
        302
    );
    assert_signed_out(&server, &session);

    let session = sign_in(&server, NEW_PASSWORD);
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "Other-Pass-88\n",
    );
    assert!(out.status.success());
    assert_signed_out(&server, &session);

    let session = sign_in(&server, "Other-Pass-88");
    server.ok(&["user", "deactivate", IAGO]);
    server.ok(&["user", "reactivate", IAGO]);
    assert_signed_out(&server, &session);

    let session = sign_in(&server, "Other-Pass-88");
    server.ok(&["realm", "deactivate", ""]);
    assert_signed_out(&server, &session);
    server.ok(&["realm", "reactivate", ""]);

    // The API's password change ends them too.
    let session = sign_in(&server, "Other-Pass-88");
    let key = server.login(IAGO, "Other-Pass-88").api_key();
    let auth = format!(
        "Basic {}",
        Base64::encode_string(format!("{IAGO}:{key}").as_bytes())
    );
    let body = "old_password=Other-Pass-88&new_password=Fresh-Lilac-51";
    let r = server.send(
        "PATCH",
        "/api/v1/settings",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_signed_out(&server, &session);
}

/// Whether a session begun at or after `begun` must still be live now, `within` after it.
fn surely_within(begun: Instant, within: f64) -> bool {
    begun.elapsed().as_secs_f64() < within - 0.2
}

#[test]
fn idle_and_absolute_lifetimes() {
    let (server, _) = TestServer::with_iago(&["--session-idle-timeout", "2s"]);
    let begun = Instant::now();
    let session = sign_in(&server, IAGO_PASSWORD);
    let live = page(&server, &session).status == 200;
    assert!(live || !surely_within(begun, 2.0), "not idle yet");
    let last_use = Instant::now();
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(last_use.elapsed()));
    assert_signed_out(&server, &session);

    let (server, _) =
        TestServer::with_iago(&["--session-idle-timeout", "60s", "--session-lifetime", "3s"]);
    let begun = Instant::now();
    let session = sign_in(&server, IAGO_PASSWORD);
    let mut checked = 0;
    while surely_within(begun, 3.0) {
        std::thread::sleep(Duration::from_millis(400));
        let status = page(&server, &session).status;
        if surely_within(begun, 3.0) {
            assert_eq!(status, 200, "used, so not idle");
            checked += 1;
        }
    }
    // A sign-in slower than the whole lifetime would have checked nothing.
    assert!(checked > 0 || begun.elapsed().as_secs_f64() > 2.0);
    std::thread::sleep(Duration::from_millis(3300).saturating_sub(begun.elapsed()));
    assert_signed_out(&server, &session);
}

#[test]
fn every_form_needs_the_csrf_pair_and_its_method() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let cookie = format!("sessionid={session}");
    for path in [
        "/accounts/settings/api-key",
        "/accounts/settings/zuliprc",
        "/accounts/settings/api-key/regenerate",
        "/accounts/settings/password",
        "/accounts/settings/two-factor/",
        "/accounts/settings/two-factor/remove",
        "/accounts/settings/devices/sign-out",
        "/accounts/settings/devices/sign-out-everywhere",
        "/accounts/logout/",
    ] {
        let r = server.post_form_with(path, &[("password", IAGO_PASSWORD)], &[("Cookie", &cookie)]);
        assert_eq!(r.status, 403, "{path}");
        let r = server.send("GET", path, &[("Cookie", &cookie)], b"");
        // A destructive action shows its confirmation on GET, and refuses other methods.
        let confirmed = [
            "/accounts/settings/api-key/regenerate",
            "/accounts/settings/devices/sign-out",
            "/accounts/settings/devices/sign-out-everywhere",
            "/accounts/logout/",
        ];
        let (status, allow) = match path {
            path if confirmed.contains(&path) => {
                assert_eq!(r.status, 200, "{path}");
                let r = server.send("PUT", path, &[("Cookie", &cookie)], b"");
                (r.status, r.header("allow").map(str::to_owned))
            }
            _ => (r.status, r.header("allow").map(str::to_owned)),
        };
        let expected = match path {
            path if confirmed.contains(&path) => "GET, HEAD, POST",
            _ => "POST",
        };
        assert_eq!((status, allow.as_deref()), (405, Some(expected)), "{path}");
    }
    let r = post(&server, SETTINGS, &session, &[]);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    // The session outlived all of that.
    assert_eq!(page(&server, &session).status, 200);
}

#[test]
fn the_second_factor_on_and_off_from_the_account_page() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let offer = post(&server, TWO_FACTOR_ON, &session, &[]);
    assert!(offer.text().contains("<svg "), "{}", offer.text());
    let code = shown_secret(offer.text()).code_at(now());
    let r = post(
        &server,
        TWO_FACTOR_ON,
        &session,
        &[("otp_token", &code), ("password", IAGO_PASSWORD)],
    );
    assert!(
        r.text().contains("Two-factor authentication is on"),
        "{}",
        r.text()
    );
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        TOTP")
    );
    let account = page(&server, &session);
    assert!(!account.text().contains("<svg "));
    assert!(
        account
            .text()
            .contains("action=\"/accounts/settings/two-factor/remove#two-factor\"")
    );
    let remove = |password| {
        post(
            &server,
            "/accounts/settings/two-factor/remove",
            &session,
            &[("password", password)],
        )
    };
    assert!(remove("wrong").text().contains("Wrong password!"));
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        TOTP")
    );
    assert!(
        remove(IAGO_PASSWORD)
            .text()
            .contains("Two-factor authentication is off.")
    );
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        none")
    );
}

/// Issue 20, item 3: a stolen session cookie alone must not turn on a second factor with the
/// thief's key. The form that turns it on asks for the password, like every change here, and
/// a wrong one counts against the limit as a login does.
#[test]
fn turning_the_second_factor_on_asks_for_the_password() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "3/600s"]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let offer = post(&server, TWO_FACTOR_ON, &session, &[]);
    assert_eq!(offer.status, 200, "{}", offer.text());
    assert!(
        offer.text().contains("name=\"password\""),
        "{}",
        offer.text()
    );
    let code = shown_secret(offer.text()).code_at(now());
    for password in [None, Some(""), Some("wrong")] {
        let mut fields = vec![("otp_token", code.as_str())];
        fields.extend(password.map(|p| ("password", p)));
        let r = post(&server, TWO_FACTOR_ON, &session, &fields);
        assert_eq!(r.status, 200);
        assert!(r.text().contains("Wrong password!"), "{}", r.text());
        // The same offer is shown again, to try once more.
        assert!(r.text().contains("<svg "), "{}", r.text());
        assert!(
            server
                .stdout(&["user", "show", IAGO])
                .contains("2fa        none")
        );
    }
    // Three wrong passwords spent the username's limit: the right one now waits too.
    let fields = [("otp_token", code.as_str()), ("password", IAGO_PASSWORD)];
    let r = post(&server, TWO_FACTOR_ON, &session, &fields);
    assert!(
        r.text().contains("Too many attempts. Please try again in "),
        "{}",
        r.text()
    );
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        none")
    );
}

/// Issue 20, item 4: viewing the account page stores nothing; an offer of a key is made when
/// the person asks for one, and a session holds at most one (a new one replaces the older).
#[test]
fn an_offer_is_made_when_asked_and_a_session_holds_one() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server, IAGO_PASSWORD);
    for _ in 0..5 {
        let r = page(&server, &session);
        assert_eq!(r.status, 200);
        assert!(!r.text().contains("<svg "), "{}", r.text());
        assert!(
            r.text()
                .contains(&format!("action=\"{TWO_FACTOR_ON}#two-factor\""))
        );
    }
    assert_eq!(server.row_count("web_login_step"), 0);
    let offers: Vec<_> = (0..3)
        .map(|_| shown_secret(post(&server, TWO_FACTOR_ON, &session, &[]).text()))
        .collect();
    assert_eq!(server.row_count("web_login_step"), 1);
    // An older offer's key is void; the newest turns on.
    let turn_on = |secret: &zulip_auth::auth::totp::Secret| {
        let code = secret.code_at(now());
        let fields = [("otp_token", code.as_str()), ("password", IAGO_PASSWORD)];
        post(&server, TWO_FACTOR_ON, &session, &fields)
    };
    let old = turn_on(&offers[0]);
    assert!(
        old.text().contains("That code is not right."),
        "{}",
        old.text()
    );
    let done = turn_on(&offers[2]);
    assert!(
        done.text().contains("Two-factor authentication is on"),
        "{}",
        done.text()
    );
    assert_eq!(server.row_count("web_login_step"), 0);
    // Spent: the same offer turns nothing on a second time.
    let again = turn_on(&offers[2]);
    assert!(
        again.text().contains("no longer on offer"),
        "{}",
        again.text()
    );
}

/// The key inside `<code>…</code>` on a page.
fn shown_key(r: &HttpResponse) -> String {
    let text = r.text();
    let start = text
        .find("<code>")
        .unwrap_or_else(|| panic!("no key shown: {text}"))
        + "<code>".len();
    text[start..start + 32].to_owned()
}

/// The id of iago's key named `name`, as `user keys` lists it.
fn key_id(server: &TestServer, name: &str) -> String {
    let listing = server.stdout(&["user", "keys", IAGO]);
    listing
        .lines()
        .find(|l| l.contains(name))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no key {name} in {listing}"))
        .to_owned()
}

#[test]
fn per_device_the_page_creates_named_keys_and_signs_devices_out() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "set", "", "--api-keys", "per-device"]);
    let session = sign_in(&server, IAGO_PASSWORD);
    let html = page(&server, &session).text().to_owned();
    assert!(html.contains("Create a key for a new device"), "{html}");
    assert!(!html.contains("Show API key"), "{html}");

    let r = post(
        &server,
        "/accounts/settings/api-key",
        &session,
        &[
            ("password", IAGO_PASSWORD),
            ("device_name", "Work laptop\u{7}"),
        ],
    );
    let laptop = shown_key(&r);
    assert_eq!(users_me(&server, &laptop), 200);
    let html = page(&server, &session).text().to_owned();
    // Shown once: the page lists the device, never its key.
    assert!(!html.contains(&laptop), "{html}");
    assert!(html.contains("<b>Work laptop</b> (account)"), "{html}");

    let r = post(
        &server,
        "/accounts/settings/zuliprc",
        &session,
        &[("password", IAGO_PASSWORD)],
    );
    let zuliprc = r.text().to_owned();
    let file_key = zuliprc
        .lines()
        .find_map(|l| l.strip_prefix("key="))
        .unwrap()
        .to_owned();
    assert_ne!(file_key, laptop);
    assert_eq!(users_me(&server, &file_key), 200);

    let laptop_id = key_id(&server, "Work laptop");
    let r = post(
        &server,
        "/accounts/settings/devices/sign-out",
        &session,
        &[("key_id", &laptop_id)],
    );
    assert!(
        r.text().contains("That device is signed out"),
        "{}",
        r.text()
    );
    assert_eq!(users_me(&server, &laptop), 401);
    assert_eq!(users_me(&server, &file_key), 200);
    let r = post(
        &server,
        "/accounts/settings/devices/sign-out",
        &session,
        &[("key_id", &laptop_id)],
    );
    assert!(r.text().contains("already revoked"), "{}", r.text());

    let r = post(
        &server,
        "/accounts/settings/devices/sign-out-everywhere",
        &session,
        &[],
    );
    assert!(
        r.text().contains("Every device is signed out"),
        "{}",
        r.text()
    );
    assert_eq!(users_me(&server, &file_key), 401);
    assert_eq!(server.row_count("api_key"), 0);
}

#[test]
fn destructive_actions_ask_for_confirmation_first() {
    let (server, _) = TestServer::with_iago(&[]);
    let old = server.login(IAGO, IAGO_PASSWORD).api_key();
    let session = sign_in(&server, IAGO_PASSWORD);
    let cookie = format!("csrftoken={CSRF}; sessionid={session}");
    let confirmation = |path: &str, needles: &[&str]| {
        let r = server.send("GET", path, &[("Cookie", &cookie)], b"");
        assert_eq!(r.status, 200, "{path}");
        for needle in needles {
            assert!(
                r.text().contains(needle),
                "{needle} missing from {}",
                r.text()
            );
        }
    };

    // Opening either confirmation changes nothing.
    confirmation(
        "/accounts/settings/api-key/regenerate",
        &[
            "<title>Generate a new API key?</title>",
            "stops working at once",
            "<form method=\"post\" action=\"/accounts/settings/api-key/regenerate#api-key\">",
            "<button class=\"danger\" type=\"submit\">Generate a new API key</button>",
            "<a class=\"back\" href=\"/accounts/settings/\">Keep the current key</a>",
        ],
    );
    confirmation(
        "/accounts/logout/",
        &[
            "<title>Sign out?</title>",
            "<form method=\"post\" action=\"/accounts/logout/\">",
            "<button class=\"danger\" type=\"submit\">Sign out</button>",
            "<a class=\"back\" href=\"/accounts/settings/\">Stay signed in</a>",
        ],
    );
    assert_eq!(users_me(&server, &old), 200);
    assert_eq!(page(&server, &session).status, 200);

    // A wrong password stays on the confirmation, and replaces nothing.
    let r = post(
        &server,
        "/accounts/settings/api-key/regenerate",
        &session,
        &[("password", "wrong")],
    );
    assert!(r.text().contains("<title>Generate a new API key?</title>"));
    assert!(r.text().contains("Wrong password!"), "{}", r.text());
    assert_eq!(users_me(&server, &old), 200);
}

/// `users/me`'s status with each key.
fn statuses(server: &TestServer, keys: &[&str]) -> Vec<u16> {
    keys.iter().map(|key| users_me(server, key)).collect()
}

#[track_caller]
fn assert_shows(r: &HttpResponse, needles: &[&str]) {
    assert_eq!(r.status, 200, "{}", r.text());
    for needle in needles {
        assert!(
            r.text().contains(needle),
            "{needle} missing from {}",
            r.text()
        );
    }
}

/// A per-device realm with iago signed in on the page, a key made there for "Work laptop"
/// and one by `fetch_api_key`: the session, the laptop's key and id, the other key.
fn two_devices(server: &TestServer) -> (String, String, String, String) {
    server.ok(&["realm", "set", "", "--api-keys", "per-device"]);
    let session = sign_in(server, IAGO_PASSWORD);
    let laptop = shown_key(&post(
        server,
        "/accounts/settings/api-key",
        &session,
        &[("password", IAGO_PASSWORD), ("device_name", "Work laptop")],
    ));
    let phone = server.login(IAGO, IAGO_PASSWORD).api_key();
    let laptop_id = key_id(server, "Work laptop");
    (session, laptop, laptop_id, phone)
}

#[test]
fn signing_a_device_out_asks_for_confirmation_first() {
    let (server, _) = TestServer::with_iago(&[]);
    let (session, laptop, laptop_id, phone) = two_devices(&server);
    let cookie = format!("csrftoken={CSRF}; sessionid={session}");
    let get = |path: &str| server.send("GET", path, &[("Cookie", &cookie)], b"");
    let one = format!("/accounts/settings/devices/sign-out?key_id={laptop_id}");

    // The page links to the confirmations and posts no sign-out itself.
    let html = page(&server, &session).text().to_owned();
    assert!(
        html.contains(&format!(
            "<a class=\"button danger\" href=\"{one}\">Sign out this device</a>"
        )),
        "{html}"
    );
    assert!(html.contains(
        "<a class=\"button danger\" href=\"/accounts/settings/devices/sign-out-everywhere\">\
         Sign out everywhere</a>"
    ));
    assert!(
        !html.contains("action=\"/accounts/settings/devices/"),
        "{html}"
    );

    // Opening the confirmation changes nothing; its form signs out that device only.
    let confirmation = get(&one);
    assert_shows(
        &confirmation,
        &[
            "<title>Sign out this device?</title>",
            "<p>Sign out <b>Work laptop</b> (account), made ",
            "? Its key stops working at once, and the app there must sign in again.</p>",
            "<form method=\"post\" action=\"/accounts/settings/devices/sign-out#devices\">",
            "<button class=\"danger\" type=\"submit\">Sign out this device</button>",
            "<a class=\"back\" href=\"/accounts/settings/\">Keep it signed in</a>",
        ],
    );
    assert_eq!(field(confirmation.text(), "key_id"), laptop_id);
    assert_eq!(statuses(&server, &[&laptop, &phone]), [200, 200]);
    let done = post(
        &server,
        "/accounts/settings/devices/sign-out",
        &session,
        &[("key_id", &field(confirmation.text(), "key_id"))],
    );
    assert_shows(
        &done,
        &[
            "<p class=\"status\" role=\"status\">That device is signed out: its key no longer works.</p>",
        ],
    );
    assert_eq!(statuses(&server, &[&laptop, &phone]), [401, 200]);

    // A key gone already, an unknown id or none: the account page says so and asks nothing.
    for query in [laptop_id.as_str(), "999", "junk", ""] {
        let r = get(&format!(
            "/accounts/settings/devices/sign-out?key_id={query}"
        ));
        assert_shows(
            &r,
            &[
                "<title>Your account</title>",
                "<p class=\"error\" role=\"alert\">That key was already revoked.</p>",
            ],
        );
        assert!(!r.text().contains("Keep it signed in"), "{query}");
    }
}

#[test]
fn signing_out_everywhere_asks_for_confirmation_first() {
    let (server, _) = TestServer::with_iago(&[]);
    let (session, laptop, _, phone) = two_devices(&server);
    let cookie = format!("csrftoken={CSRF}; sessionid={session}");
    // Opening the confirmation changes nothing; its form ends every key, and this browser
    // stays signed in.
    let confirmation = server.send(
        "GET",
        "/accounts/settings/devices/sign-out-everywhere",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_shows(
        &confirmation,
        &[
            "<title>Sign out everywhere?</title>",
            "<p>Every key of yours stops working at once: every app, bot and zuliprc file must \
             sign in again. This browser stays signed in.</p>",
            "<form method=\"post\" action=\"/accounts/settings/devices/sign-out-everywhere#devices\">",
            "<button class=\"danger\" type=\"submit\">Sign out everywhere</button>",
            "<a class=\"back\" href=\"/accounts/settings/\">Keep them signed in</a>",
        ],
    );
    assert_eq!(statuses(&server, &[&laptop, &phone]), [200, 200]);
    let done = post(
        &server,
        "/accounts/settings/devices/sign-out-everywhere",
        &session,
        &[],
    );
    assert_shows(
        &done,
        &[
            "<p class=\"status\" role=\"status\">Every device is signed out: none of your keys works any more.</p>",
        ],
    );
    assert_eq!(statuses(&server, &[&laptop, &phone]), [401, 401]);
    assert_eq!(server.row_count("api_key"), 0);
    assert_eq!(page(&server, &session).status, 200);
}
