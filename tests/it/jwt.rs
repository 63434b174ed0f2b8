//! `POST /api/v1/jwt/fetch_api_key` (wire.md §17): Zulip's check order and bytes, our
//! expiry rules, and bad tokens against the per-address limit.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::support::*;

const SECRET: &str = "the portal's shared secret";
const ROOT: &str = "jwt.example.test";

const DISABLED: &str = r#"{"result":"error","msg":"JWT authentication is not enabled for this organization","code":"BAD_REQUEST"}"#;
const NO_TOKEN: &str =
    r#"{"result":"error","msg":"No JSON web token passed in request","code":"BAD_REQUEST"}"#;
const BAD_TOKEN: &str = r#"{"result":"error","msg":"Bad JSON web token","code":"BAD_REQUEST"}"#;
const NO_EMAIL: &str = r#"{"result":"error","msg":"No email specified in JSON web token claims","code":"BAD_REQUEST"}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn signed(alg: Algorithm, secret: &str, claims: Value) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A good token's claims for `email`, with `extra` claims over them.
fn token(email: &str, extra: Value) -> String {
    let mut claims = json!({"email": email, "exp": now() + 60});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    signed(Algorithm::HS256, SECRET, claims)
}

fn post(server: &TestServer, host: &str, body: &str) -> HttpResponse {
    let request = format!(
        "POST /api/v1/jwt/fetch_api_key HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    server.raw(request.as_bytes())
}

/// Sets the realm's key to [`SECRET`], with `extra` flags.
fn configure(server: &TestServer, realm: &str, extra: &[&str]) {
    let file = server.dir.join("jwt.key");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let mut args = vec![
        "realm",
        "set",
        realm,
        "--jwt-key-file",
        file.to_str().unwrap(),
    ];
    args.extend(extra);
    server.ok(&args);
}

#[test]
fn every_row_in_order_then_the_key() {
    let (server, id) = TestServer::with_iago(&["--external-url", "http://jwt.example.test"]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    server.create_user("king@lear.org", "Lear-Pass-77", &["--realm", "lear"]);
    let body = |t: &str| format!("token={t}");
    let good = token(IAGO, json!({}));
    // A parameter that is not a boolean comes first, as Zulip's typed parameters do.
    post(&server, "nosuch.jwt.example.test", "include_profile=yes").assert_json(
        400,
        r#"{"result":"error","msg":"include_profile is not a boolean","code":"BAD_REQUEST"}"#,
    );
    // 1. No realm; 2. no key.
    post(&server, "nosuch.jwt.example.test", &body(&good)).assert_json(404, E4);
    post(&server, ROOT, &body(&good)).assert_json(400, DISABLED);
    configure(&server, "", &[]);
    // 3. No token.
    post(&server, ROOT, "").assert_json(400, NO_TOKEN);
    post(&server, ROOT, "token=").assert_json(400, NO_TOKEN);
    // 4. Bad: another key, an unlisted algorithm, expired, not yet valid, an audience, no
    // exp (ours), too far ahead (ours), garbage.
    let bad = [
        signed(
            Algorithm::HS256,
            "another secret",
            json!({"email": IAGO, "exp": now() + 60}),
        ),
        signed(
            Algorithm::HS512,
            SECRET,
            json!({"email": IAGO, "exp": now() + 60}),
        ),
        token(IAGO, json!({"exp": now() - 1})),
        token(IAGO, json!({"nbf": now() + 30})),
        token(IAGO, json!({"aud": "zulip"})),
        signed(Algorithm::HS256, SECRET, json!({"email": IAGO})),
        token(IAGO, json!({"exp": now() + 3600})),
        "not.a.token".to_owned(),
    ];
    for t in &bad {
        post(&server, ROOT, &body(t)).assert_json(400, BAD_TOKEN);
    }
    // 5. No email.
    let no_email = signed(Algorithm::HS256, SECRET, json!({"exp": now() + 60}));
    post(&server, ROOT, &body(&no_email)).assert_json(400, NO_EMAIL);
    // 6. As a login without a password.
    post(
        &server,
        ROOT,
        &body(&token("nobody@example.com", json!({}))),
    )
    .assert_json(401, E11);
    post(&server, ROOT, &body(&token("king@lear.org", json!({})))).assert_json(404, E4);
    // Success: no user_id, the stored spelling, the key a password login gets.
    let r = post(
        &server,
        ROOT,
        &format!(
            "{}&client=portal",
            body(&token("IAGO@example.com", json!({})))
        ),
    );
    let key = r.api_key();
    r.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}","ignored_parameters_unsupported":["client"]}}"#
        ),
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), key);
    // include_profile: Zulip's user object of a person.
    let r = post(
        &server,
        ROOT,
        &format!("{}&include_profile=true", body(&good)),
    );
    let joined = r.json()["user"]["date_joined"].as_str().unwrap().to_owned();
    r.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}","user":{{"user_id":{id},"delivery_email":"{IAGO}","email":"{IAGO}","full_name":"Iago","date_joined":"{joined}","is_active":true,"is_owner":false,"is_admin":true,"is_guest":false,"is_bot":false,"role":200,"timezone":"","avatar_url":"https://secure.gravatar.com/avatar/31790b6bbdee9a0585d3811a8bab010b?d=identicon&version=1","avatar_version":1}}}}"#
        ),
    );
    let r = post(
        &server,
        ROOT,
        &format!("{}&include_profile=false", body(&good)),
    );
    r.assert_json(
        200,
        &format!(r#"{{"result":"success","msg":"","api_key":"{key}","email":"{IAGO}"}}"#),
    );
    // --require-2fa does not apply: whoever holds the key vouches for the user.
    server.ok(&["realm", "set", "", "--require-2fa", "on"]);
    assert_eq!(post(&server, ROOT, &body(&good)).status, 200);
    // Without exp, as Zulip, once the realm says so.
    let no_exp = signed(Algorithm::HS256, SECRET, json!({"email": IAGO}));
    server.ok(&["realm", "set", "", "--jwt-require-exp", "off"]);
    assert_eq!(post(&server, ROOT, &body(&no_exp)).status, 200);
    // A longer lifetime.
    let hour = token(IAGO, json!({"exp": now() + 3600}));
    post(&server, ROOT, &body(&hour)).assert_json(400, BAD_TOKEN);
    server.ok(&["realm", "set", "", "--jwt-max-lifetime", "4000"]);
    assert_eq!(post(&server, ROOT, &body(&hour)).status, 200);
    // Deactivated user, then realm.
    server.ok(&["user", "deactivate", IAGO]);
    post(&server, ROOT, &body(&good)).assert_json(401, E7);
    server.ok(&["realm", "deactivate", ""]);
    post(&server, ROOT, &body(&good)).assert_json(401, E8);
    // Off again.
    server.ok(&["realm", "reactivate", ""]);
    server.ok(&["realm", "set", "", "--jwt-key-file", ""]);
    post(&server, ROOT, &body(&good)).assert_json(400, DISABLED);
    let r = server.send("GET", "/api/v1/jwt/fetch_api_key", &[], b"");
    assert_eq!((r.status, r.text()), (405, POST_ONLY_405));
}

#[test]
fn bad_tokens_count_against_the_address() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "3/600s"]);
    configure(&server, "", &[]);
    let host = server.addr.to_string();
    let forged = signed(
        Algorithm::HS256,
        "a guess",
        json!({"email": IAGO, "exp": now() + 60}),
    );
    for _ in 0..3 {
        post(&server, &host, &format!("token={forged}")).assert_json(400, BAD_TOKEN);
    }
    // The fourth, even a good one, is refused for this address, and so is a password.
    let r = post(&server, &host, &format!("token={}", token(IAGO, json!({}))));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    server.log_containing("reason=BAD_TOKEN");
}

#[test]
fn good_tokens_do_not_count() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "2/600s"]);
    configure(&server, "", &[]);
    let host = server.addr.to_string();
    for _ in 0..4 {
        let r = post(&server, &host, &format!("token={}", token(IAGO, json!({}))));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Audited as a login of its own kind (the first also mints the key).
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert_eq!(audit.matches("login_success").count(), 4, "{audit}");
    assert_eq!(audit.matches("JWT login").count(), 5, "{audit}");
}

#[test]
fn realm_set_refuses_keys_that_cannot_serve() {
    let (server, _) = TestServer::with_iago(&[]);
    let file = server.dir.join("jwt.key");
    std::fs::write(&file, "secret\n").unwrap();
    let path = file.to_str().unwrap();
    let fail = |args: &[&str], needle: &str| {
        let out = server.cli(args, "");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            !stderr.contains("secret\n") && !stderr.contains(": secret"),
            "{stderr}"
        );
    };
    for (algorithms, refusal) in [
        ("RS256", "no PEM RSA public key"),
        ("HS256,none", "unknown JWT algorithm \"none\""),
    ] {
        let args = [
            "realm",
            "set",
            "",
            "--jwt-key-file",
            path,
            "--jwt-algorithms",
        ];
        fail(&[&args[..], &[algorithms]].concat(), refusal);
    }
    fail(
        &["realm", "set", "", "--jwt-key-file", "/nonexistent/jwt.key"],
        "cannot read /nonexistent/jwt.key",
    );
    // A usage error, as clap answers them.
    let zero = server.cli(&["realm", "set", "", "--jwt-max-lifetime", "0"], "");
    assert_eq!(zero.status.code(), Some(2));
    server.ok(&["realm", "set", "", "--jwt-key-file", path]);
    // The key stays; algorithms it cannot serve are refused later too.
    fail(
        &["realm", "set", "", "--jwt-algorithms", "ES256"],
        "no PEM EC public key",
    );
    server.ok(&["realm", "set", "", "--jwt-algorithms", " HS256 ,HS512"]);
}
