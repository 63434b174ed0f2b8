//! Accounts: migration from Zulip with real Django hashes, rehash on login and the policy,
//! the key endpoints (wire.md §9), the admin CLI and the audit trail.

use std::path::PathBuf;

use base64ct::{Base64, Encoding};

use crate::support::*;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/zulip-export.jsonl")
}

/// `(email, plaintext, api_key)` of each fixture line.
fn fixtures() -> Vec<(String, Option<String>, Option<String>)> {
    std::fs::read_to_string(fixture_path())
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = |k: &str| v[k].as_str().map(str::to_owned);
            (text("email").unwrap(), text("_password"), text("api_key"))
        })
        .collect()
}

fn show(server: &TestServer, email: &str) -> String {
    server.stdout(&["user", "show", email])
}

const RESET_REQUIRED: &str = r#"{"result":"error","msg":"Your password has been disabled and needs to be reset","code":"PASSWORD_RESET_REQUIRED"}"#;

#[test]
fn imported_zulip_users_log_in_with_old_passwords_and_keys() {
    let server = TestServer::start(&["--address-rate", "off"]);
    let out = server.stdout(&["user", "import", fixture_path().to_str().unwrap()]);
    assert!(
        out.starts_with("imported 11 users, 4 without a usable password\n"),
        "{out}"
    );
    for email in ["md5@", "sha1@", "unusable@", "nopassword@"] {
        assert!(
            out.contains(&format!("no usable password: {email}example.com")),
            "{out}"
        );
    }
    for (email, password, api_key) in fixtures() {
        let r = server.login(&email, password.as_deref().unwrap_or("anything"));
        match email.as_str() {
            "weak-pbkdf2@example.com" => {
                r.assert_json(401, RESET_REQUIRED);
                // Unchanged, and the bucket was not cleared.
                assert!(show(&server, &email).contains("pbkdf2_sha256 260000 iterations"));
                assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
            }
            "deactivated@example.com" => r.assert_json(401, E7),
            "md5@example.com"
            | "sha1@example.com"
            | "unusable@example.com"
            | "nopassword@example.com" => r.assert_json(401, E11),
            _ => {
                assert_eq!(r.status, 200, "{email}: {}", r.text());
                if let Some(key) = api_key {
                    assert_eq!(r.api_key(), key, "{email} keeps its Zulip key");
                }
                // Re-hashed with the configured parameters, and still the same password.
                let shown = show(&server, &email);
                assert!(
                    shown.contains("argon2id v=19 m=256,t=1,p=1 (32-byte output)"),
                    "{email}: {shown}"
                );
                assert_eq!(
                    server.login(&email, password.as_deref().unwrap()).status,
                    200
                );
            }
        }
    }
}

#[test]
fn import_is_all_or_nothing_and_names_the_line() {
    let server = TestServer::start(&[]);
    server.create_user(IAGO, IAGO_PASSWORD, &[]);
    let taken_key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let good = r#"{"email":"a@example.com","password":null,"is_active":true}"#;
    let cases = [
        (format!("{good}\n{{not json\n"), "line 2: invalid JSON"),
        (
            format!("{good}\n{{\"email\":\"nope\"}}\n"),
            "line 2: invalid email",
        ),
        (
            format!("{good}\n{{\"email\":\"A@example.com\"}}\n"),
            "line 2: \"A@example.com\" appears twice",
        ),
        (
            format!("{good}\n{{\"email\":\"{IAGO}\"}}\n"),
            "line 2: \"iago@example.com\" already exists",
        ),
        (
            format!("{good}\n{{\"email\":\"b@example.com\",\"api_key\":\"short\"}}\n"),
            "line 2: malformed api_key",
        ),
        (
            format!("{good}\n{{\"email\":\"b@example.com\",\"api_key\":\"{taken_key}\"}}\n"),
            "line 2: the api_key",
        ),
        (
            format!("{good}\n{{\"email\":\"b@example.com\",\"role\":999}}\n"),
            "line 2: unknown role",
        ),
    ];
    let file = server.dir.join("bad.jsonl");
    for (content, expected) in cases {
        std::fs::write(&file, &content).unwrap();
        let out = server.cli(&["user", "import", file.to_str().unwrap()], "");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // Nothing of any aborted import remains.
    let listed = server.stdout(&["user", "list", "--json"]);
    let users: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(users.len(), 1, "{listed}");
}

#[test]
fn login_rehashes_when_parameters_change() {
    let mut server = TestServer::with_iago(&[]).0;
    assert!(show(&server, IAGO).contains("m=256,t=1,p=1"));
    server.restart_with(&["--argon2-m", "512"]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    assert!(show(&server, IAGO).contains("m=512,t=1,p=1"));
}

#[test]
fn the_policy_applies_to_operator_passwords() {
    let server = TestServer::start(&[]);
    for (weak, why) in [
        ("abcd1234", "too easy to guess"),
        ("Sh0rt!", "shorter than 8"),
        (&*"x7Q!".repeat(26), "longer than 100"),
    ] {
        let out = server.cli(
            &["user", "create", "a@example.com", "--password-stdin"],
            &format!("{weak}\n"),
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            !out.status.success() && stderr.contains(why),
            "{weak}: {stderr}"
        );
    }
}

fn basic(email: &str, key: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{email}:{key}").as_bytes())
    )
}

const UNAUTHORIZED: &str = r#"{"result":"error","msg":"MSG","code":"UNAUTHORIZED"}"#;

#[track_caller]
fn assert_unauthorized(r: &HttpResponse, msg: &str) {
    r.assert_json(401, &UNAUTHORIZED.replace("MSG", msg));
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"zulip\""));
}

#[test]
fn users_me_with_basic_auth() {
    let (server, id) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let me = |auth: &str| server.send("GET", "/api/v1/users/me", &[("Authorization", auth)], b"");
    let r = me(&basic("IAGO@example.com", &key));
    let joined = r.json()["date_joined"].as_str().unwrap().to_owned();
    assert!(joined.ends_with("+00:00") && joined.len() == 25, "{joined}");
    r.assert_json(
        200,
        &format!(
            r#"{{"result":"success","msg":"","email":"{IAGO}","user_id":{id},"is_admin":true,"is_owner":false,"is_guest":false,"role":200,"is_bot":false,"full_name":"Iago","is_active":true,"date_joined":"{joined}","delivery_email":"{IAGO}","max_message_id":-1}}"#
        ),
    );
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=0, no-cache, no-store, must-revalidate, private")
    );
    // Now, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as Django writes it.
    let expires = r.header("expires").unwrap();
    let at = httpdate::parse_http_date(expires).unwrap();
    let off = at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_else(|e| e.duration());
    assert!(
        off.as_secs() < 60 && httpdate::fmt_http_date(at) == expires,
        "{expires}"
    );
    let head = server.send(
        "HEAD",
        "/api/v1/users/me",
        &[("Authorization", &basic(IAGO, &key))],
        b"",
    );
    assert_eq!((head.status, head.body.len()), (200, 0));

    // wire.md §9.2, step by step.
    let none = server.get("/api/v1/users/me");
    assert_unauthorized(
        &none,
        "Not logged in: API authentication or user session required",
    );
    assert_unauthorized(
        &me(""),
        "Not logged in: API authentication or user session required",
    );
    assert_unauthorized(&me("Basic"), "Invalid authorization header for basic auth");
    assert_unauthorized(
        &me("Digest a b"),
        "Invalid authorization header for basic auth",
    );
    let digest = me("Digest abc");
    digest.assert_json(400, r#"{"result":"error","msg":"This endpoint requires HTTP basic authentication.","code":"BAD_REQUEST"}"#);
    assert_eq!(digest.header("www-authenticate"), None);
    assert_unauthorized(
        &me("Basic !!!"),
        "Invalid authorization header for basic auth",
    );
    assert_unauthorized(&me(&basic(IAGO, "TooShort")), "Malformed API key");
    assert_unauthorized(&me(&basic("other@example.com", &key)), "Invalid API key");
    assert_unauthorized(&me(&basic(IAGO, &"A".repeat(32))), "Invalid API key");
    server.ok(&["user", "deactivate", IAGO]);
    assert_unauthorized(&me(&basic(IAGO, &key)), "Account is deactivated");
    server.ok(&["realm", "deactivate", ""]);
    assert_unauthorized(
        &me(&basic(IAGO, &key)),
        "This organization has been deactivated",
    );
}

#[test]
fn users_me_methods_and_subdomains() {
    let server = TestServer::start(&["--external-url", "http://chat.example.test"]);
    server.create_user(IAGO, IAGO_PASSWORD, &[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let r = server.send("POST", "/api/v1/users/me", &[], b"");
    assert_eq!(
        (r.status, r.text()),
        (
            405,
            r#"{"result":"error","msg":"Method Not Allowed","allowed_methods":["GET","HEAD"]}"#
        )
    );
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let options = server.send("OPTIONS", "/api/v1/users/me", &[], b"");
    assert_eq!(
        (options.status, options.body.len(), options.header("allow")),
        (204, 0, Some("GET, HEAD"))
    );
    let options = server.send("OPTIONS", "/api/v1/users/me/api_key/regenerate", &[], b"");
    assert_eq!(
        (options.status, options.header("allow")),
        (204, Some("POST"))
    );
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let request = format!(
        "GET /api/v1/users/me HTTP/1.1\r\nHost: lear.chat.example.test\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic(IAGO, &key)
    );
    assert_unauthorized(
        &server.raw(request.as_bytes()),
        "Account is not associated with this subdomain",
    );
}

#[test]
fn regenerate_replaces_the_key_at_once() {
    let (server, _) = TestServer::with_iago(&[]);
    let old = server.login(IAGO, IAGO_PASSWORD).api_key();
    let r = server.send(
        "POST",
        "/api/v1/users/me/api_key/regenerate?x=1",
        &[("Authorization", &basic(IAGO, &old))],
        b"",
    );
    let new = r.api_key();
    assert_ne!(new, old);
    r.assert_json(200, &format!(r#"{{"result":"success","msg":"","api_key":"{new}","ignored_parameters_unsupported":["x"]}}"#));
    assert_unauthorized(
        &server.send(
            "GET",
            "/api/v1/users/me",
            &[("Authorization", &basic(IAGO, &old))],
            b"",
        ),
        "Invalid API key",
    );
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), new);
    let get = server.send(
        "GET",
        "/api/v1/users/me/api_key/regenerate",
        &[("Authorization", &basic(IAGO, &new))],
        b"",
    );
    assert_eq!((get.status, get.text()), (405, POST_ONLY_405));
}

#[test]
fn rotate_key_and_set_password_from_the_cli() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "off"]);
    let old = server.login(IAGO, IAGO_PASSWORD).api_key();
    let rotated = server
        .stdout(&["user", "rotate-key", IAGO])
        .trim()
        .to_owned();
    assert!(rotated.len() == 32 && rotated != old);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).api_key(), rotated);

    // Fill the bucket, then a new password clears it (as upstream).
    for _ in 0..5 {
        server.login(IAGO, "wrong");
    }
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "New-Horse-Battery-7\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.login(IAGO, "New-Horse-Battery-7").status, 200);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 401);
    // Without a terminal and without --password-stdin it refuses rather than hangs.
    let out = server.cli(&["user", "set-password", IAGO], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "password\n",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("too easy to guess"));
}

#[test]
fn listings() {
    let (server, id) = TestServer::with_iago(&[]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let users: serde_json::Value =
        serde_json::from_str(&server.stdout(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["id"], id);
    assert_eq!(users[0]["email"], IAGO);
    assert_eq!(users[0]["role"], "admin");
    assert_eq!(users[0]["has_api_key"], false);
    let table = server.stdout(&["user", "list"]);
    assert!(
        table.starts_with("ID  EMAIL") && table.contains(IAGO),
        "{table}"
    );
    let realms: serde_json::Value =
        serde_json::from_str(&server.stdout(&["realm", "list", "--json"])).unwrap();
    assert_eq!(realms[0]["subdomain"], "");
    assert_eq!(realms[0]["users"], 1);
    assert_eq!(realms[1]["subdomain"], "lear");
    let shown = show(&server, IAGO);
    assert!(
        shown.contains("role       admin") && shown.contains("api key    none yet"),
        "{shown}"
    );
}

#[test]
fn backup_while_serving_and_check() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    let dest = server.dir.join("backup.sqlite3");
    // Logins keep writing while the backup runs.
    let writer = {
        let addr = server.addr;
        std::thread::spawn(move || {
            for _ in 0..20 {
                let body = format!("username={IAGO}&password={IAGO_PASSWORD}");
                let request = format!(
                    "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
                std::io::Read::read_to_end(&mut stream, &mut Vec::new()).unwrap();
            }
        })
    };
    let out = server.stdout(&["db", "backup", dest.to_str().unwrap()]);
    writer.join().unwrap();
    assert!(out.starts_with("backed up to "), "{out}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The copy is a working database with the key in it.
    let check = run_cli(&dest, &["db", "check"], "");
    assert_eq!(
        String::from_utf8(check.stdout).unwrap(),
        "integrity: ok\nschema version: 13\n"
    );
    let listed = run_cli(&dest, &["user", "show", IAGO], "");
    assert!(
        String::from_utf8(listed.stdout)
            .unwrap()
            .contains("api key    minted")
    );
    // A second backup never overwrites the first.
    let again = server.cli(&["db", "backup", dest.to_str().unwrap()], "");
    assert!(!again.status.success());
    assert!(key.len() == 32);
}

#[test]
fn audit_trail_records_without_secrets() {
    let (server, _) = TestServer::with_iago(&["--address-rate", "off"]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.login(IAGO, "Wrong-Secret-1");
    server.login("ghost@example.com", "Wrong-Secret-2");
    server.post_form_with(
        "/api/v1/fetch_api_key",
        &[("username", IAGO), ("password", "Wrong-Secret-3")],
        &[("User-Agent", "ZulipMobile/27.0")],
    );
    server.send(
        "POST",
        "/api/v1/users/me/api_key/regenerate",
        &[("Authorization", &basic(IAGO, &key))],
        b"",
    );
    server.ok(&["user", "deactivate", IAGO]);
    server.ok(&[
        "realm",
        "set",
        "",
        "--name",
        "Renamed",
        "--password-auth",
        "off",
    ]);
    let lines: Vec<serde_json::Value> = server
        .stdout(&["audit", "--json", "--since", "1h"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<(&str, Option<&str>)> = lines
        .iter()
        .map(|l| (l["event"].as_str().unwrap(), l["reason"].as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("user_created", None),
            ("login_success", None),
            ("key_minted", None),
            ("login_failure", Some("WRONG_PASSWORD")),
            ("login_failure", Some("UNKNOWN_USER")),
            ("login_failure", Some("WRONG_PASSWORD")),
            ("key_rotated", None),
            ("user_deactivated", None),
            ("realm_changed", None),
        ]
    );
    assert_eq!(lines[1]["email"], IAGO);
    assert_eq!(lines[1]["remote_addr"], "127.0.0.1");
    assert_eq!(lines[5]["user_agent"], "ZulipMobile/27.0");
    assert_eq!(
        lines[8]["detail"],
        "by operator: name \"Renamed\", password auth off"
    );
    let mine = server.stdout(&["audit", "--user", IAGO]);
    assert!(
        !mine.contains("UNKNOWN_USER") && mine.contains("key_rotated"),
        "{mine}"
    );
    let everything = server.stdout(&["audit"]) + &server.stdout(&["audit", "--json"]);
    for secret in [IAGO_PASSWORD, "Wrong-Secret", key.as_str()] {
        assert!(!everything.contains(secret), "{secret} in the audit trail");
    }
}

/// Runs `zulip-auth --db DB ARGS` on a pseudo-terminal made by `script`, typing `answers`:
/// (success, what the terminal showed).
fn on_a_terminal(server: &TestServer, args: &str, answers: &str) -> (bool, String) {
    let command = format!("{BIN} --db {} {args}", server.db.display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("ZULIP_AUTH_CONFIG", "none")
        .env("ZULIP_AUTH_ARGON2_M", "256")
        .env("ZULIP_AUTH_ARGON2_T", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), answers.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// On a terminal, set-password prompts twice.
#[test]
fn set_password_prompts_twice_on_a_terminal() {
    let (server, _) = TestServer::with_iago(&[]);
    let set_password = format!("user set-password {IAGO}");
    let (ok, screen) = on_a_terminal(
        &server,
        &set_password,
        "Different-Pass-99\nOther-Pass-Word-88\n",
    );
    assert!(
        !ok && screen.contains("the two passwords differ"),
        "{screen}"
    );
    let (ok, screen) = on_a_terminal(
        &server,
        &set_password,
        "Other-Pass-Word-88\nOther-Pass-Word-88\n",
    );
    assert!(
        ok && screen.contains("New password: ") && screen.contains("Repeat it: "),
        "{screen}"
    );
    assert_eq!(server.login(IAGO, "Other-Pass-Word-88").status, 200);
}

/// `user create` prompts too, without echo; without a terminal it asks for --password-stdin.
#[test]
fn user_create_prompts_twice_on_a_terminal() {
    let server = TestServer::start(&[]);
    let create = format!("user create {IAGO} --full-name Iago");
    let (ok, screen) = on_a_terminal(&server, &create, "Different-Pass-99\nOther-Pass-Word-88\n");
    assert!(
        !ok && screen.contains("the two passwords differ"),
        "{screen}"
    );
    let (ok, screen) = on_a_terminal(&server, &create, "Other-Pass-Word-88\nOther-Pass-Word-88\n");
    assert!(ok && screen.contains("Repeat it: "), "{screen}");
    assert_eq!(server.login(IAGO, "Other-Pass-Word-88").status, 200);
    let out = server.cli(&["user", "create", "b@example.com"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
}

/// `--no-password`: an account that no password opens until one is set.
#[test]
fn user_create_without_a_password() {
    let server = TestServer::start(&[]);
    server.ok(&["user", "create", IAGO, "--no-password"]);
    for password in ["", "Correct-Horse-9", "!"] {
        server.login(IAGO, password).assert_json(401, E11);
    }
    assert!(
        show(&server, IAGO).contains("password   none"),
        "{}",
        show(&server, IAGO)
    );
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        &format!("{IAGO_PASSWORD}\n"),
    );
    assert!(out.status.success());
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
}

/// Names stored before input was checked (or by an older version) reach the terminal escaped:
/// no forged rows, no escape sequences. JSON escapes them itself.
#[test]
fn control_characters_are_escaped_on_output() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let forged = "Iago\n99  evil@example.com\u{1b}[2J\r";
    for sql in [
        "UPDATE \"user\" SET full_name = $1",
        "UPDATE realm SET name = $1 WHERE subdomain = 'lear'",
        "UPDATE audit_log SET detail = $1",
    ] {
        server.execute(sql, forged);
    }
    let escaped = "Iago\\n99  evil@example.com\\u{1b}[2J\\r";
    for args in [
        &["user", "list"][..],
        &["user", "show", IAGO],
        &["realm", "list"],
        &["audit"],
    ] {
        let out = server.stdout(args);
        assert!(out.contains(escaped), "{args:?}: {out}");
        assert!(
            !out.contains('\u{1b}') && !out.contains('\r') && !out.contains("\n99"),
            "{args:?}: {out:?}"
        );
    }
    let users: serde_json::Value =
        serde_json::from_str(&server.stdout(&["user", "list", "--json"])).unwrap();
    assert_eq!(users[0]["full_name"], forged);
}

/// Imported names are refused with control characters in them, as the CLI's are.
#[test]
fn import_refuses_control_characters_in_names() {
    let server = TestServer::start(&[]);
    let file = server.dir.join("names.jsonl");
    std::fs::write(
        &file,
        "{\"email\":\"a@example.com\"}\n{\"email\":\"b@example.com\",\"full_name\":\"B\\u001b[2J\"}\n",
    )
    .unwrap();
    let out = server.cli(&["user", "import", file.to_str().unwrap()], "");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success()
            && stderr.contains("line 2: the full name")
            && stderr.contains("control character"),
        "{stderr}"
    );
    assert!(!server.stdout(&["user", "list"]).contains("a@example.com"));
}

#[test]
fn audit_rows_past_their_retention_are_pruned() {
    let (mut server, _) = TestServer::with_iago(&[]);
    assert!(server.stdout(&["audit"]).contains("user_created"));
    // The pruner runs at start, then once a minute, off the request path.
    server.restart_with(&["--audit-retention-days", "0"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.stdout(&["audit", "--json"]).is_empty() {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Issue 25: the pruner runs at the hashing threads' priority, under that of the threads
/// answering the cheap requests: a pruning takes no core from a login's hashing. (Tests run
/// under `nice 10` or more cannot tell the difference.)
#[test]
fn the_pruner_runs_at_the_hashing_threads_priority() {
    let server = TestServer::start(&[]);
    // A thread's name is in /proc/PID/task/TID/comm, its nice value in the 19th field of
    // its stat (the 17th after the name in parentheses); None while it has not started.
    let nice = |name: &str| -> Option<i64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap();
        tasks.map(|task| task.unwrap().path()).find_map(|task| {
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            let stat = std::fs::read_to_string(task.join("stat")).ok()?;
            let after_name = stat.rsplit_once(')')?.1;
            (comm.trim() == name).then(|| after_name.split_whitespace().nth(16)?.parse().ok())?
        })
    };
    // Both start after the server says it listens, and lower their priority first thing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while nice("pruner").is_none_or(|n| n < 10) || nice("hashing-0").is_none_or(|n| n < 10) {
        assert!(
            std::time::Instant::now() < deadline,
            "the pruner kept its priority: {:?}",
            nice("pruner")
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(nice("pruner"), nice("hashing-0"));
}

/// Issue 25: `db prune` drops what the retention drops, and keeps the user's newest password
/// change and deactivation however old; `db vacuum` then gives the space back while the
/// server runs.
#[test]
fn db_prune_keeps_the_newest_password_change_and_deactivation() {
    let (server, _) = TestServer::with_iago(&[]);
    for password in ["Another-Horse-10", "Third-Horse-11"] {
        let out = server.cli(
            &["user", "set-password", IAGO, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert!(out.status.success(), "{out:?}");
    }
    server.stdout(&["user", "deactivate", IAGO]);
    let events = |server: &TestServer| {
        let audit = server.stdout(&["audit", "--json"]);
        audit
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                row["event"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    };
    let before = events(&server);
    assert!(before.contains(&"user_created".to_owned()), "{before:?}");
    // Every row is older than a retention of 0 days by now.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let pruned = server.stdout(&["db", "prune", "--audit-retention-days", "0"]);
    assert_eq!(
        pruned,
        format!("pruned {} audit rows older than 0 days\n", before.len() - 2)
    );
    assert_eq!(events(&server), ["password_changed", "user_deactivated"]);
    let vacuumed = server.stdout(&["db", "vacuum"]);
    assert!(vacuumed.starts_with("vacuumed: "), "{vacuumed}");
}
