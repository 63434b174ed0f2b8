//! Reset mail through a real SMTP server (aiosmtpd on loopback, tests/mail/run): what the
//! message says, that its link works, and that only real, active accounts get one.
//! Ignored by a plain `cargo test`, which has no SMTP server; tests/mail/run runs them.

use crate::mailbox::{self, Mailbox};
use crate::reset::{CSRF, NEW_PASSWORD, set_new_password, submit};
use crate::support::{E11, IAGO, IAGO_PASSWORD, TestServer};

fn server_mailing_to(mailbox: &Mailbox) -> TestServer {
    let url = mailbox.url();
    let (server, _) = TestServer::with_iago(&[
        "--smtp-url",
        &url,
        "--mail-from",
        "Zulip <noreply@example.com>",
        "--external-url",
        "http://zulip.example.com",
    ]);
    server
}

/// A reset request on the realm of `host`.
fn submit_to(server: &TestServer, host: &str, email: &str) -> crate::support::HttpResponse {
    let cookie = format!("csrftoken={CSRF}");
    server.post_form_with(
        "/accounts/password/reset/",
        &[("csrfmiddlewaretoken", CSRF), ("email", email)],
        &[("Cookie", &cookie), ("Host", host)],
    )
}

fn request_reset(server: &TestServer, email: &str) {
    let r = submit(server, "/accounts/password/reset/", &[("email", email)], "");
    assert_eq!(r.status, 302);
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn the_message_names_the_request_and_its_link_works() {
    let mailbox = Mailbox::start();
    let server = server_mailing_to(&mailbox);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    request_reset(&server, IAGO);
    let message = mailbox::unfolded(&mailbox.wait_for(1)[0]);
    for needle in [
        "X-Envelope-To: iago@example.com",
        "Subject: Password reset request for Zulip",
        "From: Zulip <noreply@example.com>",
        "To: iago@example.com",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "for the Zulip account iago@example.com on http://zulip.example.com",
        "The request came from 127.0.0.1 at ",
        "http://zulip.example.com/accounts/password/reset/",
        "within 1 hour",
        "ignore this email",
    ] {
        assert!(message.contains(needle), "{needle:?} not in\n{message}");
    }
    let link = format!(
        "/accounts/password/reset/{}/",
        mailbox::reset_token(&message)
    );
    assert_eq!(
        set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD).status,
        302
    );
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(IAGO, NEW_PASSWORD).api_key(), key);
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn only_active_accounts_get_mail() {
    let mailbox = Mailbox::start();
    let server = server_mailing_to(&mailbox);
    server.create_user("gone@example.com", IAGO_PASSWORD, &[]);
    server.ok(&["user", "deactivate", "gone@example.com"]);
    request_reset(&server, "nobody@example.com");
    request_reset(&server, "gone@example.com");
    request_reset(&server, IAGO);
    // The desk takes requests in order: once iago's message is in, the others were handled.
    mailbox.wait_for(1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let messages = mailbox.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].starts_with("X-Envelope-To: iago@example.com\r\n"));
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn a_newer_message_kills_the_older_link() {
    let mailbox = Mailbox::start();
    let server = server_mailing_to(&mailbox);
    request_reset(&server, IAGO);
    request_reset(&server, IAGO);
    let messages = mailbox.wait_for(2);
    let link = |m: &str| format!("/accounts/password/reset/{}/", mailbox::reset_token(m));
    let (older, newer) = (link(&messages[0]), link(&messages[1]));
    assert_ne!(older, newer);
    assert!(
        server
            .get(&older)
            .text()
            .contains("invalid or has already been used")
    );
    assert_eq!(
        set_new_password(&server, &newer, NEW_PASSWORD, NEW_PASSWORD).status,
        302
    );
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn smtp_without_tls_none_requires_starttls() {
    // This relay offers no STARTTLS: smtp:// must refuse to send in clear text.
    let mailbox = Mailbox::start();
    let url = format!("smtp://127.0.0.1:{}", mailbox.port);
    let (server, _) = TestServer::with_iago(&[
        "--smtp-url",
        &url,
        "--mail-from",
        "noreply@example.com",
        "--external-url",
        "http://zulip.example.com",
    ]);
    request_reset(&server, IAGO);
    let log = server.log_containing("password reset mail to user 1 not sent");
    assert!(log.contains("STARTTLS is not supported"), "{log}");
    assert!(mailbox.messages().is_empty());
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn realms_without_local_passwords_or_deactivated_send_nothing() {
    let mailbox = Mailbox::start();
    let server = server_mailing_to(&mailbox);
    for (realm, setting) in [
        ("lear", Some("--password-auth")),
        ("elsinore", Some("--email-auth")),
        ("verona", None),
    ] {
        let email = format!("{realm}@example.com");
        server.ok(&["realm", "create", realm, "--name", realm]);
        server.create_user(&email, IAGO_PASSWORD, &["--realm", realm]);
        match setting {
            Some(setting) => server.ok(&["realm", "set", realm, setting, "off"]),
            None => server.ok(&["realm", "deactivate", realm]),
        }
        let r = submit_to(&server, &format!("{realm}.zulip.example.com"), &email);
        assert_eq!(
            (r.status, r.header("location")),
            (302, Some("/accounts/password/reset/done/"))
        );
    }
    request_reset(&server, IAGO);
    mailbox.wait_for(1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let messages = mailbox.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].starts_with("X-Envelope-To: iago@example.com\r\n"));
}

/// A server mailing to `mailbox`, with `--dev`, whose iago joined long ago (no mail goes to
/// an account younger than 60 s).
fn server_with_old_iago(mailbox: &Mailbox) -> TestServer {
    let (server, _) = TestServer::with_iago(&[
        "--smtp-url",
        &mailbox.url(),
        "--mail-from",
        "Zulip <noreply@example.com>",
        "--external-url",
        "http://zulip.example.com",
        "--dev",
    ]);
    server.execute(
        "UPDATE \"user\" SET date_joined = '2020-01-01T00:00:00+00:00' WHERE delivery_email = $1",
        IAGO,
    );
    server
}

fn login_from(server: &TestServer, user_agent: &str) {
    let r = server.post_form_with(
        "/api/v1/fetch_api_key",
        &[("username", IAGO), ("password", IAGO_PASSWORD)],
        &[("User-Agent", user_agent)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The messages once `count` arrived, and a moment later still `count`: the desk sends in
/// order, so a later mail arriving means the earlier logins were all decided.
#[track_caller]
fn exactly(mailbox: &Mailbox, count: usize) -> Vec<String> {
    mailbox.wait_for(count);
    std::thread::sleep(std::time::Duration::from_millis(400));
    let messages = mailbox.messages();
    assert_eq!(messages.len(), count, "{messages:#?}");
    messages.iter().map(|m| mailbox::unfolded(m)).collect()
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn every_new_login_mails_its_owner_once_per_device() {
    let mailbox = Mailbox::start();
    let server = server_with_old_iago(&mailbox);
    // dev_fetch_api_key is no login to mail about.
    let dev = server.post_form("/api/v1/dev_fetch_api_key", &[("username", IAGO)]);
    assert_eq!(dev.status, 200);
    login_from(&server, "ZulipFlutter/30.0.256 (Android 14)");
    // The same device again within 10 minutes folds into the first mail.
    login_from(&server, "ZulipFlutter/30.0.256 (Android 14)");
    login_from(&server, "ZulipTerminal/0.7.0");
    let messages = exactly(&mailbox, 2);
    for needle in [
        "To: iago@example.com",
        "Subject: A new login to your Zulip account in Zulip",
        "Organization: Zulip",
        "Account: iago@example.com",
        "Method: password",
        "Device: ZulipFlutter on Android",
        "Address: 127.0.0.1",
        " UTC",
        "text/html",
    ] {
        assert!(
            messages[0].contains(needle),
            "{needle:?} not in\n{}",
            messages[0]
        );
    }
    assert!(
        messages[1].contains("Device: ZulipTerminal"),
        "{}",
        messages[1]
    );
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn no_login_mail_when_turned_off_or_for_a_new_account() {
    let mailbox = Mailbox::start();
    let server = server_with_old_iago(&mailbox);
    server.ok(&["realm", "set", "", "--login-mail", "off"]);
    login_from(&server, "curl/8.5.0");
    // hamlet was made just now.
    server.create_user("hamlet@example.com", IAGO_PASSWORD, &[]);
    server.ok(&["realm", "set", "", "--login-mail", "on"]);
    assert_eq!(
        server.login("hamlet@example.com", IAGO_PASSWORD).status,
        200
    );
    login_from(&server, "ZulipTerminal/0.7.0");
    let messages = exactly(&mailbox, 1);
    assert!(
        messages[0].contains("Device: ZulipTerminal"),
        "{}",
        messages[0]
    );
    // The user's own switch, on the account page.
    let cookie = format!("csrftoken={CSRF}");
    let signed_in = server.post_form_with(
        "/accounts/login/",
        &[
            ("csrfmiddlewaretoken", CSRF),
            ("username", IAGO),
            ("password", IAGO_PASSWORD),
        ],
        &[("Cookie", &cookie), ("User-Agent", "Firefox-test")],
    );
    let session = signed_in
        .header("set-cookie")
        .and_then(|c| c.strip_prefix("sessionid="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let messages = exactly(&mailbox, 2);
    assert!(messages[1].contains("Method: web"), "{}", messages[1]);
    let cookie = format!("csrftoken={CSRF}; sessionid={session}");
    let page = server.send("GET", "/accounts/settings/", &[("Cookie", &cookie)], b"");
    assert!(page.text().contains("Stop these mails"), "{}", page.text());
    let off = server.post_form_with(
        "/accounts/settings/login-mail",
        &[("csrfmiddlewaretoken", CSRF), ("login_mail", "off")],
        &[("Cookie", &cookie)],
    );
    assert!(
        off.text().contains("no mail after new logins"),
        "{}",
        off.text()
    );
    login_from(&server, "ZulipMobile/27.0 (iOS 17)");
    exactly(&mailbox, 2);
}

#[test]
#[ignore = "needs aiosmtpd: run tests/mail/run"]
fn a_used_recovery_code_is_mailed() {
    let mailbox = Mailbox::start();
    let server = server_mailing_to(&mailbox);
    let out = server.stdout(&["user", "totp", "enroll", IAGO]);
    let code = out
        .lines()
        .find(|l| l.len() == 9 && l.as_bytes()[4] == b'-')
        .unwrap()
        .to_owned();
    let cookie = format!("csrftoken={CSRF}");
    let post = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrfmiddlewaretoken", CSRF)];
        all.extend_from_slice(fields);
        server.post_form_with("/accounts/login/", &all, &[("Cookie", &cookie)])
    };
    let step = post(&[("username", IAGO), ("password", IAGO_PASSWORD)]);
    let token = crate::web::field(step.text(), "step_token");
    let done = post(&[("step_token", &token), ("otp_token", &code)]);
    assert_eq!(done.status, 302, "{}", done.text());
    // iago was made just now: no login mail, only this one.
    let messages = exactly(&mailbox, 1);
    for needle in [
        "Subject: A recovery code was used for your Zulip account in Zulip",
        "9 of your codes are left",
        "Method: web",
    ] {
        assert!(
            messages[0].contains(needle),
            "{needle:?} not in\n{}",
            messages[0]
        );
    }
}
