//! The handlers in-process: each endpoint's check order, on plain [`Request`]s, over a
//! throw-away database.

use base64ct::{Base64, Encoding};

use super::*;
use crate::auth::password::Argon2Config;
use crate::auth::ratelimit::Rule;
use crate::site::ExternalUrl;
use crate::store::{AuditEntry, NewUser, RealmChanges};

const PASSWORD: &str = "Correct-Horse-9";
const HOST: &str = "chat.example.com";

struct Fixture {
    api: Api,
    _dir: tempfile::TempDir,
}

fn fixture(dev: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let hasher = Arc::new(Hasher::new(Argon2Config {
        m_kib: 64,
        t: 1,
        p: 1,
    }));
    let rule = |limit| {
        Some(Rule {
            limit,
            window: 600.0,
        })
    };
    let config = ApiConfig {
        site: Site {
            external_url: Some(ExternalUrl::parse(&format!("http://{HOST}")).unwrap()),
        },
        dev,
        limits: RateLimits {
            per_username: rule(5),
            per_address: rule(3),
        },
        trusted_proxies: Vec::new(),
        ..ApiConfig::default()
    };
    let api = Api {
        store,
        hasher,
        config: Arc::new(config),
        reset_desk: None,
        oidc: Arc::new(crate::auth::oidc::RelyingParty::new(1)),
    };
    Fixture { api, _dir: dir }
}

impl Fixture {
    fn add_user(&self, email: &str, role: Role) -> i64 {
        let user = NewUser {
            email: email.to_owned(),
            full_name: String::new(),
            role,
            password: Some(self.api.hasher.hash(PASSWORD)),
            is_active: true,
            api_key: None,
        };
        self.api.store.create_users(1, &[user], "test").unwrap()[0]
    }

    fn change_root(&self, changes: RealmChanges) {
        let audit = AuditEntry::new(AuditEvent::RealmChanged, Some(1), None);
        self.api.store.update_realm(1, &changes, &audit).unwrap();
    }

    fn send(&mut self, request: Request) -> Response {
        self.api.handle(&Request {
            peer: Some("192.0.2.1".parse().unwrap()),
            ..request
        })
    }

    fn login(&mut self, username: &str, password: &str) -> Response {
        self.send(post(
            "/api/v1/fetch_api_key",
            &[("username", username), ("password", password)],
        ))
    }
}

fn post(path: &str, pairs: &[(&str, &str)]) -> Request {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('@', "%40")))
        .collect::<Vec<_>>()
        .join("&");
    Request {
        method: "POST".into(),
        path: path.into(),
        host: HOST.into(),
        content_type: Some("application/x-www-form-urlencoded".into()),
        body: body.into_bytes(),
        ..Request::default()
    }
}

fn get(path: &str) -> Request {
    Request {
        method: "GET".into(),
        path: path.into(),
        host: HOST.into(),
        ..Request::default()
    }
}

fn with_basic(mut request: Request, email: &str, key: &str) -> Request {
    let payload = Base64::encode_string(format!("{email}:{key}").as_bytes());
    request.authorization = Some(format!("Basic {payload}"));
    request
}

#[track_caller]
fn assert_error(response: &Response, expected: &ApiError) {
    assert_eq!(
        (response.status, String::from_utf8_lossy(&response.body)),
        (
            expected.status,
            String::from_utf8_lossy(&expected.to_json())
        )
    );
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn fetch_api_key_checks_in_spec_order() {
    let mut f = fixture(false);
    let iago = f.add_user("iago@example.com", Role::Admin);
    // E1 before anything.
    assert_eq!(f.send(get("/api/v1/fetch_api_key")).status, 405);
    // E2, then E3.
    let none = f.send(post("/api/v1/fetch_api_key", &[]));
    assert_error(&none, &ApiError::missing_argument("username"));
    let no_password = f.send(post("/api/v1/fetch_api_key", &[("username", "hamlet")]));
    assert_error(&no_password, &ApiError::missing_argument("password"));
    // E4 beats a bad email; E5 needs a realm.
    let mut elsewhere = post(
        "/api/v1/fetch_api_key",
        &[("username", "hamlet"), ("password", "x")],
    );
    elsewhere.host = format!("nowhere.{HOST}");
    assert_error(&f.send(elsewhere), &ApiError::nonexistent_subdomain());
    let bad_email = f.login("hamlet", "x");
    assert_error(&bad_email, &ApiError::invalid_email());
    assert_eq!(header(&bad_email, "X-RateLimit-Limit"), None, "not counted");
    // Empty password and unknown user: E11, counted.
    let empty = f.login("iago@example.com", "");
    assert_error(&empty, &ApiError::authentication_failed());
    assert_eq!(header(&empty, "X-RateLimit-Remaining"), Some("4"));
    assert_eq!(empty.log.failure, Some("WRONG_PASSWORD"));
    let unknown = f.login("nobody@example.com", PASSWORD);
    assert_eq!(unknown.log.failure, Some("UNKNOWN_USER"));
    // Success: the stored key, and the bucket cleared.
    let ok = f.login("IAGO@example.com", PASSWORD);
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.log.user_id, Some(iago));
    assert_eq!(
        header(
            &f.login("iago@example.com", PASSWORD),
            "X-RateLimit-Remaining"
        ),
        Some("4")
    );
}

#[test]
fn fetch_api_key_deactivations_and_disabled_auth() {
    let mut f = fixture(false);
    f.add_user("iago@example.com", Role::Admin);
    f.change_root(RealmChanges {
        deactivated: Some(true),
        ..RealmChanges::default()
    });
    // E8 for a user of the realm, any non-empty password; an unknown email gets E11.
    assert_error(
        &f.login("iago@example.com", "wrong"),
        &ApiError::realm_deactivated(),
    );
    assert_error(
        &f.login("nobody@example.com", "wrong"),
        &ApiError::authentication_failed(),
    );
    f.change_root(RealmChanges {
        deactivated: Some(false),
        password_auth_enabled: Some(false),
        ..RealmChanges::default()
    });
    // E9 after the limiter, so it carries the headers.
    let disabled = f.login("iago@example.com", PASSWORD);
    assert_error(&disabled, &ApiError::password_auth_disabled());
    assert_eq!(header(&disabled, "X-RateLimit-Remaining"), Some("3"));
}

#[test]
fn a_blocked_address_is_refused_before_the_username_bucket() {
    let mut f = fixture(false);
    f.add_user("iago@example.com", Role::Admin);
    for n in 0..3 {
        f.login(&format!("victim{n}@example.com"), "x");
    }
    let blocked = f.login("iago@example.com", PASSWORD);
    assert_eq!(blocked.status, 429);
    assert_eq!(header(&blocked, "X-RateLimit-Limit"), None);
    assert!(header(&blocked, "Retry-After").is_some());
    // Even E9 comes after the address limit.
    f.change_root(RealmChanges {
        password_auth_enabled: Some(false),
        ..RealmChanges::default()
    });
    assert_eq!(f.login("iago@example.com", PASSWORD).status, 429);
}

#[test]
fn users_me_checks_in_spec_order() {
    let mut f = fixture(false);
    f.add_user("iago@example.com", Role::Owner);
    let key = f.api_key("iago@example.com");
    let me = "/api/v1/users/me";
    let options = f.send(Request {
        method: "OPTIONS".into(),
        ..get(me)
    });
    assert_eq!(
        (options.status, header(&options, "Allow")),
        (204, Some("GET, HEAD"))
    );
    assert_eq!(f.send(post(me, &[])).status, 405);
    assert_error(&f.send(get(me)), &ApiError::not_logged_in());
    let mut garbled = get(me);
    garbled.authorization = Some("Basic !!!".into());
    assert_error(&f.send(garbled), &ApiError::invalid_basic_header());
    let mut bearer = get(me);
    bearer.authorization = Some("Bearer x".into());
    assert_error(&f.send(bearer), &ApiError::basic_auth_required());
    assert_error(
        &f.send(with_basic(get(me), "iago@example.com", "short")),
        &ApiError::malformed_api_key(),
    );
    assert_error(
        &f.send(with_basic(get(me), "hamlet@example.com", &key)),
        &ApiError::invalid_api_key(),
    );
    let mut other_host = with_basic(get(me), "iago@example.com", &key);
    other_host.host = format!("lear.{HOST}");
    assert_error(&f.send(other_host), &ApiError::key_of_another_realm());
    let ok = f.send(with_basic(get(me), "IAGO@example.com", &key));
    assert_eq!(ok.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    assert_eq!(
        (body["role"].as_i64(), body["is_owner"].as_bool()),
        (Some(100), Some(true))
    );
    assert!(header(&ok, "Cache-Control").unwrap().contains("no-store"));
    let user = f.api.store.user_by_api_key(&key).unwrap().unwrap();
    let audit = AuditEntry::new(AuditEvent::UserDeactivated, Some(1), Some(user.id));
    f.api.store.set_user_active(user.id, false, &audit).unwrap();
    assert_error(
        &f.send(with_basic(get(me), "iago@example.com", &key)),
        &ApiError::key_user_deactivated(),
    );
    f.change_root(RealmChanges {
        deactivated: Some(true),
        ..RealmChanges::default()
    });
    assert_error(
        &f.send(with_basic(get(me), "iago@example.com", &key)),
        &ApiError::key_realm_deactivated(),
    );
}

impl Fixture {
    fn api_key(&mut self, email: &str) -> String {
        let ok = self.login(email, PASSWORD);
        let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
        body["api_key"].as_str().unwrap().to_owned()
    }
}

#[test]
fn regenerate_replaces_the_key_at_once() {
    let mut f = fixture(false);
    f.add_user("iago@example.com", Role::Member);
    let key = f.api_key("iago@example.com");
    let path = "/api/v1/users/me/api_key/regenerate";
    assert_eq!(
        f.send(with_basic(get(path), "iago@example.com", &key))
            .status,
        405
    );
    let ok = f.send(with_basic(post(path, &[]), "iago@example.com", &key));
    assert_eq!(ok.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&ok.body).unwrap();
    let new = body["api_key"].as_str().unwrap();
    assert_ne!(new, key);
    assert_error(
        &f.send(with_basic(
            get("/api/v1/users/me"),
            "iago@example.com",
            &key,
        )),
        &ApiError::invalid_api_key(),
    );
    // A login now hands out the new key.
    assert_eq!(f.api_key("iago@example.com"), new);
}

#[test]
fn dev_routes_exist_only_in_dev_mode() {
    let mut f = fixture(false);
    f.add_user("iago@example.com", Role::Admin);
    let dev_login = post(
        "/api/v1/dev_fetch_api_key",
        &[("username", "iago@example.com")],
    );
    assert_error(&f.send(dev_login.clone()), &ApiError::not_found());
    assert_error(
        &f.send(get("/api/v1/dev_list_users")),
        &ApiError::not_found(),
    );
    let mut f = fixture(true);
    f.add_user("iago@example.com", Role::Admin);
    f.add_user("hamlet@example.com", Role::Member);
    assert_eq!(f.send(get("/api/v1/dev_fetch_api_key")).status, 405);
    assert_error(
        &f.send(post("/api/v1/dev_fetch_api_key", &[("username", "hamlet")])),
        &ApiError::invalid_email(),
    );
    assert_eq!(f.send(dev_login).status, 200);
    let list = f.send(get("/api/v1/dev_list_users"));
    let body: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(body["direct_admins"][0]["email"], "iago@example.com");
    assert_eq!(body["direct_users"][0]["email"], "hamlet@example.com");
}

#[test]
fn server_settings_and_health() {
    let mut f = fixture(false);
    let head = f.send(Request {
        method: "POST".into(),
        ..get("/api/v1/server_settings")
    });
    assert_eq!((head.status, head.body.len()), (405, 0));
    let mut elsewhere = get("/api/v1/server_settings");
    elsewhere.host = format!("nowhere.{HOST}");
    assert_error(&f.send(elsewhere), &ApiError::invalid_subdomain());
    assert_eq!(f.send(get("/api/v1/server_settings")).status, 200);
    assert_eq!(f.send(post("/health", &[])).status, 405);
    let health = f.send(get("/health"));
    assert!(health.status == 200 && health.log.quiet);
    assert_error(&f.send(get("/nope")), &ApiError::not_found());
}

#[test]
fn only_password_logins_go_to_the_hashing_threads() {
    let mut f = fixture(true);
    f.add_user("a@example.com", Role::Member);
    let mut passed_on = |request: Request| f.api.front(&request).is_none();
    let credentials = [("username", "a@example.com"), ("password", "x")];
    assert!(passed_on(post("/api/v1/fetch_api_key", &credentials)));
    assert!(passed_on(post(web::paths::LOGIN, &credentials)));
    // Refused before any hashing (a 400, an unknown realm): answered on a front thread.
    assert!(!passed_on(post("/api/v1/fetch_api_key", &credentials[..1])));
    assert!(!passed_on(post("/api/v1/fetch_api_key", &credentials[1..])));
    let not_an_email = [("username", "a"), ("password", "x")];
    assert!(!passed_on(post("/api/v1/fetch_api_key", &not_an_email)));
    let mut elsewhere = post("/api/v1/fetch_api_key", &credentials);
    elsewhere.host = format!("nowhere.{HOST}");
    assert!(!passed_on(elsewhere));
    assert!(!passed_on(get("/api/v1/fetch_api_key")));
    assert!(!passed_on(post("/api/v1/dev_fetch_api_key", &[])));
    assert!(!passed_on(get("/api/v1/server_settings")));
    assert!(!passed_on(post("/api/v1/users/me/api_key/regenerate", &[])));
    assert!(!passed_on(get("/health")));
}

/// A login's front step answers the per-username 429 as the whole handler does, and never
/// hashes: not for a full bucket, not for one with room (passed on, nothing recorded).
#[test]
fn the_front_step_of_a_login_never_hashes() {
    let mut f = fixture(false);
    f.add_user("a@example.com", Role::Member);
    let hashed = || crate::auth::password::COMPUTED.get();
    // A different address each time: the address limit (3 failures) stays out of the way.
    let attempt = |n: u8| Request {
        peer: Some(IpAddr::from([192, 0, 2, n])),
        ..post(
            "/api/v1/fetch_api_key",
            &[("username", "a@example.com"), ("password", "wrong")],
        )
    };
    let before = hashed();
    assert!(f.api.front(&attempt(1)).is_none());
    assert_eq!(hashed(), before);
    // The limit's 5 failures, each verified by the whole handler: a hash each. The look
    // above recorded nothing, or the fifth would be refused.
    for n in 1..=5 {
        assert_eq!(f.api.handle(&attempt(n)).status, 401);
    }
    assert_eq!(hashed(), before + 5);
    let early = f
        .api
        .front(&attempt(6))
        .expect("answered on the front thread");
    assert_eq!(hashed(), before + 5);
    let whole = f.api.handle(&attempt(7));
    assert_eq!(hashed(), before + 5);
    // The same answer, but for the seconds left, which the clock moved meanwhile.
    let names = |r: &Response| r.headers.iter().map(|(n, _)| *n).collect::<Vec<_>>();
    let without_seconds = |r: &Response| {
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.split_once("\"retry-after\":").unwrap().0.to_owned()
    };
    assert_eq!(
        (early.status, names(&early), without_seconds(&early)),
        (whole.status, names(&whole), without_seconds(&whole))
    );
    assert_eq!(early.status, 429);
    assert_eq!(header(&early, "X-RateLimit-Remaining"), Some("0"));
    assert_eq!(
        (early.log.failure, early.log.login, early.log.route),
        (whole.log.failure, whole.log.login, whole.log.route)
    );
    assert_eq!(early.log.failure, Some("RATE_LIMIT_HIT"));
}
