//! The admin CLI: exact contract, one-line errors and non-zero exits on bad input.

use crate::support::*;

fn failure(server: &TestServer, args: &[&str], stdin: &str) -> String {
    let out = server.cli(args, stdin);
    assert!(!out.status.success(), "{args:?} should fail");
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
            &["--argon2-m", "1", "user", "deactivate", IAGO],
            ""
        )
        .contains("argon2")
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

#[test]
fn environment_variables_configure_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.sqlite3");
    let out = std::process::Command::new(BIN)
        .args(["realm", "create", "envrealm"])
        .env("ZULIP_AUTH_DB", &db)
        .env("ZULIP_AUTH_NAME", "From Env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = run_cli(&db, &["realm", "create", "envrealm", "--name", "x"], "");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
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
        let out = std::process::Command::new(BIN)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
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
        "3",
    ]);
    assert!(
        out.starts_with("suggested: --argon2-m ") && out.contains("within 3 ms"),
        "{out}"
    );
    let m: u32 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(m >= 1024 && m.is_multiple_of(1024), "{m}");
}

#[test]
fn ldap_bind_password_comes_from_the_environment_never_argv() {
    let server = TestServer::start(&[]);
    let mut cmd = std::process::Command::new(BIN);
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
