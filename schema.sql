-- The zulip-auth schema, as numbered migrations. A database at PRAGMA user_version N runs
-- every section numbered above N, in order, each in its own transaction; a new database
-- runs them all. A released section is never edited: changes go in a new section.

-- migration 1
CREATE TABLE realm (
    id INTEGER PRIMARY KEY,
    -- '' is the root realm.
    subdomain TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- HTML, as Zulip's.
    description TEXT NOT NULL DEFAULT '',
    -- Absolute or '/'-relative URL; NULL means Zulip's default logo.
    icon_url TEXT,
    deactivated INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1)),
    password_auth_enabled INTEGER NOT NULL DEFAULT 1 CHECK (password_auth_enabled IN (0, 1)),
    date_created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now'))
);

INSERT INTO realm (subdomain, name) VALUES ('', 'Zulip');

CREATE TABLE user (
    -- AUTOINCREMENT: ids are never reused, even after the newest user is deleted.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    realm_id INTEGER NOT NULL REFERENCES realm (id),
    -- The stored spelling; unique per realm without regard to case.
    delivery_email TEXT NOT NULL COLLATE NOCASE,
    full_name TEXT NOT NULL DEFAULT '',
    -- 100 owner, 200 admin, 300 moderator, 400 member, 600 guest.
    role INTEGER NOT NULL DEFAULT 400 CHECK (role IN (100, 200, 300, 400, 600)),
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    -- A PHC or Django hash string; NULL or '!…' is an unusable password.
    password TEXT,
    -- Minted on the first successful login; returned unchanged afterwards.
    api_key TEXT UNIQUE,
    date_joined TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')),
    UNIQUE (realm_id, delivery_email)
);

-- migration 2
-- Rate-limit history, so a restart or a crash does not reset it. A bucket is
-- 'user:' || the raw username, or 'addr:' || a client address; `at` is epoch seconds.
CREATE TABLE rate_limit_event (
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX rate_limit_event_bucket ON rate_limit_event (bucket, at);
CREATE INDEX rate_limit_event_at ON rate_limit_event (at);

-- migration 3
-- Who did what, for operators: logins, keys, passwords, user and realm changes. Never a
-- password or a key. Rows older than --audit-retention-days are pruned off the request path.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    -- Epoch seconds.
    at REAL NOT NULL,
    -- login_success, login_failure, key_minted, key_rotated, password_changed, user_created,
    -- user_deactivated, user_reactivated, realm_created, realm_changed.
    event TEXT NOT NULL,
    realm_id INTEGER,
    user_id INTEGER,
    -- For failures: the wire code (wire.md §5.3), AUTHENTICATION_FAILED split into UNKNOWN_USER and WRONG_PASSWORD.
    reason TEXT,
    remote_addr TEXT,
    user_agent TEXT,
    -- What changed, in words (a realm's settings, "imported", "via dev login").
    detail TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user ON audit_log (user_id, at);

-- migration 4
-- Password backends per realm, as Zulip's: the email backend (local password hashes) and
-- LDAP. password_auth_enabled still switches both off at once.
ALTER TABLE realm ADD COLUMN email_auth_enabled INTEGER NOT NULL DEFAULT 1 CHECK (email_auth_enabled IN (0, 1));
ALTER TABLE realm ADD COLUMN ldap_enabled INTEGER NOT NULL DEFAULT 0 CHECK (ldap_enabled IN (0, 1));
-- ldap:// (StartTLS when offered) or ldaps://; NULL: LDAP not configured.
ALTER TABLE realm ADD COLUMN ldap_url TEXT;
ALTER TABLE realm ADD COLUMN ldap_ca_file TEXT;
ALTER TABLE realm ADD COLUMN ldap_starttls_required INTEGER NOT NULL DEFAULT 0 CHECK (ldap_starttls_required IN (0, 1));
ALTER TABLE realm ADD COLUMN ldap_bind_dn TEXT;
-- The service account's secret, read from a file or the environment, never from argv.
ALTER TABLE realm ADD COLUMN ldap_bind_password TEXT;
ALTER TABLE realm ADD COLUMN ldap_user_search TEXT NOT NULL DEFAULT '';
-- %(user)s stands for the LDAP username, escaped.
ALTER TABLE realm ADD COLUMN ldap_user_filter TEXT NOT NULL DEFAULT '(uid=%(user)s)';
ALTER TABLE realm ADD COLUMN ldap_append_domain TEXT;
ALTER TABLE realm ADD COLUMN ldap_email_attr TEXT;
ALTER TABLE realm ADD COLUMN ldap_full_name_attr TEXT;
ALTER TABLE realm ADD COLUMN ldap_create_users INTEGER NOT NULL DEFAULT 0 CHECK (ldap_create_users IN (0, 1));

-- migration 5
-- The browser sign-in (web.md §2, §3) and its second factor (web.md §4). Times are epoch
-- seconds; a token handed to a browser is stored only as its lowercase hex SHA-256.
-- Whether server_settings lists the "Sign in with …" method, the button's name (NULL: the
-- realm's name), and whether phone logins must go through it, with a second factor.
ALTER TABLE realm ADD COLUMN web_login_enabled INTEGER NOT NULL DEFAULT 0 CHECK (web_login_enabled IN (0, 1));
ALTER TABLE realm ADD COLUMN web_login_display_name TEXT;
ALTER TABLE realm ADD COLUMN require_2fa INTEGER NOT NULL DEFAULT 0 CHECK (require_2fa IN (0, 1));
-- A user's TOTP key, active from the moment it is stored.
CREATE TABLE totp_device (
    user_id INTEGER PRIMARY KEY REFERENCES user (id),
    -- RFC 4648 base32, as in the otpauth URI. Never logged.
    secret TEXT NOT NULL,
    -- The newest accepted step (epoch seconds / 30): a code of that step or an older one is a
    -- replay. NULL before the first code.
    last_step INTEGER,
    created_at REAL NOT NULL
);
-- A browser between two steps: what its step token (a hidden field) stands for, so that any
-- instance can serve the next step. Deleted when used; expired rows are pruned.
CREATE TABLE web_login_step (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user (id),
    -- The username as typed: its rate-limit bucket counts the codes too.
    username TEXT NOT NULL,
    -- The password hash the sign-in verified, and its upgrade if one is due: the finish
    -- writes nothing if the password changed meanwhile (NULL for LDAP).
    verified_hash TEXT,
    rehash TEXT,
    -- NULL: a code of the user's key is asked for. Otherwise a first code of this new key
    -- (base32), which then becomes the user's.
    enrol_secret TEXT,
    -- 1: an accepted code finishes a sign-in, and the key is handed out. 0: a signed-in
    -- user turns the second factor on.
    finishes_login INTEGER NOT NULL CHECK (finishes_login IN (0, 1)),
    expires_at REAL NOT NULL
);
CREATE INDEX web_login_step_expires ON web_login_step (expires_at);

-- migration 6
-- Self-service (web.md §6, §7). Secrets handed to a person are stored only as the lowercase
-- hex SHA-256 of the secret; times are epoch seconds.
-- A password-reset link. A user has at most one: a newer request replaces it, and using it or
-- any password change deletes it.
CREATE TABLE password_reset (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL UNIQUE REFERENCES user (id),
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
-- A signed-in browser session. It ends when it is idle or old (checked on every use), when the
-- person signs out, and when the password changes or the user is deactivated (rows deleted).
CREATE TABLE web_session (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user (id),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL
);
CREATE INDEX web_session_user ON web_session (user_id);

-- migration 7
-- Several instances may share one database (PostgreSQL): each audit row names the one that
-- wrote it (--instance-name, the host name by default). NULL for rows written before.
ALTER TABLE audit_log ADD COLUMN instance TEXT;

-- migration 8
-- Zulip's JWT login (wire.md §17): the key file's contents, a shared secret or a PEM public
-- key (NULL: off), as the LDAP bind password is kept; the algorithms accepted with it,
-- comma-separated; and ours: whether a token must carry exp, and how far ahead it may lie
-- in seconds.
ALTER TABLE realm ADD COLUMN jwt_key TEXT;
ALTER TABLE realm ADD COLUMN jwt_algorithms TEXT NOT NULL DEFAULT 'HS256';
ALTER TABLE realm ADD COLUMN jwt_require_exp INTEGER NOT NULL DEFAULT 1 CHECK (jwt_require_exp IN (0, 1));
ALTER TABLE realm ADD COLUMN jwt_max_lifetime INTEGER NOT NULL DEFAULT 300 CHECK (jwt_max_lifetime > 0);

-- migration 9
-- A key per device (wire.md §9.5). Under per_device every login makes a key of its own,
-- stored only as its lowercase hex SHA-256; the user's own key (user.api_key) keeps working.
ALTER TABLE realm ADD COLUMN api_keys_per_device INTEGER NOT NULL DEFAULT 0
    CHECK (api_keys_per_device IN (0, 1));
ALTER TABLE realm ADD COLUMN api_key_idle_days INTEGER NOT NULL DEFAULT 90
    CHECK (api_key_idle_days > 0);
-- A device's key: how it was made (the login's method word), the client's User-Agent
-- (trimmed, no control characters), the name a user gave it on the account page (NULL: named
-- after the User-Agent) and when it was last used (coarsely; NULL: never).
CREATE TABLE api_key (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user (id),
    key_hash TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    user_agent TEXT,
    name TEXT,
    created_at REAL NOT NULL,
    last_used_at REAL
);
CREATE INDEX api_key_user ON api_key (user_id);
-- Recovery codes for the second factor (web.md §4.1): single use, stored only as the
-- lowercase hex SHA-256 of the user's id and the code; a used code's row is deleted.
CREATE TABLE recovery_code (
    code_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user (id),
    created_at REAL NOT NULL
);
CREATE INDEX recovery_code_user ON recovery_code (user_id);
-- A mail for every new login (web.md §8.1): on unless the realm turns it off, or the user
-- (a row here) on the account page.
ALTER TABLE realm ADD COLUMN login_mail INTEGER NOT NULL DEFAULT 1 CHECK (login_mail IN (0, 1));
CREATE TABLE login_mail_off (
    user_id INTEGER PRIMARY KEY REFERENCES user (id)
);

-- migration 10
-- A realm's OpenID providers (web.md §10): the client secret as the LDAP bind password is
-- kept, never printed; scopes separated by spaces; the button's words and icon (NULL: none).
CREATE TABLE idp (
    id INTEGER PRIMARY KEY,
    realm_id INTEGER NOT NULL REFERENCES realm (id),
    name TEXT NOT NULL,
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    display_name TEXT NOT NULL,
    display_icon TEXT,
    scopes TEXT NOT NULL,
    auto_signup INTEGER NOT NULL DEFAULT 0 CHECK (auto_signup IN (0, 1)),
    UNIQUE (realm_id, name)
);
-- A sign-in sent to a provider, until its callback (web.md §10.2): found by the digest of its
-- state, taken once, bound to the browser by the digest of a cookie; the nonce and the PKCE
-- verifier; the app's pad (NULL: a browser sign-in); the signed-in user it re-confirms
-- (NULL: a sign-in).
CREATE TABLE oidc_pending (
    state_hash TEXT PRIMARY KEY,
    idp_id INTEGER NOT NULL REFERENCES idp (id),
    browser_hash TEXT NOT NULL,
    nonce TEXT NOT NULL,
    verifier TEXT NOT NULL,
    pad TEXT,
    user_id INTEGER REFERENCES user (id),
    started_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX oidc_pending_expires ON oidc_pending (expires_at);
-- The method word of a sign-in's first step (web, oidc): the finish after the code is
-- audited, counted and keyed with it.
ALTER TABLE web_login_step ADD COLUMN method TEXT NOT NULL DEFAULT 'web';

-- migration 11
-- Passkeys (web.md §9). A realm offers them unless turned off (realm set --passkeys off).
ALTER TABLE realm ADD COLUMN passkeys INTEGER NOT NULL DEFAULT 1 CHECK (passkeys IN (0, 1));
-- A user's passkey: its credential id (base64url, unique across the server), the user handle
-- the authenticator keeps, webauthn-rs' serialised credential (a public key, no secret), the
-- name the user gave it, and the highest signature counter accepted so far.
CREATE TABLE passkey (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES user (id),
    credential_id TEXT NOT NULL UNIQUE,
    user_handle TEXT NOT NULL,
    credential TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used_at REAL,
    counter INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX passkey_user ON passkey (user_id);
-- A ceremony between its options and the browser's answer, under the lowercase hex SHA-256 of
-- the id the browser holds: taken (deleted) by the answer, pruned once expired.
CREATE TABLE passkey_ceremony (
    id_hash TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires_at REAL NOT NULL
);

-- migration 12
-- The realm rows' version (issue 25): one row, bumped by these triggers in the transaction of
-- any change to realm, whoever makes it. Each instance remembers realm rows while it is
-- unchanged (src/store/realm_cache.rs), and reads it at each use.
CREATE TABLE realm_version (
    single INTEGER PRIMARY KEY CHECK (single = 1),
    version INTEGER NOT NULL
);
INSERT INTO realm_version (single, version) VALUES (1, 0);
CREATE TRIGGER realm_inserted AFTER INSERT ON realm
BEGIN UPDATE realm_version SET version = version + 1; END;
CREATE TRIGGER realm_updated AFTER UPDATE ON realm
BEGIN UPDATE realm_version SET version = version + 1; END;
CREATE TRIGGER realm_deleted AFTER DELETE ON realm
BEGIN UPDATE realm_version SET version = version + 1; END;

-- migration 13
-- The realm version covers each realm's OpenID providers too (issue 25): these triggers bump it
-- in the transaction of any change to idp, whoever makes it, as migration 12's do for realm.
-- Each instance remembers a realm's providers with its row (src/store/realm_cache.rs).
CREATE TRIGGER idp_inserted AFTER INSERT ON idp
BEGIN UPDATE realm_version SET version = version + 1; END;
CREATE TRIGGER idp_updated AFTER UPDATE ON idp
BEGIN UPDATE realm_version SET version = version + 1; END;
CREATE TRIGGER idp_deleted AFTER DELETE ON idp
BEGIN UPDATE realm_version SET version = version + 1; END;
