//! Defects found by attacking the web pages as a stranger would, each pinned by the request
//! that showed it.

use crate::reset::{NEW_PASSWORD, reset_link, set_new_password, submit};
use crate::support::{HttpResponse, IAGO, IAGO_PASSWORD, TestServer};
use crate::web::{field, now, shown_secret};

const TWO_FACTOR_ON: &str = "/accounts/settings/two-factor/";

/// Signs in on the login page; the `sessionid` cookie's value.
fn sign_in(server: &TestServer) -> String {
    let r = submit(
        server,
        "/accounts/login/",
        &[("username", IAGO), ("password", IAGO_PASSWORD)],
        "",
    );
    assert_eq!(r.status, 302, "{}", r.text());
    r.header("set-cookie")
        .and_then(|c| c.strip_prefix("sessionid="))
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned()
}

fn has_second_factor(server: &TestServer) -> bool {
    server
        .stdout(&["user", "show", IAGO])
        .contains("2fa        TOTP")
}

/// A reset link's token is as good as the password for an hour: the access log, which
/// operators ship to other systems, must not hold it, whether the link is opened or used.
#[test]
fn the_access_log_never_holds_a_reset_token() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &[]);
    let token = link
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(server.get(&link).status, 200);
    let r = set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 302);
    let log = server.log_containing("POST /accounts/password/reset/");
    assert!(!log.contains(&token), "{log}");
    assert!(
        log.contains("GET /accounts/password/reset/<token>/ 200"),
        "{log}"
    );
}

/// The account page's "turn on" form shows a new key. Once the session that asked for it
/// has ended (signed out here; a password change or a deactivation alike), whoever still has
/// the page, the next person at a shared browser, say, must not be able to make their own
/// authenticator the account's second factor, even with the password.
#[test]
fn the_enrolment_form_dies_with_its_session() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server);
    let cookies = format!("; sessionid={session}");
    let offer = submit(&server, TWO_FACTOR_ON, &[], &cookies);
    let secret = shown_secret(offer.text());
    let out = submit(&server, "/accounts/logout/", &[], &cookies);
    assert_eq!(out.status, 302);
    let code = secret.code_at(now());
    let fields = [("otp_token", code.as_str()), ("password", IAGO_PASSWORD)];
    // With the ended session's cookie, and with none.
    for cookies in [cookies.as_str(), ""] {
        let r = submit(&server, TWO_FACTOR_ON, &fields, cookies);
        assert_eq!(
            (r.status, r.header("location")),
            (302, Some("/accounts/login/"))
        );
        assert!(!has_second_factor(&server));
    }
    // Another session of the same person is no stranger: its own offer works.
    let cookies = format!("; sessionid={}", sign_in(&server));
    let offer = submit(&server, TWO_FACTOR_ON, &[], &cookies);
    let code = shown_secret(offer.text()).code_at(now());
    let fields = [("otp_token", code.as_str()), ("password", IAGO_PASSWORD)];
    let r = submit(&server, TWO_FACTOR_ON, &fields, &cookies);
    assert!(
        r.text().contains("Two-factor authentication is on"),
        "{}",
        r.text()
    );
    assert!(has_second_factor(&server));
}

/// Under `--require-2fa`, each password step of a user without a factor offers a new key.
/// Once one of them is turned on, an older offer still open (an attacker's, who had the
/// password before the user enrolled) must not replace the user's factor with its own key.
#[test]
fn an_older_enrolment_offer_cannot_replace_a_factor_enrolled_since() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "20/60s"]);
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let password_step = || {
        submit(
            &server,
            "/accounts/login/",
            &[("username", IAGO), ("password", IAGO_PASSWORD)],
            "",
        )
    };
    let code_step = |page: &HttpResponse, code: &str| {
        let step = field(page.text(), "step_token");
        submit(
            &server,
            "/accounts/login/",
            &[("step_token", &step), ("otp_token", code)],
            "",
        )
    };
    let attacker = password_step();
    let attacker_key = shown_secret(attacker.text());
    let user = password_step();
    let user_key = shown_secret(user.text());
    assert_ne!(attacker_key, user_key);
    let signed_in = code_step(&user, &user_key.code_at(now()));
    assert_eq!(signed_in.status, 302, "{}", signed_in.text());
    let late = code_step(&attacker, &attacker_key.code_at(now()));
    assert_eq!(late.status, 200, "{:?}", late.header("location"));
    assert!(
        late.header("set-cookie")
            .is_none_or(|c| !c.starts_with("sessionid"))
    );
    // The user's own key still signs in (the next step's code: the current one is spent).
    let again = password_step();
    assert!(!again.text().contains("<svg "), "no new key offered");
    let finished = code_step(&again, &user_key.code_at(now() + 30));
    assert_eq!(finished.status, 302, "{}", finished.text());
}

/// The zuliprc download holds the key: it carries every page's headers, not only no-store.
#[test]
fn the_zuliprc_download_carries_every_pages_headers() {
    let (server, _) = TestServer::with_iago(&[]);
    let session = sign_in(&server);
    let r = submit(
        &server,
        "/accounts/settings/zuliprc",
        &[("password", IAGO_PASSWORD)],
        &format!("; sessionid={session}"),
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"zuliprc\"")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let csp = r.header("content-security-policy").unwrap_or("");
    assert!(csp.starts_with("default-src 'none';"), "{csp:?}");
}
