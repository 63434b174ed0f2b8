//! The browser sign-in over raw HTTP (web.md §1–§4): the CSRF pair, the app's pad, the exact
//! `zulip://` redirect, the second step and its limits, and what `--require-2fa` changes in
//! the API.

use base64ct::{Base64, Encoding};
use zulip_auth::auth::totp::Secret;

use crate::support::*;

const LOGIN: &str = "/accounts/login/";
const TWO_FACTOR_ON: &str = "/accounts/settings/two-factor/";
const ZERO_PAD: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A browser: the `csrftoken` cookie it was given, sent back with every form.
struct Browser<'a> {
    server: &'a TestServer,
    csrf: String,
}

impl<'a> Browser<'a> {
    /// Opens `target` (the login page, maybe with a pad) and keeps its cookie.
    fn open(server: &'a TestServer, target: &str) -> (Browser<'a>, HttpResponse) {
        let page = server.get(target);
        assert_eq!(page.status, 200, "{}", page.text());
        let cookie = page.header("set-cookie").expect("a csrftoken cookie");
        let csrf = cookie
            .strip_prefix("csrftoken=")
            .and_then(|rest| rest.split(';').next())
            .unwrap()
            .to_owned();
        assert_eq!(field(page.text(), "csrfmiddlewaretoken"), csrf);
        (Browser { server, csrf }, page)
    }

    /// Submits the form with `fields`, the CSRF token added.
    fn post(&self, fields: &[(&str, &str)]) -> HttpResponse {
        let mut all = vec![("csrfmiddlewaretoken", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let cookie = format!("csrftoken={}", self.csrf);
        self.server
            .post_form_with(LOGIN, &all, &[("Cookie", cookie.as_str())])
    }

    fn password(&self, username: &str, password: &str, pad: Option<&str>) -> HttpResponse {
        let mut fields = vec![("username", username), ("password", password)];
        fields.extend(pad.map(|p| ("mobile_flow_otp", p)));
        self.post(&fields)
    }

    /// A finished sign-in without a pad: a session cookie and the account page, opened.
    fn account_page(&self, finished: &HttpResponse) -> HttpResponse {
        assert_eq!(
            (finished.status, finished.header("location")),
            (302, Some("/accounts/settings/")),
            "{}",
            finished.text()
        );
        let session = session_of(finished);
        let cookie = format!("csrftoken={}; sessionid={session}", self.csrf);
        let page = self.server.send(
            "GET",
            "/accounts/settings/",
            &[("Cookie", cookie.as_str())],
            b"",
        );
        assert_eq!(page.status, 200, "{}", page.text());
        page
    }

    /// The account page's second-factor form, posted with the session `finished` opened:
    /// without a code it asks for a new key, with one it turns that key on.
    fn enrol_signed_in(&self, finished: &HttpResponse, fields: &[(&str, &str)]) -> HttpResponse {
        let session = session_of(finished);
        let mut all = vec![("csrfmiddlewaretoken", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let cookie = format!("csrftoken={}; sessionid={session}", self.csrf);
        self.server
            .post_form_with(TWO_FACTOR_ON, &all, &[("Cookie", cookie.as_str())])
    }

    /// The second step, with the step token of `page`.
    fn code(&self, page: &HttpResponse, code: &str, pad: Option<&str>) -> HttpResponse {
        let token = field(page.text(), "step_token");
        let mut fields = vec![("step_token", token.as_str()), ("otp_token", code)];
        fields.extend(pad.map(|p| ("mobile_flow_otp", p)));
        self.post(&fields)
    }
}

/// The `sessionid` a finished sign-in set.
fn session_of(finished: &HttpResponse) -> &str {
    finished
        .header("set-cookie")
        .and_then(|c| c.strip_prefix("sessionid="))
        .and_then(|rest| rest.split(';').next())
        .expect("a session cookie")
}

/// The value of the hidden field `name` in a page.
pub fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The key shown on an enrolment page, as a person would type it into an app.
pub fn shown_secret(html: &str) -> Secret {
    let start = html
        .find("<code class=\"secret\">")
        .expect("a key on the page")
        + 21;
    let text: String = html[start..]
        .split('<')
        .next()
        .unwrap()
        .split(' ')
        .collect();
    Secret::from_base32(&text).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `user totp enroll`: its first line is the URI, whose secret the test's "app" keeps.
pub fn enroll(server: &TestServer, email: &str) -> (String, Secret) {
    let out = server.stdout(&["user", "totp", "enroll", email]);
    let uri = out.lines().next().unwrap().to_owned();
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    let secret = Secret::from_base32(secret).unwrap();
    (out, secret)
}

/// The code step's page: a form for `otp_token`, and no key anywhere.
#[track_caller]
fn assert_code_page(page: &HttpResponse) {
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains("name=\"otp_token\""),
        "{}",
        page.text()
    );
    assert!(page.text().contains("autocomplete=\"one-time-code\""));
    assert!(page.header("location").is_none());
}

fn expected_redirect(server: &TestServer, api_key: &str, user_id: i64, pad_byte: u8) -> String {
    let encrypted: String = api_key
        .bytes()
        .map(|b| format!("{:02x}", b ^ pad_byte))
        .collect();
    format!(
        "zulip://login?otp_encrypted_api_key={encrypted}&email=iago%40example.com&user_id={user_id}&realm=http%3A%2F%2F127.0.0.1%3A{}",
        server.addr.port()
    )
}

#[test]
fn the_form_and_the_headers_every_page_carries() {
    let server = TestServer::start(&[]);
    let page = server.get(LOGIN);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src") || csp.starts_with("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let cookie = page.header("set-cookie").unwrap();
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "http realm: {cookie}");
    let html = page.text();
    for needle in [
        "<form method=\"post\" action=\"/accounts/login/\">",
        "name=\"username\"",
        "autocomplete=\"username\"",
        "name=\"password\"",
        "autocomplete=\"current-password\"",
        "<label for=\"username\">",
        "name=\"viewport\"",
    ] {
        assert!(html.contains(needle), "{needle} missing from {html}");
    }
    // Errors are plain pages with the same headers.
    let refused = server.post_form(LOGIN, &[("username", IAGO)]);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.header("x-frame-options"), Some("DENY"));
    // Secure cookies under an https realm URL.
    let https = TestServer::start(&["--external-url", "https://127.0.0.1"]);
    let cookie = https.get(LOGIN).header("set-cookie").unwrap().to_owned();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
}

#[test]
fn a_post_without_a_matching_csrf_pair_gets_403_and_counts_nothing() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "1/1800s"]);
    let (browser, _) = Browser::open(&server, LOGIN);
    let good = browser.csrf.clone();
    let other = "ab".repeat(32);
    let credentials = [("username", IAGO), ("password", IAGO_PASSWORD)];
    let attempts: [(Option<&str>, Option<&str>); 4] = [
        (None, None),
        (Some(&good), None),
        (None, Some(&good)),
        (Some(&good), Some(&other)),
    ];
    for (cookie, field) in attempts {
        let mut fields = credentials.to_vec();
        fields.extend(field.map(|f| ("csrfmiddlewaretoken", f)));
        let cookie = cookie.map(|c| format!("csrftoken={c}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        let response = server.post_form_with(LOGIN, &fields, &headers);
        assert_eq!(response.status, 403, "{cookie:?} {field:?}");
        assert!(response.text().contains("CSRF verification failed"));
        assert!(response.header("location").is_none());
    }
    // None of them reached the limiter: the one allowed attempt is still there.
    let response = browser.account_page(&browser.password(IAGO, IAGO_PASSWORD, None));
    assert!(
        response.text().contains("Signed in as"),
        "{}",
        response.text()
    );
}

#[test]
fn the_pad_must_be_64_hex_digits_and_the_desktop_flow_is_refused() {
    let (server, _) = TestServer::with_iago(&[]);
    for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"x".repeat(64)] {
        let page = server.get(&format!("{LOGIN}?mobile_flow_otp={bad}"));
        assert_eq!(page.status, 400, "{bad:?}");
        assert!(page.text().contains("Invalid OTP"), "{}", page.text());
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    let desktop = server.get(&format!("{LOGIN}?desktop_flow_otp={ZERO_PAD}"));
    assert_eq!(desktop.status, 400);
    let both = server.get(&format!(
        "{LOGIN}?mobile_flow_otp={ZERO_PAD}&desktop_flow_otp={ZERO_PAD}"
    ));
    assert_eq!(both.status, 400);
    assert!(both.text().contains("Can&#39;t use both") || both.text().contains("Can't use both"));
    // A good pad travels on in a hidden field; a bad one in the POST is refused too.
    let (browser, page) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    assert_eq!(field(page.text(), "mobile_flow_otp"), ZERO_PAD);
    let response = browser.password(IAGO, IAGO_PASSWORD, Some("1234"));
    assert_eq!(response.status, 400);
    assert!(response.text().contains("Invalid OTP"));
}

#[test]
fn the_finish_is_zulips_exact_redirect() {
    let (server, id) = TestServer::with_iago(&[]);
    let pad = "ff".repeat(32);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={pad}"));
    let response = browser.password(IAGO, IAGO_PASSWORD, Some(&pad));
    assert_eq!(response.status, 302, "{}", response.text());
    assert!(response.body.is_empty());
    assert_eq!(response.header("cache-control"), Some("no-store"));
    // The key is the one fetch_api_key hands out.
    let api_key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let location = response.header("location").unwrap();
    assert_eq!(location, expected_redirect(&server, &api_key, id, 0xff));
    // The realm is server_settings' realm_uri.
    let settings = server.get("/api/v1/server_settings").json();
    let realm_uri = settings["realm_uri"]
        .as_str()
        .unwrap()
        .replace(':', "%3A")
        .replace('/', "%2F");
    assert!(location.ends_with(&format!("&realm={realm_uri}")));
    // The audit trail says where the login came from; neither pad nor key reach the log.
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("login_success") && l.contains("web sign-in")),
        "{audit}"
    );
    let log = server.log_containing("POST /accounts/login/ 302");
    assert!(
        !log.contains(&pad) && !log.contains(&location[30..60]),
        "{log}"
    );
}

#[test]
fn without_a_pad_the_page_says_who_is_signed_in() {
    let (server, _) = TestServer::with_iago(&[]);
    let (browser, _) = Browser::open(&server, LOGIN);
    let wrong = browser.password(IAGO, "wrong", None);
    let unknown = browser.password("nobody@example.com", IAGO_PASSWORD, None);
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, 200);
        assert!(
            page.text()
                .contains("Your username or password is incorrect.")
        );
        assert!(page.text().contains("name=\"password\""));
    }
    // The same page either way, but for the username typed back in.
    assert_eq!(
        wrong.text().replace(IAGO, "X"),
        unknown.text().replace("nobody@example.com", "X")
    );
    let page = browser.account_page(&browser.password(IAGO, IAGO_PASSWORD, None));
    assert!(
        page.text()
            .contains("Signed in as <b>Iago</b> (iago@example.com)"),
        "{}",
        page.text()
    );
}

#[test]
fn a_second_factor_adds_a_code_step_and_a_code_works_once() {
    let (server, id) = TestServer::with_iago(&[]);
    let (_, secret) = enroll(&server, IAGO);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let code_page = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&code_page);
    assert_eq!(field(code_page.text(), "mobile_flow_otp"), ZERO_PAD);
    // A wrong code re-shows the step.
    let wrong = format!(
        "{:06}",
        (secret.code_at(now()).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let again = browser.code(&code_page, &wrong, Some(ZERO_PAD));
    assert_code_page(&again);
    assert!(again.text().contains("That code is not right."));
    let code = secret.code_at(now());
    let finished = browser.code(&again, &code, Some(ZERO_PAD));
    assert_eq!(finished.status, 302, "{}", finished.text());
    let api_key = server.login(IAGO, IAGO_PASSWORD).api_key();
    assert_eq!(
        finished.header("location").unwrap(),
        expected_redirect(&server, &api_key, id, 0)
    );
    // The step token is spent, and the code is too, in a fresh sign-in.
    let spent = browser.code(&again, &code, Some(ZERO_PAD));
    assert_eq!(spent.status, 200);
    assert!(spent.text().contains("took too long"));
    let second = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    let replay = browser.code(&second, &code, Some(ZERO_PAD));
    assert_code_page(&replay);
    assert!(replay.text().contains("That code is not right."));
    // The next step's code is still good (one step of tolerance).
    let next = browser.code(&replay, &secret.code_at(now() + 30), Some(ZERO_PAD));
    assert_eq!(next.status, 302);
    let audit = server.stdout(&["audit", "--user", IAGO]);
    for event in ["totp_enrolled", "totp_used", "login_failure"] {
        assert!(audit.contains(event), "{event} not in {audit}");
    }
    assert!(audit.contains("WRONG_CODE"));
}

#[test]
fn codes_count_against_the_username_limit_and_only_an_accepted_code_clears_it() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "3/1800s"]);
    let (_, secret) = enroll(&server, IAGO);
    let (browser, _) = Browser::open(&server, LOGIN);
    // Attempt 1: the password. 2: a wrong code. 3: the right code, which clears the bucket.
    let code_page = browser.password(IAGO, IAGO_PASSWORD, None);
    assert_code_page(&code_page);
    let again = browser.code(&code_page, "000000", None);
    let page = browser.account_page(&browser.code(&again, &secret.code_at(now()), None));
    assert!(page.text().contains("Signed in as"), "{}", page.text());
    // Three password steps alone do not clear it: the API's fourth attempt is refused.
    let mut pending = Vec::new();
    for _ in 0..3 {
        let page = browser.password(IAGO, IAGO_PASSWORD, None);
        assert_code_page(&page);
        pending.push(page);
    }
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    // And then the code step is refused too, even with a right code.
    let refused = browser.code(&pending[2], &secret.code_at(now() + 30), None);
    assert_eq!(refused.status, 200);
    assert!(
        refused
            .text()
            .contains("Too many attempts. Please try again in "),
        "{}",
        refused.text()
    );
}

#[test]
fn wrong_codes_alone_exhaust_the_limit() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "3/1800s"]);
    let (_, secret) = enroll(&server, IAGO);
    let (browser, _) = Browser::open(&server, LOGIN);
    let mut page = browser.password(IAGO, IAGO_PASSWORD, None);
    for _ in 0..2 {
        page = browser.code(&page, "000000", None);
        assert!(page.text().contains("That code is not right."));
    }
    let refused = browser.code(&page, &secret.code_at(now()), None);
    // 3 attempts in 1800 s: the first frees up 1800 s after it, within this test's seconds.
    assert!(
        refused
            .text()
            .contains("Too many attempts. Please try again in 30 minutes."),
        "{}",
        refused.text()
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
}

#[test]
fn require_2fa_refuses_password_logins_and_shows_only_the_web_method() {
    let (server, _) = TestServer::with_iago(&[]);
    let methods = |server: &TestServer| server.get("/api/v1/server_settings").json();
    assert_eq!(
        methods(&server)["external_authentication_methods"],
        serde_json::json!([])
    );
    server.ok(&["realm", "set", "", "--web-login", "on"]);
    let listed = r#"[{"name":"zulip-auth","display_name":"Zulip","display_icon":null,"login_url":"/accounts/login/","signup_url":"/accounts/login/"}]"#;
    let body = server.get("/api/v1/server_settings");
    assert!(
        body.text()
            .contains(&format!("\"external_authentication_methods\":{listed}")),
        "{}",
        body.text()
    );
    assert_eq!(methods(&server)["email_auth_enabled"], true);
    server.ok(&["realm", "set", "", "--web-login-name", "Lear & Co. 2FA"]);
    assert_eq!(
        methods(&server)["external_authentication_methods"][0]["display_name"],
        "Lear & Co. 2FA"
    );
    server.ok(&[
        "realm",
        "set",
        "",
        "--web-login",
        "off",
        "--web-login-name",
        "",
        "--require-2fa",
        "on",
    ]);
    let settings = methods(&server);
    assert_eq!(settings["email_auth_enabled"], false);
    for method in ["password", "email", "ldap"] {
        assert_eq!(
            settings["authentication_methods"][method], false,
            "{method}"
        );
    }
    assert_eq!(
        settings["external_authentication_methods"],
        serde_json::from_str::<serde_json::Value>(listed).unwrap()
    );
    let refused = server.login(IAGO, IAGO_PASSWORD);
    refused.assert_json(401, E9);
    assert_eq!(refused.header("x-ratelimit-limit"), Some("5"));
    // The page itself serves.
    let (browser, _) = Browser::open(&server, LOGIN);
    let page = browser.password(IAGO, "wrong", None);
    assert!(
        page.text()
            .contains("Your username or password is incorrect.")
    );
}

#[test]
fn under_require_2fa_a_user_without_a_factor_enrols_before_any_key() {
    let (server, id) = TestServer::with_iago(&[]);
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let enrol = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&enrol);
    assert!(enrol.text().contains("<svg "), "an inline QR code");
    let secret = shown_secret(enrol.text());
    // Nothing is enrolled or handed out until a first code confirms the key.
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        none")
    );
    let wrong = browser.code(&enrol, "000000", Some(ZERO_PAD));
    assert_code_page(&wrong);
    assert!(wrong.text().contains("<svg "));
    let finished = browser.code(&wrong, &secret.code_at(now()), Some(ZERO_PAD));
    assert_eq!(finished.status, 302, "{}", finished.text());
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        TOTP")
    );
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("totp_enrolled") && l.contains("web sign-in")),
        "{audit}"
    );
    let location = finished.header("location").unwrap().to_owned();
    // The key decodes as the app decodes it, and works.
    let encrypted = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("otp_encrypted_api_key="))
        .unwrap();
    let api_key: String = (0..32)
        .map(|i| char::from(u8::from_str_radix(&encrypted[2 * i..2 * i + 2], 16).unwrap()))
        .collect();
    let auth = format!(
        "Basic {}",
        Base64::encode_string(format!("{IAGO}:{api_key}").as_bytes())
    );
    let me = server.send(
        "GET",
        "/api/v1/users/me",
        &[("Authorization", auth.as_str())],
        b"",
    );
    assert_eq!((me.status, me.json()["user_id"].as_i64()), (200, Some(id)));
    // The next sign-in asks for a code of that key.
    let next = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&next);
    assert!(!next.text().contains("<svg "));
}

#[test]
fn a_signed_in_user_turns_the_second_factor_on() {
    let (server, _) = TestServer::with_iago(&[]);
    let (browser, _) = Browser::open(&server, LOGIN);
    let finished = browser.password(IAGO, IAGO_PASSWORD, None);
    let page = browser.account_page(&finished);
    // Without --require-2fa the factor guards these pages, not the apps' password login.
    assert!(
        page.text()
            .contains("can still log in with your password alone"),
        "{}",
        page.text()
    );
    let offer = browser.enrol_signed_in(&finished, &[]);
    assert!(offer.text().contains("<svg "), "{}", offer.text());
    let code = shown_secret(offer.text()).code_at(now());
    let fields = [("otp_token", code.as_str()), ("password", IAGO_PASSWORD)];
    let done = browser.enrol_signed_in(&finished, &fields);
    assert!(
        done.text().contains("Two-factor authentication is on"),
        "{}",
        done.text()
    );
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        TOTP")
    );
    assert_code_page(&browser.password(IAGO, IAGO_PASSWORD, None));
}

#[test]
fn the_cli_enrols_shows_and_disables() {
    let (server, _) = TestServer::with_iago(&[]);
    let (out, secret) = enroll(&server, IAGO);
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "otpauth://totp/Zulip:iago%40example.com?secret={}&issuer=Zulip",
            secret.to_base32()
        )
    );
    assert!(out.lines().count() > 15, "a QR code follows:\n{out}");
    assert!(out.contains('█') || out.contains('▀') || out.contains('▄'));
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        TOTP")
    );
    server.ok(&["user", "totp", "disable", IAGO]);
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        none")
    );
    let again = server.cli(&["user", "totp", "disable", IAGO], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("has no second factor"));
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(audit.contains("totp_enrolled") && audit.contains("totp_removed"));
    assert!(!audit.contains(&secret.to_base32()));
    // After removal the sign-in has no code step again.
    let (browser, _) = Browser::open(&server, LOGIN);
    let finished = browser.password(IAGO, IAGO_PASSWORD, None);
    assert!(
        browser
            .account_page(&finished)
            .text()
            .contains("Signed in as")
    );
}

#[test]
fn another_instance_takes_the_second_step() {
    let (mut server, _) = TestServer::with_iago(&[]);
    let (_, secret) = enroll(&server, IAGO);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let csrf = browser.csrf.clone();
    let code_page = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&code_page);
    // A new process on the same database: the step, the CSRF pair and the replay guard are
    // all in the store.
    server.restart();
    let browser = Browser {
        server: &server,
        csrf,
    };
    let finished = browser.code(&code_page, &secret.code_at(now()), Some(ZERO_PAD));
    assert_eq!(finished.status, 302, "{}", finished.text());
    assert!(
        finished
            .header("location")
            .unwrap()
            .starts_with("zulip://login?")
    );
}

#[test]
fn realms_keep_their_own_pages_and_steps() {
    let (server, _) = TestServer::with_iago(&["--external-url", "http://chat.example.test"]);
    let root = [("Host", "chat.example.test")];
    let lear = [("Host", "lear.chat.example.test")];
    let missing = server.send("GET", LOGIN, &[("Host", "nope.chat.example.test")], b"");
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .text()
            .contains("There is no organization at this address.")
    );
    server.ok(&["realm", "create", "lear", "--name", "Lear & Co."]);
    let page = server.send("GET", LOGIN, &lear, b"");
    assert_eq!(page.status, 200);
    assert!(
        page.text()
            .contains("<title>Sign in to Lear &amp; Co.</title>"),
        "{}",
        page.text()
    );
    // A step begun on the root realm is no step on lear's.
    enroll(&server, IAGO);
    let csrf = "cd".repeat(32);
    let cookie = format!("csrftoken={csrf}");
    let post = |host: &[(&str, &str); 1], fields: &[(&str, &str)]| {
        let mut all = vec![("csrfmiddlewaretoken", csrf.as_str())];
        all.extend_from_slice(fields);
        server.post_form_with(LOGIN, &all, &[host[0], ("Cookie", cookie.as_str())])
    };
    let code_page = post(&root, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    assert_code_page(&code_page);
    let token = field(code_page.text(), "step_token");
    let elsewhere = post(&lear, &[("step_token", &token), ("otp_token", "000000")]);
    assert!(
        elsewhere.text().contains("took too long"),
        "{}",
        elsewhere.text()
    );
}

#[test]
fn a_password_changed_between_the_steps_finishes_nothing() {
    let (server, _) = TestServer::with_iago(&[]);
    let (_, secret) = enroll(&server, IAGO);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let code_page = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&code_page);
    let changed = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "Another-Horse-10\n",
    );
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    let refused = browser.code(&code_page, &secret.code_at(now()), Some(ZERO_PAD));
    assert_eq!(refused.status, 200);
    assert!(refused.header("location").is_none());
    assert!(
        refused
            .text()
            .contains("Your username or password is incorrect.")
    );
    assert!(refused.text().contains("name=\"password\""));
}

#[test]
fn a_key_enrolled_in_a_sign_in_that_cannot_finish_is_not_kept() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let enrol = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    let secret = shown_secret(enrol.text());
    // Whoever typed the old password is shut out by the change, and leaves no factor behind.
    let changed = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "Another-Horse-10\n",
    );
    assert!(changed.status.success());
    let refused = browser.code(&enrol, &secret.code_at(now()), Some(ZERO_PAD));
    assert_eq!(refused.status, 200);
    assert!(refused.header("location").is_none());
    assert!(refused.text().contains("name=\"password\""));
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("2fa        none")
    );
}

/// The recovery codes `user totp enroll` printed after the QR code, one per line.
fn printed_codes(out: &str) -> Vec<String> {
    let codes: Vec<String> = out
        .lines()
        .filter(|l| l.len() == 9 && l.as_bytes()[4] == b'-')
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{out}");
    for code in &codes {
        assert!(
            code.bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_lowercase() || b.is_ascii_digit()),
            "{code}"
        );
    }
    codes
}

#[test]
fn a_recovery_code_signs_in_once_through_the_apps_flow() {
    let (server, id) = TestServer::with_iago(&[]);
    let (out, _) = enroll(&server, IAGO);
    let codes = printed_codes(&out);
    let (browser, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let code_page = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    assert_code_page(&code_page);
    assert!(code_page.text().contains("recovery code"));
    // Typed in capitals, as a person may: the same code.
    let finished = browser.code(&code_page, &codes[0].to_uppercase(), Some(ZERO_PAD));
    assert_eq!(finished.status, 302, "{}", finished.text());
    let api_key = server.login(IAGO, IAGO_PASSWORD).api_key();
    assert_eq!(
        finished.header("location").unwrap(),
        expected_redirect(&server, &api_key, id, 0)
    );
    // Used is dead.
    let second = browser.password(IAGO, IAGO_PASSWORD, Some(ZERO_PAD));
    let replay = browser.code(&second, &codes[0], Some(ZERO_PAD));
    assert_code_page(&replay);
    assert!(replay.text().contains("That code is not right."));
    let next = browser.code(&replay, &codes[1], Some(ZERO_PAD));
    assert_eq!(next.status, 302, "{}", next.text());
    let audit = server.stdout(&["audit", "--user", IAGO]);
    for event in ["recovery_codes_made", "recovery_code_used", "WRONG_CODE"] {
        assert!(audit.contains(event), "{event} not in {audit}");
    }
    assert!(!codes.iter().any(|c| audit.contains(c.as_str())));
}

#[test]
fn wrong_recovery_codes_count_and_a_new_set_ends_the_old() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "3/1800s"]);
    let (out, _) = enroll(&server, IAGO);
    let old = printed_codes(&out);
    let new = server.stdout(&["user", "totp", "recovery-codes", IAGO]);
    let new: Vec<&str> = new.lines().collect();
    assert_eq!(new.len(), 10);
    let (browser, _) = Browser::open(&server, LOGIN);
    // Attempt 1: the password; 2 and 3: old codes, now wrong; 4: a live one, over the limit.
    let mut page = browser.password(IAGO, IAGO_PASSWORD, None);
    for code in &old[..2] {
        page = browser.code(&page, code, None);
        assert!(
            page.text().contains("That code is not right."),
            "{}",
            page.text()
        );
    }
    let refused = browser.code(&page, new[0], None);
    assert!(
        refused.text().contains("Too many attempts"),
        "{}",
        refused.text()
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    // Only for a user with a factor.
    server.ok(&["user", "totp", "disable", IAGO]);
    let none = server.cli(&["user", "totp", "recovery-codes", IAGO], "");
    assert_eq!(none.status.code(), Some(1));
}

#[test]
fn the_account_page_shows_codes_once_counts_them_and_makes_a_new_set() {
    let (server, _) = TestServer::with_iago(&[]);
    let (browser, _) = Browser::open(&server, LOGIN);
    let finished = browser.password(IAGO, IAGO_PASSWORD, None);
    let offer = browser.enrol_signed_in(&finished, &[]);
    let secret = shown_secret(offer.text());
    let code = secret.code_at(now());
    let done = browser.enrol_signed_in(
        &finished,
        &[("otp_token", code.as_str()), ("password", IAGO_PASSWORD)],
    );
    let shown: Vec<&str> = done
        .text()
        .split("<li><code>")
        .skip(1)
        .map(|rest| &rest[..9])
        .collect();
    assert_eq!(shown.len(), 10, "{}", done.text());
    let page = browser.account_page(&finished);
    assert!(
        page.text().contains("Recovery codes left: 10."),
        "{}",
        page.text()
    );
    assert!(!page.text().contains(shown[0]));
    // A second factor of the same user later does not make another set (CLI --replace).
    let out = server.stdout(&["user", "totp", "enroll", IAGO, "--replace"]);
    assert!(
        !out.lines().any(|l| l.len() == 9 && l.as_bytes()[4] == b'-'),
        "{out}"
    );
}

#[test]
fn a_browser_at_the_root_goes_to_the_sign_in_and_anything_else_gets_the_404() {
    let server = TestServer::start(&[]);
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for method in ["GET", "HEAD"] {
        let r = server.send(method, "/", &[("Accept", html)], b"");
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some(LOGIN)),
            "{method}"
        );
    }
    for (method, accept) in [
        ("GET", None),
        ("GET", Some("application/json")),
        ("GET", Some("*/*")),
        ("POST", Some(html)),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let r = server.send(method, "/", &headers, b"");
        r.assert_json(404, NOT_FOUND);
    }
}

#[test]
fn the_sign_in_links_to_the_reset_with_mail_only_and_the_reset_pages_link_back() {
    let server = TestServer::start(&[]);
    let forgot = "<a class=\"back\" href=\"/accounts/password/reset/\">Forgot your password?</a>";
    let back = "<a class=\"back\" href=\"/accounts/login/\">Back to sign in</a>";
    assert!(!server.get(LOGIN).text().contains(forgot));
    let no_mail = server.get("/accounts/password/reset/");
    assert!(no_mail.text().contains(back), "{}", no_mail.text());

    // Nothing is sent here: the relay is only configured.
    let mailing = crate::reset::with_dead_relay(&[]);
    let login = mailing.get(LOGIN);
    assert!(login.text().contains(forgot), "{}", login.text());
    // In an app's flow the reset would lose the pad: no link (web.md §3).
    let in_flow = mailing.get(&format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    assert_eq!(in_flow.status, 200);
    assert!(in_flow.text().contains("name=\"mobile_flow_otp\""));
    assert!(!in_flow.text().contains(forgot), "{}", in_flow.text());
    for path in [
        "/accounts/password/reset/",
        "/accounts/password/reset/done/",
        "/accounts/password/reset/not-a-token/",
    ] {
        let page = mailing.get(path);
        assert!(page.text().contains(back), "{path}: {}", page.text());
    }
    let done = mailing.get("/accounts/password/done/");
    assert!(
        done.text()
            .contains("<a class=\"button\" href=\"/accounts/login/\">Log in</a>"),
        "{}",
        done.text()
    );
}

#[test]
fn the_realm_heads_every_page_with_an_icon_of_this_origin_only() {
    let server = TestServer::start(&[]);
    server.ok(&["realm", "set", "", "--name", "Lear & Co."]);
    let banner = "<header><span>Lear &amp; Co.</span></header>";
    for path in [
        LOGIN,
        "/accounts/password/reset/",
        "/accounts/password/done/",
    ] {
        let page = server.get(path);
        assert!(page.text().contains(banner), "{path}: {}", page.text());
    }
    server.ok(&["realm", "set", "", "--icon", "/static/lear.png"]);
    let page = server.get(LOGIN);
    assert!(
        page.text().contains(
            "<header><img src=\"/static/lear.png\" alt=\"\" width=\"32\" height=\"32\"><span>Lear &amp; Co.</span></header>"
        ),
        "{}",
        page.text()
    );
    // Another origin's icon is not loaded by the pages' policy (img-src 'self'): not shown.
    server.ok(&[
        "realm",
        "set",
        "",
        "--icon",
        "https://cdn.example.net/lear.png",
    ]);
    let page = server.get(LOGIN);
    assert!(page.text().contains(banner), "{}", page.text());
    assert!(!page.text().contains("<img"), "{}", page.text());
}
