//! Admin commands run while the server serves apply to the very next request (wire.md §2),
//! though each worker caches realm rows and rate-limit buckets: one worker, so every request
//! meets the cache its predecessor filled.

use base64ct::{Base64, Encoding};

use crate::support::*;

fn basic(email: &str, key: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{email}:{key}").as_bytes())
    )
}

#[test]
fn admin_changes_apply_to_the_very_next_request() {
    let (server, _) = TestServer::with_iago(&[
        "--workers",
        "1",
        "--auth-rate",
        "3/1h",
        "--address-rate",
        "off",
    ]);
    let realm_name = || server.get("/api/v1/server_settings").json()["realm_name"].clone();

    // A realm row: read twice (the second from the cache), then renamed.
    realm_name();
    server.ok(&["realm", "set", "", "--name", "Renamed"]);
    assert_eq!(realm_name(), "Renamed");
    server.ok(&["realm", "set", "", "--name", "Again"]);
    assert_eq!(realm_name(), "Again");

    // A full username bucket, refused twice, then cleared by a new password.
    for _ in 0..3 {
        server.login(IAGO, "wrong").assert_json(401, E11);
    }
    assert_eq!(server.login(IAGO, "wrong").status, 429);
    assert_eq!(server.login(IAGO, IAGO_PASSWORD).status, 429);
    let out = server.cli(
        &["user", "set-password", IAGO, "--password-stdin"],
        "Another-Horse-42\n",
    );
    assert!(out.status.success(), "{out:?}");
    let key = server.login(IAGO, "Another-Horse-42").api_key();
    server.login(IAGO, IAGO_PASSWORD).assert_json(401, E11);

    // The user, then the realm (its row by id this time), deactivated.
    let me = || {
        let auth = basic(IAGO, &key);
        server.send("GET", "/api/v1/users/me", &[("Authorization", &auth)], b"")
    };
    assert_eq!(me().status, 200);
    assert_eq!(me().status, 200);
    server.ok(&["user", "deactivate", IAGO]);
    assert_eq!(me().json()["msg"], "Account is deactivated");
    server.ok(&["realm", "deactivate", ""]);
    assert_eq!(me().json()["msg"], "This organization has been deactivated");
}
