//! The settings file: read when named, with flag > environment > file > default.

use std::process::Output;

use crate::support::*;

/// `realm list --json` with `args` before it and `env` added.
fn realms_listed(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.env_remove("ZULIP_AUTH_DB")
        .args(args)
        .args(["realm", "list", "--json"])
        .envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn the_settings_file_sits_below_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| dir.path().join(name).display().to_string();
    for name in ["file", "env", "flag"] {
        run_cli(
            &dir.path().join(name),
            &["realm", "create", name, "--name", name],
            "",
        );
    }
    let conf = dir.path().join("zulip-auth.conf");
    std::fs::write(
        &conf,
        format!(
            "# the database\nZULIP_AUTH_DB={}\nRUST_LOG=warn\n",
            db("file")
        ),
    )
    .unwrap();
    let conf = conf.to_str().unwrap();
    let lists = |out: Output, realm: &str| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        out.status.success() && stdout.contains(&format!("\"subdomain\":\"{realm}\""))
    };
    // Named by the flag or by ZULIP_AUTH_CONFIG, the file chooses the database.
    assert!(lists(realms_listed(&["--config", conf], &[]), "file"));
    let by_env = [("ZULIP_AUTH_CONFIG", conf)];
    assert!(lists(realms_listed(&[], &by_env), "file"));
    // The environment beats the file, and a flag beats both.
    let env_db = db("env");
    let both = [
        ("ZULIP_AUTH_CONFIG", conf),
        ("ZULIP_AUTH_DB", env_db.as_str()),
    ];
    assert!(lists(realms_listed(&[], &both), "env"));
    let flag_db = db("flag");
    assert!(lists(realms_listed(&["--db", &flag_db], &both), "flag"));
}

#[test]
fn a_named_settings_file_must_exist_and_hold_only_settings() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.conf");
    let out = realms_listed(&["--config", missing.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("zulip-auth: cannot read settings "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let typo = dir.path().join("typo.conf");
    std::fs::write(
        &typo,
        "# settings\n\nZULIP_AUTH_EXTRNAL_URL=https://chat.example.com\n",
    )
    .unwrap();
    let out = realms_listed(&["--config", typo.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "zulip-auth: {}:3: \"ZULIP_AUTH_EXTRNAL_URL\" is not a zulip-auth setting\n",
            typo.display()
        )
    );
}

/// `zulip-auth config` with `args`, the environment cleared of the test runner's settings.
fn config_shown(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut cmd = bin();
    for (name, _) in std::env::vars() {
        if name.starts_with("ZULIP_AUTH_") || name == "RUST_LOG" || name == "PGPASSWORD" {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .env_remove("CREDENTIALS_DIRECTORY")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The README's mail settings as written, a credential for the password, and what
/// `zulip-auth config` says of each.
#[test]
fn config_shows_each_setting_its_value_and_source_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let conf = dir.path().join("zulip-auth.conf");
    std::fs::write(
        &conf,
        format!(
            "ZULIP_AUTH_DB={}\nZULIP_AUTH_MAIL_FROM=Zulip <noreply@example.com>\n\
             ZULIP_AUTH_SMTP_URL=smtp://relay.example.com\nZULIP_AUTH_WORKERS=3\n\
             ZULIP_AUTH_EXTERNAL_URL=\"https://chat.example.com\"\n",
            db.display()
        ),
    )
    .unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("ZULIP_AUTH_SMTP_PASSWORD"), "s3cret-pw\n").unwrap();
    let conf = conf.to_str().unwrap();
    let (shown, stderr) = config_shown(
        &["--config", conf, "config", "--listen", "localhost:9000"],
        &[
            ("ZULIP_AUTH_WORKERS", "5"),
            ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap()),
        ],
    );
    assert_eq!(stderr, "");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    let row = |name: &str| {
        let line = shown
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {shown}"));
        let from = line.rsplit(' ').next().unwrap().to_owned();
        let value = line[name.len()..line.len() - from.len()].trim().to_owned();
        (value, from)
    };
    let pair = |value: &str, from: &str| (value.to_owned(), from.to_owned());
    assert!(shown.starts_with("SETTING "), "{shown}");
    assert_eq!(row("ZULIP_AUTH_CONFIG"), pair(conf, "flag"));
    assert_eq!(row("ZULIP_AUTH_DB"), pair(db.to_str().unwrap(), "file"));
    let from = "Zulip <noreply@example.com>";
    assert_eq!(row("ZULIP_AUTH_MAIL_FROM"), pair(from, "file"));
    let url = "https://chat.example.com";
    assert_eq!(row("ZULIP_AUTH_EXTERNAL_URL"), pair(url, "file"));
    assert_eq!(row("ZULIP_AUTH_WORKERS"), pair("5", "environment"));
    assert_eq!(row("ZULIP_AUTH_LISTEN"), pair("localhost:9000", "flag"));
    assert_eq!(row("ZULIP_AUTH_AUTH_RATE"), pair("5/1800s", "default"));
    assert_eq!(row("ZULIP_AUTH_SMTP_PASSWORD"), pair("(set)", "credential"));
    assert_eq!(row("PGPASSWORD"), pair("-", "default"));
    assert_eq!(row("RUST_LOG"), pair("info", "default"));

    // A secret in the environment is shown as set, never its value.
    let (shown, _) = config_shown(
        &["--config", "none", "config"],
        &[("ZULIP_AUTH_SMTP_PASSWORD", "s3cret-pw")],
    );
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    let words = ["ZULIP_AUTH_SMTP_PASSWORD", "(set)", "environment"];
    assert!(
        shown.lines().any(|l| l.split_whitespace().eq(words)),
        "{shown}"
    );
}

/// The README's sender, written as it spells it, reaches the mail settings; a broken line is
/// named by file and number.
#[test]
fn a_value_with_spaces_and_angle_brackets_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("zulip-auth.conf");
    let db = dir.path().join("db.sqlite3");
    std::fs::write(
        &conf,
        format!(
            "ZULIP_AUTH_DB={}\nZULIP_AUTH_MAIL_FROM=Zulip <noreply@example.com>\n\
             ZULIP_AUTH_SMTP_URL=smtp://127.0.0.1:1?tls=none\n\
             ZULIP_AUTH_EXTERNAL_URL=https://chat.example.com\n",
            db.display()
        ),
    )
    .unwrap();
    // A server runs with them; a bad sender would stop it before the first line.
    let conf_arg = conf.to_str().unwrap();
    let listen = ["--listen", "127.0.0.1:0"];
    let (mut child, line) = crate::cli::serve_by_hand(&listen, |cmd| {
        cmd.env_remove("ZULIP_AUTH_DB")
            .env("ZULIP_AUTH_CONFIG", conf_arg)
            .stderr(std::process::Stdio::inherit());
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on "), "{line}");

    std::fs::write(
        &conf,
        "# mail\nZULIP_AUTH_MAIL_FROM=\"Zulip <noreply@example.com>\n",
    )
    .unwrap();
    let out = realms_listed(&["--config", conf.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "zulip-auth: {}:2: the value \"Zulip <noreply@example.com> has no closing \"\n",
            conf.display()
        )
    );
}

/// The packaged settings file parses, and names every setting `zulip-auth config` shows.
#[test]
fn the_packaged_settings_file_lists_every_setting() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/zulip-auth.conf");
    let (shown, stderr) = config_shown(&["--config", path, "config"], &[]);
    assert_eq!(stderr, "");
    let settings: std::collections::BTreeSet<&str> = shown
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "ZULIP_AUTH_CONFIG")
        .collect();
    let text = std::fs::read_to_string(path).unwrap();
    let listed: std::collections::BTreeSet<&str> = text
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name))
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert_eq!(listed, settings);
}
