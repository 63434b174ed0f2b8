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
    std::fs::write(&typo, "ZULIP_AUTH_EXTRNAL_URL=https://chat.example.com\n").unwrap();
    let out = realms_listed(&["--config", typo.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "zulip-auth: {}: ZULIP_AUTH_EXTRNAL_URL is not a zulip-auth setting\n",
            typo.display()
        )
    );
}
