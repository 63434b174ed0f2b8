//! Attacks of the hardening issue, reproduced against the real binary: races between a
//! login and the admin commands, concurrent guesses from one address, IPv6 clients, and a
//! database that fails under the server.

use std::thread;
use std::time::Duration;

use crate::support::*;

/// Argon2 parameters that make one verification take most of a second: a login is then
/// still verifying while an admin command runs.
const SLOW: [&str; 4] = ["--argon2-m", "65536", "--argon2-t", "16"];

/// What a login in flight needs before an admin command runs against it.
const IN_FLIGHT: Duration = Duration::from_millis(300);

/// A server whose iago has a slow hash: created with [`SLOW`], verified by a server with
/// the tests' small parameters, so the hash also needs upgrading at login.
fn slow_iago() -> (TestServer, i64) {
    slow_iago_on(&["--address-rate", "off"])
}

/// [`slow_iago`] on a server started with `args`.
fn slow_iago_on(args: &[&str]) -> (TestServer, i64) {
    let server = TestServer::start(args);
    let mut args = SLOW.to_vec();
    args.extend(["user", "create", IAGO, "--password-stdin"]);
    let out = server.cli(&args, &format!("{IAGO_PASSWORD}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (server, id)
}

/// Runs `admin` while a login with `password` is verifying; the login's response.
fn during_login(server: &TestServer, password: &str, admin: impl FnOnce()) -> HttpResponse {
    thread::scope(|s| {
        let login = s.spawn(|| server.login(IAGO, password));
        thread::sleep(IN_FLIGHT);
        admin();
        assert!(
            !login.is_finished(),
            "the login finished before the admin command"
        );
        login.join().unwrap()
    })
}

/// Issue 12 item 2: the old password's upgraded hash must not overwrite the new one.
#[test]
fn a_password_change_during_a_login_is_not_undone() {
    let (server, _) = slow_iago();
    let racing = during_login(&server, IAGO_PASSWORD, || {
        let out = server.cli(
            &["user", "set-password", IAGO, "--password-stdin"],
            "New-Horse-77\n",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    // What was verified is no longer the password: the generic E11, no key.
    racing.assert_json(401, E11);
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);
    assert_eq!(server.login(IAGO, "New-Horse-77").status, 200);
}

/// Issue 12 item 3: a key rotated while a login verifies is the one the login returns.
#[test]
fn a_key_rotated_during_a_login_is_the_key_handed_out() {
    let (server, _) = slow_iago();
    // A first login mints a key (and upgrades the hash; rotate it back to a slow one).
    let first = server.login(IAGO, IAGO_PASSWORD).api_key();
    let mut args = SLOW.to_vec();
    args.extend(["user", "set-password", IAGO, "--password-stdin"]);
    let out = server.cli(&args, &format!("{IAGO_PASSWORD}\n"));
    assert!(out.status.success());
    let mut rotated = String::new();
    let racing = during_login(&server, IAGO_PASSWORD, || {
        rotated = server
            .stdout(&["user", "rotate-key", IAGO])
            .trim()
            .to_owned();
    });
    assert_eq!(racing.status, 200, "{}", racing.text());
    assert_ne!(rotated, first);
    assert_eq!(racing.api_key(), rotated);
    let me = server.send(
        "GET",
        "/api/v1/users/me",
        &[("Authorization", &basic_header(IAGO, &rotated))],
        b"",
    );
    assert_eq!(me.status, 200);
}

/// Issue 12 item 3: a user deactivated while a login verifies gets E7, and no success is
/// audited.
#[test]
fn a_user_deactivated_during_a_login_is_refused() {
    let (server, _) = slow_iago();
    let racing = during_login(&server, IAGO_PASSWORD, || {
        server.ok(&["user", "deactivate", IAGO])
    });
    racing.assert_json(401, E7);
    let audit = server.stdout(&["audit", "--json"]);
    assert!(!audit.contains("login_success"), "{audit}");
    assert!(!audit.contains("key_minted"), "{audit}");
}

/// Issue 12 item 6: concurrent failures from one address never verify more than its limit.
#[test]
fn concurrent_failures_from_one_address_verify_at_most_the_limit() {
    let server = TestServer::start(&[
        "--workers",
        "16",
        "--address-rate",
        "30/600s",
        "--argon2-m",
        "8192",
        "--argon2-t",
        "2",
    ]);
    let statuses: Vec<u16> = thread::scope(|s| {
        let logins: Vec<_> = (0..80)
            .map(|n| {
                let server = &server;
                s.spawn(move || {
                    server
                        .login(&format!("nobody{n}@example.com"), "guess")
                        .status
                })
            })
            .collect();
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    });
    let failures = statuses.iter().filter(|&&s| s == 401).count();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((failures, limited), (30, 50), "{statuses:?}");
}

/// Issue 12 item 7: an IPv6 client is its /64, whatever address of it it uses.
#[test]
fn an_ipv6_client_is_its_slash_64() {
    let (server, _) =
        TestServer::with_iago(&["--address-rate", "2/600s", "--trusted-proxy", "127.0.0.1"]);
    let from = |client: &str, username: &str, password: &str| {
        server.post_form_with(
            "/api/v1/fetch_api_key",
            &[("username", username), ("password", password)],
            &[("X-Forwarded-For", client)],
        )
    };
    from("2001:db8:1:2::1", "a@example.com", "x").assert_json(401, E11);
    from("2001:db8:1:2:ffff:ffff:ffff:ffff", "b@example.com", "x").assert_json(401, E11);
    assert_eq!(from("2001:db8:1:2::99", IAGO, IAGO_PASSWORD).status, 429);
    assert_eq!(from("2001:db8:1:3::1", IAGO, IAGO_PASSWORD).status, 200);
}

const E503: &str =
    r#"{"result":"error","msg":"Service temporarily unavailable","code":"BAD_REQUEST"}"#;

#[track_caller]
fn assert_unavailable(r: &HttpResponse) {
    r.assert_json(503, E503);
    assert_eq!(r.header("retry-after"), Some("5"));
}

/// Issue 12 item 11: corrupt pages answer 503 everywhere, `/health` included.
#[test]
fn a_corrupt_database_is_unavailable_not_an_internal_error() {
    if on_postgres() {
        return;
    }
    let (server, _) = TestServer::with_iago(&[]);
    assert_eq!(server.get("/health").status, 200);
    // Every page after the first, overwritten.
    let len = std::fs::metadata(&server.db).unwrap().len();
    let conn = rusqlite::Connection::open(&server.db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    drop(conn);
    let mut bytes = std::fs::read(&server.db).unwrap();
    assert!(bytes.len() as u64 >= len.min(8192));
    for b in &mut bytes[4096..] {
        *b = 0xA5;
    }
    std::fs::write(&server.db, &bytes).unwrap();
    assert_unavailable(&server.get("/health"));
    assert_unavailable(&server.login(IAGO, IAGO_PASSWORD));
}

/// Issue 12 item 11: a database file deleted under the server is unavailable.
#[test]
fn a_deleted_database_file_makes_health_unavailable() {
    if on_postgres() {
        return;
    }
    let (server, _) = TestServer::with_iago(&[]);
    assert_eq!(server.get("/health").status, 200);
    std::fs::remove_file(&server.db).unwrap();
    assert_unavailable(&server.get("/health"));
}

fn basic_header(email: &str, key: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!(
        "Basic {}",
        Base64::encode_string(format!("{email}:{key}").as_bytes())
    )
}

/// Places in the address bucket of a loopback client.
fn loopback_address_events(conn: &rusqlite::Connection) -> i64 {
    conn.query_row(
        "SELECT count(*) FROM rate_limit_event WHERE bucket = 'addr:127.0.0.1'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// Issue 15's faults: a login whose end the store could not write is no failure. Its place
/// in the address bucket, which the store could not take back either, is given back once
/// the store answers again, so an outage never fills a client's bucket.
#[test]
fn a_login_the_store_could_not_finish_counts_no_failure() {
    if on_postgres() {
        return;
    }
    let (server, _) = slow_iago_on(&[]);
    let db = rusqlite::Connection::open(&server.db).unwrap();
    thread::scope(|s| {
        let login = s.spawn(|| server.login(IAGO, IAGO_PASSWORD));
        // Admitted, its place held, and verifying: now no write can succeed.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while loopback_address_events(&db) == 0 {
            assert!(std::time::Instant::now() < deadline, "never admitted");
            thread::sleep(Duration::from_millis(5));
        }
        db.execute_batch("BEGIN EXCLUSIVE").unwrap();
        assert_unavailable(&login.join().unwrap());
        assert_eq!(loopback_address_events(&db), 1);
        db.execute_batch("COMMIT").unwrap();
    });
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    assert_eq!(loopback_address_events(&db), 0);
}

const SECRET: &str = "s3cr3t-Pa55";

/// Runs the binary with `args` (after `--db db`) and `env`; its stdout and stderr, which must
/// say it failed.
fn failing_run(db: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = bin();
    command
        .args(["--config", "none", "--db", db])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{args:?} succeeded: {text}");
    text
}

/// Issue 20 item 6: no error message or log line repeats a secret it was given: a password
/// in an SMTP, PostgreSQL or LDAP URL (or anywhere else in it), or the LDAP bind password.
#[test]
fn no_error_repeats_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("db.sqlite3");
    let sqlite = sqlite.to_str().unwrap();
    let serve = |url: String| {
        vec![
            "serve".to_owned(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--external-url".into(),
            "http://chat.example.com".into(),
            "--mail-from".into(),
            "auth@example.com".into(),
            "--smtp-url".into(),
            url,
        ]
    };
    let mut runs: Vec<(String, Vec<String>)> = [
        format!("smtp://user:{SECRET}@mail.example.com"),
        format!("smtp://user:{SECRET}@mail.example.com/path"),
        format!("smtps://user:{SECRET}@mail.example.com?tls=none"),
        format!("ftp://user:{SECRET}@mail.example.com"),
        format!("smtp://user:{SECRET}@mail.example.com:port"),
        format!("smtp://user@mail.example.com?password={SECRET}"),
        format!("smtp://user:{SECRET}@[::1"),
    ]
    .into_iter()
    .map(|url| (sqlite.to_owned(), serve(url)))
    .collect();
    for db in [
        format!("postgres://user:{SECRET}@127.0.0.1:1/db"),
        format!("postgres://user:{SECRET}@127.0.0.1:1/db?sslmode=bogus"),
        format!("postgresql://user:{SECRET}@[::1/db"),
        format!("postgres://user:{SECRET}@127.0.0.1:1/db?password={SECRET}x"),
    ] {
        runs.push((db, vec!["user".into(), "list".into()]));
    }
    for url in [
        format!("ldap://user:{SECRET}@ldap.example.com"),
        format!("bogus://user:{SECRET}@ldap.example.com"),
    ] {
        let args = ["realm", "set", "", "--ldap-url", &url];
        runs.push((sqlite.to_owned(), args.map(str::to_owned).to_vec()));
    }
    for (db, args) in &runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let text = failing_run(db, &args, &[]);
        assert!(!text.contains(SECRET), "{args:?}: {text}");
    }
    // The bind password, on a change refused for something else.
    let filter = [
        "realm",
        "set",
        "",
        "--ldap-url",
        "ldap://ldap.example.com",
        "--ldap-user-filter",
        "(uid=x)",
    ];
    let text = failing_run(
        sqlite,
        &filter,
        &[("ZULIP_AUTH_LDAP_BIND_PASSWORD", SECRET)],
    );
    assert!(!text.contains(SECRET), "{text}");
    // From the settings file, as the packaged service reads it.
    let file = dir.path().join("zulip-auth.conf");
    std::fs::write(
        &file,
        format!("ZULIP_AUTH_SMTP_URL=smtp://user:{SECRET}@mail.example.com\n"),
    )
    .unwrap();
    let mut command = bin();
    let out = command
        .args(["--config", file.to_str().unwrap(), "--db", sqlite])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--external-url",
            "http://x.example.com",
        ])
        .args(["--mail-from", "auth@example.com"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}

/// `SELECT count(*)` behind the server's back, by a connection opened and closed for it, as
/// an operator's `sqlite3` does.
fn outside_count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Whether another process holds SQLite's shared lock on the database file, as every
/// process with an open connection does: an outside connection that closes checkpoints and
/// deletes the WAL when it finds no such lock (SQLite 3.40's `sqlite3` does; the bundled
/// one looks at the shared memory too, so it cannot tell).
fn someone_holds_the_shared_lock(db: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    // SQLite's lock bytes: PENDING_BYTE, then RESERVED, then the 510 of SHARED.
    const SHARED_FIRST: libc::off_t = 0x4000_0000 + 2;
    const SHARED_SIZE: libc::off_t = 510;
    let file = std::fs::File::open(db).unwrap();
    // SAFETY: a zeroed flock is valid; fcntl only fills in the struct passed by pointer.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = SHARED_FIRST;
    lock.l_len = SHARED_SIZE;
    // SAFETY: as above.
    let asked = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    assert_eq!(asked, 0, "{}", std::io::Error::last_os_error());
    lock.l_type != libc::F_UNLCK as libc::c_short
}

const OLD_AUDIT_ROWS: &str = "SELECT count(*) FROM audit_log WHERE at < 5";
const NEW_AUDIT_ROWS: &str = "SELECT count(*) FROM audit_log WHERE at >= 5";

/// Issue: outside readers that come and go (operators monitor with `sqlite3`) while the
/// server starts and prunes. The server held no lock of its own any more, so a reader's
/// close took itself for the last connection and deleted the WAL under the server: its
/// writes were lost or failed with a disk I/O error that stopped it. Now the server lives
/// on, the readers see each of its writes, and the pruning deletes the old rows.
#[test]
fn outside_readers_that_come_and_go_see_every_write_and_the_pruning() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if on_postgres() {
        return;
    }
    let mut server = TestServer::start(&["--audit-retention-days", "400"]);
    // Rows far older than the retention, for the pruning when the server starts again.
    rusqlite::Connection::open(&server.db)
        .unwrap()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO audit_log (at, event) SELECT 1.0, 'login_success' FROM n",
        )
        .unwrap();
    let db = server.db.clone();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let reader = s.spawn(|| {
            for _ in 0..5000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                outside_count(&db, OLD_AUDIT_ROWS);
            }
        });
        server.restart();
        for i in 0..20 {
            let before = outside_count(&db, NEW_AUDIT_ROWS);
            server
                .login(&format!("nobody{i}@example.com"), "wrong")
                .assert_json(401, E11);
            assert_eq!(outside_count(&db, NEW_AUDIT_ROWS), before + 1, "login {i}");
        }
        assert!(
            someone_holds_the_shared_lock(&db),
            "the server's lock is gone"
        );
        stop.store(true, Ordering::SeqCst);
        reader.join().unwrap();
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while outside_count(&db, OLD_AUDIT_ROWS) > 0 {
        assert!(std::time::Instant::now() < deadline, "old rows not pruned");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.get("/health").status, 200);
}
