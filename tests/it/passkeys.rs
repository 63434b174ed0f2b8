//! Passkeys over raw HTTP (web.md §9), with webauthn-rs' software passkey as the browser's
//! authenticator: enrolled on the account page after the password, then a sign-in without
//! a username through the apps' flow to a working key, the second factor after a password,
//! a counter going backwards, and a removed passkey refused.

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::support::*;
use crate::web::field;

const LOGIN: &str = "/accounts/login/";
const SETTINGS: &str = "/accounts/settings/";
const ADD: &str = "/accounts/settings/passkeys/add";
const REMOVE: &str = "/accounts/settings/passkeys/remove";
const ZERO_PAD: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The external URL: any port will do, the origin is what the authenticator signs.
const ORIGIN: &str = "http://localhost:9";

/// A browser: its cookies, and the software passkey of its platform.
struct Browser<'a> {
    server: &'a TestServer,
    csrf: String,
    session: Option<String>,
    key: SoftPasskey,
    /// What a resident key would remember: the credential id and the user handle.
    resident: Option<(String, String)>,
}

impl<'a> Browser<'a> {
    fn open(server: &'a TestServer, target: &str) -> (Browser<'a>, HttpResponse) {
        let page = server.get(target);
        assert_eq!(page.status, 200, "{}", page.text());
        let csrf = field(page.text(), "csrfmiddlewaretoken");
        let browser = Browser {
            server,
            csrf,
            session: None,
            key: SoftPasskey::new(true),
            resident: None,
        };
        (browser, page)
    }

    fn cookie(&self) -> String {
        match &self.session {
            Some(session) => format!("csrftoken={}; sessionid={session}", self.csrf),
            None => format!("csrftoken={}", self.csrf),
        }
    }

    fn post(&self, target: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let mut all = vec![("csrfmiddlewaretoken", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let cookie = self.cookie();
        self.server
            .post_form_with(target, &all, &[("Cookie", cookie.as_str())])
    }

    fn get(&self, target: &str) -> HttpResponse {
        let cookie = self.cookie();
        self.server
            .send("GET", target, &[("Cookie", cookie.as_str())], b"")
    }

    /// Signs in with the password (no factor) and keeps the session.
    fn sign_in(&mut self) {
        let done = self.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
        assert_eq!(done.status, 302, "{}", done.text());
        let session = done
            .header("set-cookie")
            .and_then(|c| c.strip_prefix("sessionid="))
            .and_then(|rest| rest.split(';').next())
            .unwrap();
        self.session = Some(session.to_owned());
    }

    /// The options a form's script would fetch.
    fn options(&self, target: &str, fields: &[(&str, &str)]) -> Value {
        let mut all = fields.to_vec();
        all.push(("passkey_options", "1"));
        let answer = self.post(target, &all);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.header("content-type"), Some("application/json"));
        answer.json()
    }

    /// Adds a passkey on the account page, as its script does after the password.
    fn add_passkey(&mut self) -> HttpResponse {
        let options = self.options(ADD, &[("password", IAGO_PASSWORD)]);
        let ceremony = options["ceremony"].as_str().unwrap().to_owned();
        let credential = self.create(options);
        self.post(ADD, &[("ceremony", &ceremony), ("credential", &credential)])
    }

    /// `navigator.credentials.create`: the credential as the script submits it. The
    /// software key keeps nothing resident, so the test remembers what a resident key would.
    fn create(&mut self, mut options: Value) -> String {
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required");
        selection["requireResidentKey"] = json!(false);
        selection["residentKey"] = json!("discouraged");
        let handle = options["publicKey"]["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let options: CreationChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .key
            .do_registration(Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        let answer = serde_json::to_value(&answer).unwrap();
        self.resident = Some((answer["id"].as_str().unwrap().to_owned(), handle));
        answer.to_string()
    }

    /// `navigator.credentials.get`, as a resident key answers a request without a list.
    fn get_assertion(&mut self, mut options: Value) -> String {
        let (id, handle) = self.resident.clone().unwrap();
        let listed = options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len);
        if listed.unwrap_or(0) == 0 {
            options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": id}]);
        }
        let options: RequestChallengeResponse = serde_json::from_value(options).unwrap();
        let answer = self
            .key
            .do_authentication(Url::parse(ORIGIN).unwrap(), options)
            .unwrap();
        let mut answer = serde_json::to_value(&answer).unwrap();
        answer["response"]["userHandle"] = json!(handle);
        answer.to_string()
    }
}

/// The key in a `zulip://login` redirect made with the zero pad.
fn key_of(redirect: &HttpResponse) -> String {
    assert_eq!(redirect.status, 302, "{}", redirect.text());
    let location = redirect.header("location").unwrap();
    let hex = location
        .strip_prefix("zulip://login?otp_encrypted_api_key=")
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    String::from_utf8(bytes).unwrap()
}

fn users_me(server: &TestServer, api_key: &str) -> HttpResponse {
    use base64ct::{Base64, Encoding};
    let basic = format!(
        "Basic {}",
        Base64::encode_string(format!("{IAGO}:{api_key}").as_bytes())
    );
    server.send(
        "GET",
        "/api/v1/users/me",
        &[("Authorization", basic.as_str())],
        b"",
    )
}

/// A sign-in without a username in the apps' flow, with the browser's passkey.
fn password_free(server: &TestServer, browser: &mut Browser<'_>) -> HttpResponse {
    let (app, page) = Browser::open(server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    assert!(
        page.text().contains("data-passkey=\"get\""),
        "{}",
        page.text()
    );
    let options = app.options(LOGIN, &[("mobile_flow_otp", ZERO_PAD)]);
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let credential = browser.get_assertion(options);
    app.post(
        LOGIN,
        &[
            ("mobile_flow_otp", ZERO_PAD),
            ("ceremony", &ceremony),
            ("credential", &credential),
        ],
    )
}

/// The password, then the passkey as the second factor, in the apps' flow.
fn second_factor(server: &TestServer, browser: &mut Browser<'_>) -> HttpResponse {
    let (app, _) = Browser::open(server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let step = app.post(
        LOGIN,
        &[
            ("username", IAGO),
            ("password", IAGO_PASSWORD),
            ("mobile_flow_otp", ZERO_PAD),
        ],
    );
    assert!(step.text().contains("Use a passkey"), "{}", step.text());
    let token = field(step.text(), "step_token");
    let options = app.options(
        LOGIN,
        &[("step_token", &token), ("mobile_flow_otp", ZERO_PAD)],
    );
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let credential = browser.get_assertion(options);
    app.post(
        LOGIN,
        &[
            ("step_token", &token),
            ("ceremony", &ceremony),
            ("credential", &credential),
            ("mobile_flow_otp", ZERO_PAD),
        ],
    )
}

#[test]
fn a_passkey_enrolled_on_the_account_page_signs_in_the_app_and_serves_as_second_factor() {
    let (server, id) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, login) = Browser::open(&server, LOGIN);
    // The sign-in offers passkeys under the script's policy.
    let csp = login.header("content-security-policy").unwrap();
    assert!(
        csp.ends_with("; script-src 'self'; connect-src 'self'"),
        "{csp}"
    );
    assert!(
        login
            .text()
            .contains("<script src=\"/static/passkey.js\" defer>")
    );
    let script = server.get("/static/passkey.js");
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    browser.sign_in();
    let account = browser.get(SETTINGS);
    assert!(
        account.text().contains("Add a passkey"),
        "{}",
        account.text()
    );

    // Adding one asks for the password first; a wrong one is the script's message.
    let wrong = browser.post(ADD, &[("password", "wrong"), ("passkey_options", "1")]);
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["msg"], "Wrong password!", "{}", wrong.text());
    let options = browser.options(ADD, &[("password", IAGO_PASSWORD)]);
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let credential = browser.create(options);
    let fields = [
        ("ceremony", ceremony.as_str()),
        ("credential", credential.as_str()),
        ("passkey_name", "Laptop\u{7}"),
    ];
    let added = browser.post(ADD, &fields);
    assert_eq!(added.status, 200);
    // The first factor: recovery codes, shown once; the passkey in the list.
    assert!(
        added.text().contains("Your recovery codes."),
        "{}",
        added.text()
    );
    assert!(added.text().contains("<b>Laptop</b>, added "));
    assert!(added.text().contains("never used"));
    // The same answer again finds no ceremony.
    let replayed = browser.post(ADD, &fields);
    assert!(
        replayed
            .text()
            .contains("took too long or was used already")
    );

    // Password-free through the apps' flow, to a key users/me takes.
    let redirect = password_free(&server, &mut browser);
    let api_key = key_of(&redirect);
    let me = users_me(&server, &api_key);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["user_id"], id);

    // The password now leads to the second step, which offers the passkey.
    let finished = second_factor(&server, &mut browser);
    assert_eq!(users_me(&server, &key_of(&finished)).status, 200);

    let audit = server.stdout(&["audit", "--user", IAGO]);
    for event in ["passkey_added", "passkey_used", "recovery_codes_made"] {
        assert!(audit.contains(event), "{event} not in {audit}");
    }
    assert!(
        audit
            .lines()
            .any(|l| l.contains("login_success") && l.contains("passkey sign-in")),
        "{audit}"
    );
    let account = browser.get(SETTINGS);
    assert!(
        account.text().contains(", last used "),
        "{}",
        account.text()
    );
}

#[test]
fn a_counter_going_backwards_and_a_removed_passkey_are_refused() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    let added = browser.add_passkey();
    assert!(
        added.text().contains("<b>Passkey</b>, added "),
        "{}",
        added.text()
    );
    assert_eq!(key_of(&password_free(&server, &mut browser)).len(), 32);

    let shown = server.stdout(&["user", "show", IAGO]);
    assert!(shown.contains("\n2fa        1 passkey\n"), "{shown}");
    // A clone: the stored counter is past what the authenticator signs next.
    server.execute("UPDATE passkey SET counter = 1000 WHERE name <> $1", "");
    let cloned = password_free(&server, &mut browser);
    assert_eq!(cloned.status, 200);
    assert!(cloned.text().contains("That passkey was not accepted."));
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(audit.contains("passkey_cloned"), "{audit}");
    // The refusal counts against the address, as nobody's.
    let audit = server.stdout(&["audit"]);
    assert!(audit.contains("WRONG_PASSKEY"), "{audit}");
    server.execute("UPDATE passkey SET counter = 0 WHERE name <> $1", "");

    // Removing asks for a confirmation with the password.
    let id = server.stdout(&["user", "passkeys", IAGO]);
    let id = id
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let confirm = browser.get(&format!("{REMOVE}?passkey_id={id}"));
    assert!(
        confirm.text().contains("Remove this passkey?"),
        "{}",
        confirm.text()
    );
    let wrong = browser.post(REMOVE, &[("passkey_id", &id), ("password", "wrong")]);
    assert!(wrong.text().contains("Remove this passkey?"));
    let removed = browser.post(REMOVE, &[("passkey_id", &id), ("password", IAGO_PASSWORD)]);
    assert!(
        removed.text().contains("The passkey is removed"),
        "{}",
        removed.text()
    );
    let refused = password_free(&server, &mut browser);
    assert!(refused.text().contains("That passkey was not accepted."));
    assert!(
        server
            .stdout(&["audit", "--user", IAGO])
            .contains("passkey_removed")
    );
    assert!(
        server
            .stdout(&["user", "show", IAGO])
            .contains("\n2fa        none\n")
    );
    let gone = server.cli(&["user", "passkey", "remove", IAGO, &id], "");
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&gone.stderr),
        format!("zulip-auth: \"{IAGO}\" has no passkey {id} (see: zulip-auth user passkeys)\n")
    );
}

#[test]
fn without_an_external_url_there_are_no_passkeys_and_the_page_says_why() {
    let (server, _) = TestServer::with_iago(&[]);
    let (mut browser, login) = Browser::open(&server, LOGIN);
    assert!(!login.text().contains("data-passkey"));
    assert!(
        !login
            .header("content-security-policy")
            .unwrap()
            .contains("script-src")
    );
    browser.sign_in();
    let account = browser.get(SETTINGS);
    assert!(
        account.text().contains(
            "Passkeys are not available: the server has no external URL (--external-url)."
        )
    );
    assert!(!account.text().contains("data-passkey"));
    // The script may not be asked for options either.
    let refused = browser.post(LOGIN, &[("passkey_options", "1")]);
    assert_eq!(refused.status, 400);
    // A realm that turned them off says so.
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    server.ok(&["realm", "set", "", "--passkeys", "off"]);
    let (mut browser, login) = Browser::open(&server, LOGIN);
    assert!(!login.text().contains("data-passkey"));
    browser.sign_in();
    let account = browser.get(SETTINGS);
    assert!(
        account
            .text()
            .contains("Passkeys are turned off in this organization.")
    );
}

/// Issue 24: a ceremony lives in the store, so another process on the same database (another
/// instance; on PostgreSQL, tests/postgres/run) finishes what one began: an enrolment and a
/// sign-in without a username.
#[test]
fn another_instance_finishes_a_ceremony_that_one_began() {
    let (mut server, id) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    let options = browser.options(ADD, &[("password", IAGO_PASSWORD)]);
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let credential = browser.create(options);
    let Browser {
        csrf,
        session,
        key,
        resident,
        ..
    } = browser;
    server.restart();
    let mut browser = Browser {
        server: &server,
        csrf,
        session,
        key,
        resident,
    };
    let added = browser.post(ADD, &[("ceremony", &ceremony), ("credential", &credential)]);
    assert!(
        added.text().contains("<b>Passkey</b>, added "),
        "{}",
        added.text()
    );

    let (app, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let options = app.options(LOGIN, &[("mobile_flow_otp", ZERO_PAD)]);
    let ceremony = options["ceremony"].as_str().unwrap().to_owned();
    let credential = browser.get_assertion(options);
    let csrf = app.csrf.clone();
    drop((app, browser));
    server.restart();
    let app = Browser::open(&server, LOGIN).0;
    let app = Browser { csrf, ..app };
    let finished = app.post(
        LOGIN,
        &[
            ("mobile_flow_otp", ZERO_PAD),
            ("ceremony", &ceremony),
            ("credential", &credential),
        ],
    );
    let me = users_me(&server, &key_of(&finished));
    assert_eq!(me.json()["user_id"], id, "{}", me.text());
}

/// Issue 24: refused answers count against the address, as failed logins do, until even a
/// right one is refused.
#[test]
fn refused_passkeys_count_against_the_address() {
    let (server, _) =
        TestServer::with_iago(&["--external-url", ORIGIN, "--address-rate", "2/600s"]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    let (app, _) = Browser::open(&server, LOGIN);
    for forged in ["{}", "not json"] {
        let options = app.options(LOGIN, &[]);
        let ceremony = options["ceremony"].as_str().unwrap();
        let refused = app.post(LOGIN, &[("ceremony", ceremony), ("credential", forged)]);
        assert!(refused.text().contains("That passkey was not accepted."));
    }
    // One line per refusal, which the fail2ban filter counts.
    let log = server.log_containing("reason=WRONG_PASSKEY");
    let line = log
        .lines()
        .find(|l| l.contains("reason=WRONG_PASSKEY"))
        .unwrap();
    let host = crate::cli::fail2ban_filter()
        .captures(line)
        .map(|c| c["host"].to_owned());
    assert_eq!(host.as_deref(), Some("127.0.0.1"), "{line}");
    let limited = password_free(&server, &mut browser);
    assert!(
        limited.text().contains("Too many attempts."),
        "{}",
        limited.text()
    );
}

/// Issue 24: anyone may begin a sign-in without a username, and each ceremony is a row for
/// 5 minutes, so an address begins at most 60 in 5 minutes.
#[test]
fn an_address_begins_a_bounded_number_of_ceremonies() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (app, _) = Browser::open(&server, LOGIN);
    for _ in 0..60 {
        app.options(LOGIN, &[]);
    }
    let refused = app.post(LOGIN, &[("passkey_options", "1")]);
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.text(),
        "{\"result\":\"error\",\"msg\":\"Too many passkey requests from your address. Please try again in a few minutes.\"}\n"
    );
    assert_eq!(server.row_count("passkey_ceremony"), 60);
}

/// Issue 24: under per-device keys, a sign-in with a passkey makes the device a key of its
/// own, with the method `passkey`.
#[test]
fn under_per_device_keys_a_passkey_makes_the_device_its_own_key() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    server.ok(&["realm", "set", "", "--api-keys", "per-device"]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    let first = key_of(&password_free(&server, &mut browser));
    let second = key_of(&password_free(&server, &mut browser));
    assert_ne!(first, second);
    for key in [&first, &second] {
        assert_eq!(users_me(&server, key).status, 200);
    }
    let keys = server.stdout(&["user", "keys", IAGO]);
    let by_passkey = keys
        .lines()
        .filter(|l| l.split_whitespace().any(|word| word == "passkey"))
        .count();
    assert_eq!(by_passkey, 2, "{keys}");
}

/// Issue 24: only the pages with a passkey button run the script; a code step of a user
/// without a passkey keeps the policy without script, in a realm that offers them.
#[test]
fn only_pages_with_a_passkey_button_allow_the_script() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    server.stdout(&["user", "totp", "enroll", IAGO]);
    let (app, login) = Browser::open(&server, LOGIN);
    assert!(
        login
            .header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
    let step = app.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    assert!(
        step.text().contains("name=\"otp_token\""),
        "{}",
        step.text()
    );
    assert!(!step.text().contains("data-passkey"));
    let csp = step.header("content-security-policy").unwrap();
    assert!(!csp.contains("script"), "{csp}");
}

/// Issue 24: a passkey verified by its authenticator is both factors, so it satisfies
/// `--require-2fa` by itself, where a password alone gets the code step.
#[test]
fn a_passkey_alone_satisfies_require_2fa() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let (app, _) = Browser::open(&server, &format!("{LOGIN}?mobile_flow_otp={ZERO_PAD}"));
    let step = app.post(
        LOGIN,
        &[
            ("username", IAGO),
            ("password", IAGO_PASSWORD),
            ("mobile_flow_otp", ZERO_PAD),
        ],
    );
    assert!(step.text().contains("Use a passkey"), "{}", step.text());
    let key = key_of(&password_free(&server, &mut browser));
    assert_eq!(users_me(&server, &key).status, 200);
}

/// A passkey refused in the code step reads as a refused passkey (web.md §9), not as a
/// wrong code from an authenticator app, which a user whose one factor is a passkey has
/// not; it still counts as a wrong code, and the step stays.
#[test]
fn a_passkey_refused_in_the_code_step_says_so() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    let (app, _) = Browser::open(&server, LOGIN);
    let step = app.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    let token = field(step.text(), "step_token");
    let options = app.options(LOGIN, &[("step_token", &token)]);
    let ceremony = options["ceremony"].as_str().unwrap();
    let refused = app.post(
        LOGIN,
        &[
            ("step_token", &token),
            ("ceremony", ceremony),
            ("credential", "{}"),
        ],
    );
    assert_eq!(refused.status, 200);
    let page = refused.text();
    assert!(page.contains("That passkey was not accepted."), "{page}");
    assert!(!page.contains("authenticator app shows now"), "{page}");
    assert!(page.contains("Use a passkey"), "{page}");
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("login_failure") && l.contains("WRONG_CODE")),
        "{audit}"
    );
}

/// Red team R2: a realm that stops offering passkeys does not lock out a user whose only
/// second factor is a passkey (web.md §9). The operator is told how many such users there
/// are; the passkey stays listed; the password alone signs in where 2FA is optional, and
/// under `--require-2fa` the step is a TOTP enrolment, not a code step with no way through.
#[test]
fn passkeys_turned_off_leave_nobody_at_a_step_they_cannot_pass() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    let off = server.cli(&["realm", "set", "", "--passkeys", "off"], "");
    assert_eq!(off.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&off.stderr),
        "zulip-auth: warning: 1 user(s) of realm '' have no second factor but a passkey: they \
         now sign in with their password alone; undo with: zulip-auth realm set '' --passkeys on\n"
    );
    // Again: nothing turned off, nothing to say.
    let again = server.cli(&["realm", "set", "", "--passkeys", "off"], "");
    assert_eq!(String::from_utf8_lossy(&again.stderr), "");

    // The password alone; the passkey is still listed on the account page and by the CLI.
    let (mut other, _) = Browser::open(&server, LOGIN);
    other.sign_in();
    let account = other.get(SETTINGS);
    assert!(
        account.text().contains("<b>Passkey</b>, added "),
        "{}",
        account.text()
    );
    assert!(
        account
            .text()
            .contains("Passkeys are turned off in this organization.")
    );
    let shown = server.stdout(&["user", "show", IAGO]);
    assert!(shown.contains("\n2fa        1 passkey\n"), "{shown}");

    // Under --require-2fa: a new TOTP key, whose first code finishes the sign-in.
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let (app, _) = Browser::open(&server, LOGIN);
    let step = app.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    let page = step.text();
    assert!(page.contains("Set up two-factor authentication"), "{page}");
    assert!(!page.contains("Use a passkey"), "{page}");
    let secret = crate::web::shown_secret(page);
    let token = field(page, "step_token");
    let code = secret.code_at(crate::web::now());
    let done = app.post(LOGIN, &[("step_token", &token), ("otp_token", &code)]);
    assert_eq!(done.status, 302, "{}", done.text());
    let shown = server.stdout(&["user", "show", IAGO]);
    assert!(shown.contains("\n2fa        TOTP, 1 passkey\n"), "{shown}");
}

/// Red team R2, the other way passkeys go: a server without `--external-url` offers none,
/// so a passkey (kept from a run with one) does not count in the sign-in either.
#[test]
fn without_an_external_url_a_passkey_asks_for_no_step() {
    let (server, _) = TestServer::with_iago(&[]);
    server.execute(
        "INSERT INTO passkey (user_id, credential_id, user_handle, credential, name, \
         created_at, counter) \
         SELECT id, $1, 'handle', '{}', 'Kept', 0, 0 FROM \"user\" \
         WHERE delivery_email = 'iago@example.com'",
        "kept-credential",
    );
    let (app, _) = Browser::open(&server, LOGIN);
    let done = app.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    assert_eq!(done.status, 302, "{}", done.text());
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    let step = app.post(LOGIN, &[("username", IAGO), ("password", IAGO_PASSWORD)]);
    assert!(
        step.text().contains("Set up two-factor authentication"),
        "{}",
        step.text()
    );
}

/// Red team R3: a password-free sign-in refused after the passkey checked out (its owner
/// deactivated) records no use: no `passkey_used` row, the last use as it was. Reactivated,
/// the owner signs in with it.
#[test]
fn a_refused_password_free_sign_in_leaves_the_passkey_unused() {
    let (server, _) = TestServer::with_iago(&["--external-url", ORIGIN]);
    let (mut browser, _) = Browser::open(&server, LOGIN);
    browser.sign_in();
    browser.add_passkey();
    server.ok(&["user", "deactivate", IAGO]);
    let refused = password_free(&server, &mut browser);
    assert_eq!(refused.status, 200, "{}", refused.text());
    assert!(refused.text().contains("class=\"error\""));
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(!audit.contains("passkey_used"), "{audit}");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("login_failure") && l.contains("USER_DEACTIVATED")),
        "{audit}"
    );
    let listed = server.stdout(&["user", "passkeys", IAGO]);
    assert!(listed.lines().nth(1).unwrap().ends_with(" -"), "{listed}");

    server.ok(&["user", "reactivate", IAGO]);
    assert_eq!(key_of(&password_free(&server, &mut browser)).len(), 32);
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert_eq!(audit.matches("passkey_used").count(), 1, "{audit}");
}
