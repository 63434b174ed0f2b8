//! The admin CLI: exact contract, one-line errors and non-zero exits on bad input.

use crate::support::*;

/// stderr of a command that fails with exit status 1 and one line.
fn failure(server: &TestServer, args: &[&str], stdin: &str) -> String {
    let out = server.cli(args, stdin);
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with 1");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    let (server, _) = TestServer::with_iago(&[]);
    let create = |email: &'static str, realm: &'static str| {
        vec![
            "user",
            "create",
            email,
            "--realm",
            realm,
            "--password-stdin",
        ]
    };
    assert!(failure(&server, &create("a@b.cd", "nosuch"), "Pass-Word-1\n").contains("no realm"));
    assert!(
        failure(&server, &create("IAGO@example.com", ""), "Pass-Word-1\n")
            .contains("already exists")
    );
    assert!(
        failure(&server, &create("not-an-email", ""), "Pass-Word-1\n").contains("invalid email")
    );
    assert!(failure(&server, &create("a@b.cd", ""), "\n").contains("empty password"));
    assert!(failure(&server, &create("a@b.cd", ""), "").contains("empty password"));
    assert!(
        failure(&server, &["user", "deactivate", "nobody@example.com"], "").contains("no user")
    );
    assert!(
        failure(&server, &["realm", "create", "Bad_Sub", "--name", "x"], "")
            .contains("invalid subdomain")
    );
    assert!(
        failure(&server, &["realm", "create", "", "--name", "x"], "").contains("invalid subdomain")
    );
    assert!(failure(&server, &["realm", "set", "nosuch", "--name", "x"], "").contains("no realm"));
    assert!(
        failure(
            &server,
            &[
                "--argon2-m",
                "1",
                "user",
                "set-password",
                IAGO,
                "--password-stdin"
            ],
            "Pass-Word-1\n"
        )
        .contains("argon2")
    );
    // The API refuses a NUL in any parameter: such a password could never log in.
    for args in [
        create("a@b.cd", ""),
        vec!["user", "set-password", IAGO, "--password-stdin"],
    ] {
        assert!(
            failure(&server, &args, "Pass\0Word-1\n").contains("NUL"),
            "{args:?}"
        );
    }
    for name in ["Ia\ngo", "\u{1b}[2JIago", "Iago\u{7f}"] {
        let mut args = create("a@b.cd", "");
        args.extend(["--full-name", name]);
        assert!(failure(&server, &args, "Pass-Word-1\n").contains("control character"));
        assert!(
            failure(&server, &["realm", "set", "", "--name", name], "")
                .contains("control character")
        );
        assert!(
            failure(&server, &["realm", "create", "lear", "--name", name], "")
                .contains("control character")
        );
    }
    let listed = server.stdout(&["user", "list"]);
    assert!(!listed.contains("a@b.cd"), "{listed}");
}

/// Arguments that do not parse exit 2 with one line (clap's convention); everything else 1.
#[test]
fn argument_errors_exit_2() {
    let server = TestServer::start(&[]);
    for args in [
        &["bench-hash", "--samples", "0"][..],
        &["bench-hash", "--threads", "0"],
        &["bench-hash", "--samples", "x"],
        &["bench-hash", "--target-ms", "NaN"],
        &["bench-hash", "--target-ms", "-5"],
        &["bench-hash", "--target-ms", "inf"],
        &["bench-hash", "--target-ms", "0"],
        &["audit", "--since", "3 weeks"],
    ] {
        let out = server.cli(args, "");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("error: invalid value"), "{stderr}");
    }
    // Unknown flags, missing arguments and conflicts keep clap's usage text, and exit 2.
    for args in [
        &["user", "list", "--nosuch"][..],
        &["realm", "create"],
        &[],
        &["bench-hash", "--threads", "2", "--target-ms", "3"],
    ] {
        assert_eq!(server.cli(args, "").status.code(), Some(2), "{args:?}");
    }
    assert_eq!(
        server
            .cli(
                &[
                    "user",
                    "create",
                    "a@b.cd",
                    "--password-stdin",
                    "--no-password"
                ],
                ""
            )
            .status
            .code(),
        Some(2)
    );
}

/// `zulip-auth user list | head -1`: the reader goes away, the command ends quietly with 0.
#[test]
fn a_closed_stdout_ends_any_command_quietly() {
    let (server, _) = TestServer::with_iago(&[]);
    for args in [
        &["user", "list"][..],
        &["user", "list", "--json"],
        &["user", "show", IAGO],
        &["realm", "list"],
        &["audit"],
        &["audit", "--json"],
        &["db", "check"],
        &["user", "rotate-key", IAGO],
        &["bench-hash", "--samples", "1"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = bin()
            .arg("--db")
            .arg(&server.db)
            .args(args)
            .env("ZULIP_AUTH_ARGON2_M", "256")
            .env("ZULIP_AUTH_ARGON2_T", "1")
            .stdout(writer)
            .output()
            .unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), ""),
            "{args:?}"
        );
    }
}

/// The argon2 settings matter only to the commands that hash.
#[test]
fn argon2_settings_are_checked_only_where_used() {
    let (server, _) = TestServer::with_iago(&[]);
    let with_bad_argon2 = |args: &[&str], stdin: &str| {
        let mut full = vec!["--argon2-m", "1"];
        full.extend_from_slice(args);
        server.cli(&full, stdin)
    };
    for args in [
        &["db", "check"][..],
        &["user", "list"],
        &["user", "show", IAGO],
        &["realm", "list"],
        &["audit"],
        &["user", "rotate-key", IAGO],
        &["user", "deactivate", IAGO],
        &["user", "create", "nopass@example.com", "--no-password"],
    ] {
        let out = with_bad_argon2(args, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [
        &["user", "create", "a@example.com", "--password-stdin"][..],
        &["user", "set-password", IAGO, "--password-stdin"],
        &["bench-hash", "--samples", "1"],
        &["serve", "--listen", "127.0.0.1:0"],
    ] {
        let out = with_bad_argon2(args, "Pass-Word-1\n");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            out.status.code() == Some(1) && stderr.contains("invalid argon2 parameters"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn version_names_the_commit() {
    let out = bin().arg("--version").output().unwrap();
    let version = String::from_utf8(out.stdout).unwrap();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_owned(), |o| {
            String::from_utf8(o.stdout).unwrap().trim().to_owned()
        });
    assert_eq!(
        version,
        format!(
            "zulip-auth {} (commit {commit})\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn user_create_prints_ids_and_takes_role_and_realm() {
    let server = TestServer::start(&["--dev"]);
    let first = server.create_user("a@example.com", "Pass-Word-1", &[]);
    let second = server.create_user(
        "b@example.com",
        "Pass-Word-2",
        &["--role", "owner", "--full-name", "B"],
    );
    assert_eq!(second, first + 1);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    // The same address in another realm is another user with its own password.
    let third = server.create_user("a@example.com", "Other-Pass-3", &["--realm", "lear"]);
    assert_eq!(third, second + 1);
    let admins = server.get("/api/v1/dev_list_users").json()["direct_admins"].clone();
    assert_eq!(admins[0]["email"], "b@example.com");
    // CRLF line endings are stripped.
    server.create_user("c@example.com", "Pass-Word-3\r", &[]);
    assert_eq!(server.login("c@example.com", "Pass-Word-3").status, 200);
}

/// Global flags read the environment; the flags of one admin call do not, so a variable
/// left in the shell never renames a realm or retargets a command.
#[test]
fn environment_variables_configure_global_flags_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.sqlite3");
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let out = bin()
            .args(args)
            .env("ZULIP_AUTH_DB", &db)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    cli(&["realm", "create", "envrealm", "--name", "Env Realm"], &[]);
    assert!(db.exists(), "ZULIP_AUTH_DB names the database");
    cli(
        &["realm", "set", "", "--description", "x"],
        &[("ZULIP_AUTH_NAME", "Oops")],
    );
    let realms = cli(
        &["realm", "list", "--json"],
        &[("ZULIP_AUTH_JSON", "false")],
    );
    let realms: serde_json::Value = serde_json::from_str(&realms).unwrap();
    assert_ne!(realms[0]["name"], "Oops");
    // No ZULIP_AUTH_JSON, ZULIP_AUTH_REALM or ZULIP_AUTH_FULL_NAME either.
    let table = cli(
        &["realm", "list"],
        &[
            ("ZULIP_AUTH_JSON", "true"),
            ("ZULIP_AUTH_REALM", "envrealm"),
        ],
    );
    assert!(table.starts_with("SUBDOMAIN"), "{table}");
    cli(
        &["user", "create", "a@example.com", "--no-password"],
        &[
            ("ZULIP_AUTH_REALM", "envrealm"),
            ("ZULIP_AUTH_FULL_NAME", "Oops"),
        ],
    );
    let users = cli(&["user", "list", "--json"], &[]);
    assert!(
        users.contains("a@example.com") && !users.contains("Oops"),
        "{users}"
    );
    let out = bin()
        .args(["realm", "create", "other"])
        .env("ZULIP_AUTH_DB", &db)
        .env("ZULIP_AUTH_NAME", "From Env")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--name is required, not read from the environment"
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for args in [
        vec!["serve"],
        vec!["realm", "create"],
        vec!["realm", "set"],
        vec!["realm", "deactivate"],
        vec!["realm", "reactivate"],
        vec!["user", "create"],
        vec!["user", "deactivate"],
        vec!["user", "reactivate"],
        vec!["user", "list"],
        vec!["user", "show"],
        vec!["user", "set-password"],
        vec!["user", "rotate-key"],
        vec!["user", "import"],
        vec!["realm", "list"],
        vec!["db", "backup"],
        vec!["db", "check"],
        vec!["audit"],
        vec!["bench-hash"],
    ] {
        let out = bin().args(&args).arg("--help").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success() && help.contains("Example"),
            "{args:?}: {help}"
        );
    }
}

#[test]
fn bench_hash_times_and_suggests() {
    let server = TestServer::start(&[]);
    let out = server.stdout(&["--argon2-t", "1", "bench-hash", "--samples", "3", "--json"]);
    let timing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            timing["m"].as_u64(),
            timing["t"].as_u64(),
            timing["samples"].as_u64()
        ),
        (Some(256), Some(1), Some(3))
    );
    assert!(timing["median_ms"].as_f64().unwrap() > 0.0);
    let out = server.stdout(&[
        "--argon2-t",
        "1",
        "bench-hash",
        "--samples",
        "3",
        "--target-ms",
        "50",
    ]);
    assert!(
        out.starts_with("suggested: --argon2-m ") && out.contains("within 50 ms"),
        "{out}"
    );
    let m: u32 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(m >= 1024 && m.is_multiple_of(1024), "{m}");
    // The median printed beside "within" is within.
    let median: f64 = out
        .split("median ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(median <= 50.0, "{out}");
    // --json is honoured with --target-ms too.
    let out = server.stdout(&[
        "--argon2-t",
        "1",
        "bench-hash",
        "--samples",
        "3",
        "--target-ms",
        "50",
        "--json",
    ]);
    let suggestion: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(suggestion["m"].as_u64().unwrap() >= 1024, "{out}");
    assert!(suggestion["median_ms"].as_f64().unwrap() <= 50.0, "{out}");
    assert_eq!(
        (suggestion["target_ms"].as_f64(), suggestion["t"].as_u64()),
        (Some(50.0), Some(1))
    );
    // N threads at once, beside the single-thread figure.
    let out = server.stdout(&[
        "--argon2-t",
        "1",
        "bench-hash",
        "--samples",
        "3",
        "--threads",
        "2",
        "--json",
    ]);
    let timing: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(timing["threads"], 2);
    assert!(timing["per_second"].as_f64().unwrap() > 0.0, "{out}");
    assert!(
        timing["per_second_one_thread"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    let out = server.stdout(&[
        "--argon2-t",
        "1",
        "bench-hash",
        "--samples",
        "3",
        "--threads",
        "2",
    ]);
    assert!(out.contains("/s)\n2 threads verifying at once: "), "{out}");
}

#[test]
fn ldap_bind_password_comes_from_the_environment_never_argv() {
    let server = TestServer::start(&[]);
    let mut cmd = bin();
    let out = cmd
        .args(["--db", server.db.to_str().unwrap(), "realm", "set", ""])
        .args([
            "--ldap-url",
            "ldap://127.0.0.1:1",
            "--ldap-bind-dn",
            "cn=zulip",
        ])
        .env("ZULIP_AUTH_LDAP_BIND_PASSWORD", "Env-Bind-Secret-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = server.stdout(&["audit"]);
    assert!(audit.contains("ldap bind password changed"), "{audit}");
    assert!(!audit.contains("Env-Bind-Secret-1"));
    let settings = server.get("/api/v1/server_settings").json();
    assert_eq!(settings["authentication_methods"]["ldap"], true);
    // There is no flag that takes the secret itself.
    let help = server.stdout(&["realm", "set", "--help"]);
    assert!(help.contains("--ldap-bind-password-file") && !help.contains("--ldap-bind-password "));
}

/// Issue 11: the read-only commands refuse a mistyped `--db` instead of creating an empty
/// database there; issue 12 item 15: `db check` fails on a missing or empty file.
#[test]
fn read_only_commands_refuse_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.sqlite3");
    let read_only: [&[&str]; 7] = [
        &["user", "list"],
        &["user", "show", IAGO],
        &["realm", "list"],
        &["audit"],
        &["db", "check"],
        &["db", "backup", "/nonexistent-dir/x"],
        &["audit", "--realm", "lear"],
    ];
    for args in read_only {
        let out = run_cli(&missing, args, "");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(
            stderr.contains(missing.to_str().unwrap()),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    std::fs::write(&missing, b"").unwrap();
    let out = run_cli(&missing, &["db", "check"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("empty"));
    std::fs::remove_file(&missing).unwrap();
    // Every other command still creates and migrates the database, root realm included.
    let out = run_cli(&missing, &["realm", "create", "lear", "--name", "Lear"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(run_cli(&missing, &["realm", "list"], "").stdout).unwrap();
    assert!(
        listed.contains("(root)") && listed.contains("lear"),
        "{listed}"
    );
    let checked = String::from_utf8(run_cli(&missing, &["db", "check"], "").stdout).unwrap();
    assert!(checked.contains("integrity: ok"), "{checked}");
}

/// Issue 11: `audit --realm SUB` shows that realm's rows only, with or without `--user`.
#[test]
fn audit_filters_by_realm() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    server.create_user(
        "cordelia@example.com",
        "Daughter-No-3",
        &["--realm", "lear"],
    );
    let lear = server.stdout(&["audit", "--realm", "lear", "--json"]);
    let rows: Vec<serde_json::Value> = lear
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 2, "{lear}");
    assert!(rows.iter().all(|r| r["realm"] == "lear"), "{lear}");
    let root = server.stdout(&["audit", "--realm", "", "--json"]);
    assert!(root.contains(IAGO) && !root.contains("cordelia"), "{root}");
    let everything = server.stdout(&["audit", "--json"]);
    assert!(
        everything.contains(IAGO) && everything.contains("cordelia"),
        "{everything}"
    );
    let one = server.stdout(&["audit", "--realm", "lear", "--user", "cordelia@example.com"]);
    assert!(one.contains("cordelia") && !one.contains(IAGO), "{one}");
    assert!(failure(&server, &["audit", "--realm", "nosuch"], "").contains("no realm"));
}

/// The failure lines of the running server, once every one of `reasons` is among them.
fn failure_lines(server: &TestServer, reasons: &[&str]) -> Vec<String> {
    for reason in reasons {
        server.log_containing(&format!("reason={reason} "));
    }
    server
        .stderr()
        .lines()
        .filter(|l| l.contains("authentication failure"))
        .map(str::to_owned)
        .collect()
}

/// deploy/fail2ban's failregex, `<HOST>` captured as `host`.
pub fn fail2ban_filter() -> regex::Regex {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/fail2ban/filter.conf");
    let text = std::fs::read_to_string(path).unwrap();
    let pattern = text
        .lines()
        .find_map(|l| l.strip_prefix("failregex = "))
        .expect("a failregex line");
    regex::Regex::new(&pattern.replace("<HOST>", r"(?P<host>\S+)")).unwrap()
}

#[test]
fn the_fail2ban_filter_catches_every_guess_the_server_logs() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/1800s"]);
    server.create_user("gone@example.com", IAGO_PASSWORD, &[]);
    server.ok(&["user", "deactivate", "gone@example.com"]);
    let coded = "coded@example.com";
    server.create_user(coded, IAGO_PASSWORD, &[]);
    let uri = server.stdout(&["user", "totp", "enroll", coded]);
    let secret = uri
        .lines()
        .next()
        .and_then(|l| l.split(['?', '&']).find_map(|p| p.strip_prefix("secret=")))
        .unwrap();
    let secret = zulip_auth::auth::totp::Secret::from_base32(secret).unwrap();

    // A wrong password, then the limit; an unknown user; a deactivated one.
    assert_eq!(server.login(IAGO, "wrong-one").status, 401);
    assert_eq!(server.login(IAGO, "wrong-two").status, 401);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    assert_eq!(server.login("nobody@example.com", "x").status, 401);
    assert_eq!(server.login("gone@example.com", IAGO_PASSWORD).status, 401);
    // A wrong code at the browser sign-in's second step.
    let page = server.get("/accounts/login/");
    let csrf = page
        .header("set-cookie")
        .and_then(|c| c.strip_prefix("csrftoken="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let cookie = format!("csrftoken={csrf}");
    let post = |fields: &[(&str, &str)]| {
        let mut all = vec![("csrfmiddlewaretoken", csrf.as_str())];
        all.extend_from_slice(fields);
        server.post_form_with("/accounts/login/", &all, &[("Cookie", cookie.as_str())])
    };
    let step = post(&[("username", coded), ("password", IAGO_PASSWORD)]);
    let marker = "name=\"step_token\" value=\"";
    let token = step.text().split(marker).nth(1).unwrap().split('"').next();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let right = secret.code_at(now);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    post(&[("step_token", token.unwrap()), ("otp_token", wrong)]);
    // A forged token at the JWT login.
    let key = server.dir.join("jwt.key");
    std::fs::write(&key, "the portal's secret").unwrap();
    server.ok(&["realm", "set", "", "--jwt-key-file", key.to_str().unwrap()]);
    let forged = server.post_form("/api/v1/jwt/fetch_api_key", &[("token", "a.b.c")]);
    assert_eq!(forged.status, 400);

    let guesses = [
        "WRONG_PASSWORD",
        "RATE_LIMIT_HIT",
        "UNKNOWN_USER",
        "WRONG_CODE",
        "BAD_TOKEN",
    ];
    let lines = failure_lines(&server, &[&guesses[..], &["USER_DEACTIVATED"]].concat());
    let filter = fail2ban_filter();
    for line in &lines {
        let reason = line.split("reason=").nth(1).unwrap().split(' ').next();
        let caught = filter.captures(line);
        if guesses.contains(&reason.unwrap()) {
            let host = caught.unwrap_or_else(|| panic!("the filter misses {line:?}"));
            assert_eq!(&host["host"], "127.0.0.1", "{line}");
        } else {
            assert!(caught.is_none(), "the filter bans for {line:?}");
        }
    }
}

#[test]
fn under_the_journal_lines_carry_their_priority_and_no_timestamp() {
    let log = journal_log("text");
    let failure = "<4>[WARN  zulip_auth::http] authentication failure reason=WRONG_PASSWORD client=127.0.0.1 path=/api/v1/fetch_api_key";
    assert!(log.lines().any(|l| l == failure), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("<6>[INFO  zulip_auth::http] POST /api/v1/fetch_api_key 401")),
        "{log}"
    );
    // Every line: a priority, then the level, then the target; no timestamp in between.
    for line in log.lines() {
        let prefixed = [
            "<3>[ERROR ",
            "<4>[WARN  ",
            "<6>[INFO  ",
            "<7>[DEBUG ",
            "<7>[TRACE ",
        ]
        .iter()
        .any(|p| line.starts_with(p));
        assert!(prefixed, "{line}");
    }
    // In JSON, the priority before the object, and no "ts" in it.
    let log = journal_log("json");
    for line in log.lines() {
        let (priority, object) = line.split_at(3);
        let object: serde_json::Value = serde_json::from_str(object).unwrap();
        let level = object["level"].as_str().unwrap();
        let expected = match level {
            "WARN" => "<4>",
            "INFO" => "<6>",
            _ => "<3>",
        };
        assert_eq!(priority, expected, "{line}");
        assert!(object.get("ts").is_none(), "{line}");
    }
    assert!(log.contains(r#"<4>{"level":"WARN""#), "{log}");
}

/// The stderr of a demo server in `format` that systemd would have connected to the journal
/// (JOURNAL_STREAM names it), after one wrong password; its stdout is not the journal.
fn journal_log(format: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let args = ["--demo", "--listen", "127.0.0.1:0", "--log-format", format];
    let (mut child, line) = serve_by_hand(&args, |cmd| {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stderr(stderr);
    });
    // The line scripts read stays as it was.
    let addr = line.strip_prefix("listening on http://").unwrap().trim();
    let body = "username=iago%40zulip.com&password=wrong";
    let request = format!(
        "POST /api/v1/fetch_api_key HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stream, request.as_bytes()).unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&stderr_path).unwrap();
        if log.contains("authentication failure") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    log
}

#[test]
fn listen_takes_localhost_as_127_0_0_1() {
    let (mut child, line) = serve_by_hand(&["--demo", "--listen", "localhost:0"], |_| {});
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");

    let out = bin()
        .args(["serve", "--demo", "--listen", "example.com:9991"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: invalid value for '--listen <LISTEN>': \"example.com:9991\": expected IP:PORT, localhost:PORT or unix:/path\n"
    );
}

#[test]
fn a_write_command_creates_a_database_only_when_it_succeeds_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo.sqlite3");
    let refused: [(&[&str], &str); 4] = [
        (&["user", "create", "not-an-email", "--no-password"], ""),
        (&["user", "create", IAGO, "--password-stdin"], "short\n"),
        (&["realm", "set", "nosuch", "--name", "X"], ""),
        (&["user", "deactivate", IAGO], ""),
    ];
    for (args, stdin) in refused {
        let out = run_cli(&missing, args, stdin);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(!stderr.contains(".zulip-auth-new-"), "{args:?}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    let out = run_cli(&missing, &["realm", "create", "lear", "--name", "Lear"], "");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("zulip-auth: created the database {}\n", missing.display())
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["typo.sqlite3"]);
    // Once it exists, nothing more is said.
    let out = run_cli(&missing, &["realm", "create", "york", "--name", "York"], "");
    assert!(out.status.success() && out.stderr.is_empty());
    let listed = String::from_utf8(run_cli(&missing, &["realm", "list"], "").stdout).unwrap();
    assert!(
        listed.contains("lear") && listed.contains("york"),
        "{listed}"
    );
}

#[test]
fn a_change_that_locks_a_realm_out_applies_with_a_warning_and_its_undo() {
    let (server, _) = TestServer::with_iago(&[]);
    server.ok(&["realm", "create", "lear", "--name", "Lear"]);
    let in_force = |server: &TestServer| {
        let realms: serde_json::Value =
            serde_json::from_str(&server.stdout(&["realm", "list", "--json"])).unwrap();
        realms[0]["password_auth_enabled"].as_bool().unwrap()
    };
    let warned = server.cli(&["realm", "set", "", "--email-auth", "off"], "");
    assert!(warned.status.success());
    assert_eq!(
        String::from_utf8(warned.stderr).unwrap(),
        "zulip-auth: warning: nobody can sign in to realm '' any more: no password backend is \
         in force; undo with: zulip-auth realm set '' --email-auth on\n"
    );
    // Applied: the API says so, and realm list shows what is in force, not the stored flag.
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E9);
    assert!(!in_force(&server));
    let table = server.stdout(&["realm", "list"]);
    let root = table.lines().nth(1).unwrap();
    assert!(root.contains("active  off            off"), "{table}");
    // Another change to a realm already without a way in says nothing more.
    let again = server.cli(&["realm", "set", "", "--password-auth", "off"], "");
    assert!(again.status.success() && again.stderr.is_empty());
    server.ok(&[
        "realm",
        "set",
        "",
        "--email-auth",
        "on",
        "--password-auth",
        "on",
    ]);
    assert!(in_force(&server));
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);

    let lear = server.cli(&["realm", "set", "lear", "--password-auth", "off"], "");
    assert_eq!(
        String::from_utf8(lear.stderr).unwrap(),
        "zulip-auth: warning: nobody can sign in to realm lear any more: no password backend \
         is in force; undo with: zulip-auth realm set lear --password-auth on\n"
    );
}

#[test]
fn ldap_on_needs_a_url_and_totp_enroll_needs_replace_for_a_second_key() {
    let (server, _) = TestServer::with_iago(&[]);
    assert_eq!(
        failure(&server, &["realm", "set", "", "--ldap", "on"], ""),
        "zulip-auth: --ldap on needs a directory: realm '' has no LDAP URL (add --ldap-url URL)\n"
    );
    assert!(server.stdout(&["realm", "list"]).contains("off   off"));
    let first = server.stdout(&["user", "totp", "enroll", IAGO]);
    assert_eq!(
        failure(&server, &["user", "totp", "enroll", IAGO], ""),
        "zulip-auth: user \"iago@example.com\" has a second factor already: add --replace to \
         replace it\n"
    );
    let second = server.stdout(&["user", "totp", "enroll", IAGO, "--replace"]);
    assert!(second.starts_with("otpauth://"), "{second}");
    assert_ne!(first.lines().next(), second.lines().next());
}

/// `zulip-auth serve ARGS` started by hand, one worker, for an environment or a stderr that
/// TestServer does not give (`setup` adds them): the process and its first stdout line.
pub fn serve_by_hand(
    args: &[&str],
    setup: impl FnOnce(&mut std::process::Command),
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut command = bin();
    command
        .arg("serve")
        .args(args)
        .args(["--workers", "1"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    setup(&mut command);
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Issue 21: `user set` changes a role, a name or the email, each checked as at creation,
/// and audits the change without the addresses.
#[test]
fn user_set_changes_role_name_and_email_as_checked_at_creation() {
    let (server, _) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.create_user("hamlet@example.com", "Hamlet-Pass-7", &[]);
    server.ok(&[
        "user",
        "set",
        IAGO,
        "--role",
        "admin",
        "--full-name",
        "Iago II",
    ]);
    let shown = server.stdout(&["user", "show", IAGO]);
    assert!(shown.contains("role       admin\n"), "{shown}");
    assert!(shown.contains("full name  Iago II\n"), "{shown}");

    for (args, error) in [
        (
            vec!["--email", "not-an-email"],
            "zulip-auth: invalid email address \"not-an-email\"\n",
        ),
        (
            vec!["--email", "HAMLET@example.com"],
            "zulip-auth: a user \"HAMLET@example.com\" already exists in this realm\n",
        ),
        (
            vec!["--full-name", "a\u{1b}b"],
            "zulip-auth: the full name \"a\\u{1b}b\" contains the control character '\\u{1b}'\n",
        ),
    ] {
        let mut all = vec!["user", "set", IAGO];
        all.extend(args);
        assert_eq!(failure(&server, &all, ""), error);
    }
    assert_eq!(
        server.cli(&["user", "set", IAGO], "").status.code(),
        Some(2)
    );

    let new = "prince@example.com";
    server.ok(&["user", "set", IAGO, "--email", new]);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(new, IAGO_PASSWORD).api_key(), key);
    let audit = server.stdout(&["audit", "--user", new]);
    let changes: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("user_changed"))
        .collect();
    assert_eq!(changes.len(), 2, "{audit}");
    for change in [
        "by operator: email changed",
        "by operator: role admin, full name changed",
    ] {
        assert!(
            changes.iter().any(|l| l.contains(change)),
            "{change}: {audit}"
        );
    }
    // The details name no address (the user column is the account's current one).
    assert!(!changes.iter().any(|l| l.contains(IAGO)), "{audit}");
}

/// Issue 21: `user delete` removes the account and all it opened; the audit trail keeps a
/// row of it without the address. Without a terminal, only `--yes` deletes.
#[test]
fn user_delete_removes_the_account_and_keeps_an_audit_row_without_the_address() {
    let (server, id) = TestServer::with_iago(&[]);
    let key = server.login(IAGO, IAGO_PASSWORD).api_key();
    server.ok(&["user", "totp", "enroll", IAGO]);
    server.ok(&["user", "reset-link", IAGO]);
    assert_eq!(
        failure(&server, &["user", "delete", IAGO], "yes\n"),
        "zulip-auth: stdin is not a terminal: pass --yes to delete \"iago@example.com\"\n"
    );
    assert!(server.stdout(&["user", "show", IAGO]).contains(IAGO));

    server.ok(&["user", "delete", IAGO, "--yes"]);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    let pair = format!("{IAGO}:{key}");
    let auth = format!(
        "Basic {}",
        <base64ct::Base64 as base64ct::Encoding>::encode_string(pair.as_bytes())
    );
    let me = server.send("GET", "/api/v1/users/me", &[("Authorization", &auth)], b"");
    assert_eq!(me.status, 401);
    for table in ["user", "totp_device", "password_reset", "web_session"] {
        assert_eq!(server.row_count(table), 0, "{table}");
    }
    let audit = server.stdout(&["audit", "--json"]);
    let deleted: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("user_deleted"))
        .collect();
    assert_eq!(deleted.len(), 1, "{audit}");
    let detail = format!(
        "\"email\":null,\"reason\":null,\"remote_addr\":null,\"user_agent\":null,\"detail\":\"by operator: user id {id}\""
    );
    assert!(deleted[0].contains(&detail), "{audit}");
    assert!(!audit.contains("iago"), "{audit}");
    // The address is free again.
    let again = server.create_user(IAGO, IAGO_PASSWORD, &[]);
    assert_ne!(again, id);
    assert_eq!(
        failure(
            &server,
            &["user", "delete", "nobody@example.com", "--yes"],
            ""
        ),
        "zulip-auth: no user \"nobody@example.com\" in realm \"\"\n"
    );
}

/// On a terminal, `user delete` asks, and deletes only on "yes".
#[test]
fn user_delete_asks_on_a_terminal() {
    let (server, _) = TestServer::with_iago(&[]);
    let on_a_terminal = |answer: &str| {
        let command = format!(
            "{BIN} --db '{}' user delete {IAGO}",
            server.db.to_str().unwrap()
        );
        let mut child = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("ZULIP_AUTH_CONFIG", "none")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("script(1), from util-linux");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (status, shown) = on_a_terminal("no\n");
    assert_eq!(status, Some(1), "{shown}");
    assert!(shown.contains("Type yes: "), "{shown}");
    assert!(shown.contains("not deleted"), "{shown}");
    assert_eq!(server.row_count("user"), 1);
    let (status, shown) = on_a_terminal("yes\n");
    assert_eq!(status, Some(0), "{shown}");
    assert_eq!(server.row_count("user"), 0);
}

/// Issue 21: `user unlock` clears the user's rate-limit history, audited; nothing else.
#[test]
fn user_unlock_clears_the_username_limit() {
    let (server, _) = TestServer::with_iago(&["--auth-rate", "2/1800s"]);
    for _ in 0..2 {
        server.login(IAGO, "wrong").assert_json(401, E11);
    }
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    server.ok(&["user", "unlock", IAGO]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    let audit = server.stdout(&["audit", "--user", IAGO]);
    assert!(audit.contains("user_unlocked"), "{audit}");
    assert_eq!(
        failure(&server, &["user", "unlock", "nobody@example.com"], ""),
        "zulip-auth: no user \"nobody@example.com\" in realm \"\"\n"
    );
}
