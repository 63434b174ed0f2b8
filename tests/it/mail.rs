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
