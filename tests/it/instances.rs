//! Several instances on one store: each audit row names the instance that wrote it.

use crate::support::*;

fn instances_of(server: &TestServer) -> Vec<(String, Option<String>)> {
    server
        .stdout(&["audit", "--json"])
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                row["event"].as_str().unwrap().to_owned(),
                row["instance"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[test]
fn audit_rows_name_their_instance() {
    let (server, _) = TestServer::with_iago(&["--instance-name", "app-1"]);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 200);
    let out = server.cli(
        &["--instance-name", "operator", "user", "rotate-key", IAGO],
        "",
    );
    assert!(out.status.success());
    let rows = instances_of(&server);
    let of = |event: &str| {
        rows.iter()
            .find(|(e, _)| e == event)
            .unwrap_or_else(|| panic!("no {event} in {rows:?}"))
            .1
            .clone()
    };
    assert_eq!(of("login_success").as_deref(), Some("app-1"));
    assert_eq!(of("key_minted").as_deref(), Some("app-1"));
    assert_eq!(of("key_rotated").as_deref(), Some("operator"));
    // Without the flag, the host name.
    let created = of("user_created").unwrap();
    assert!(!created.is_empty() && created != "app-1" && created != "operator");
    let table = server.stdout(&["audit"]);
    assert!(
        table.lines().next().unwrap().contains("INSTANCE"),
        "{table}"
    );
    let empty = server.cli(&["--instance-name", "", "audit"], "");
    assert_eq!(empty.status.code(), Some(2), "an argument error");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("--instance-name"));
}
