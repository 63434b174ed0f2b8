//! Defects found by attacking the web pages as a stranger would, each pinned by the request
//! that showed it.

use crate::reset::{NEW_PASSWORD, reset_link, set_new_password};
use crate::support::{IAGO, TestServer};

/// A reset link's token is as good as the password for an hour: the access log, which
/// operators ship to other systems, must not hold it, whether the link is opened or used.
#[test]
fn the_access_log_never_holds_a_reset_token() {
    let (server, _) = TestServer::with_iago(&[]);
    let link = reset_link(&server, IAGO, &[]);
    let token = link
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(server.get(&link).status, 200);
    let r = set_new_password(&server, &link, NEW_PASSWORD, NEW_PASSWORD);
    assert_eq!(r.status, 302);
    let log = server.log_containing("POST /accounts/password/reset/");
    assert!(!log.contains(&token), "{log}");
    assert!(
        log.contains("GET /accounts/password/reset/<token>/ 200"),
        "{log}"
    );
}
