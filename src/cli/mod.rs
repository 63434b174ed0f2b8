//! The command line: clap's definitions and [`run`], which validates a command's arguments
//! into a configuration and hands it to the module that carries it out.
//!
//! The global flags and the flags of `serve` also read `ZULIP_AUTH_` plus their name in upper
//! snake case, so a systemd `EnvironmentFile` can configure the server. The flags of the admin
//! commands read no environment: a realm's name or a user's full name is meant for one call,
//! and a variable left in the shell would silently apply it to the next command.

mod admin;
mod allowlist;
mod bench;
pub mod config;
mod idp;
mod import;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::ApiConfig;
use crate::auth::password::Argon2Config;
use crate::auth::ratelimit::{RateLimits, RuleSetting};
use crate::auth::reset;
use crate::clock::parse_duration;
use crate::error::{Error, invalid};
use crate::logging::LogFormat;
use crate::mail::{MailSettings, SmtpUrl};
use crate::server::{self, Listen, ServeConfig};
use crate::site::{ExternalUrl, Site};
use crate::store::{Database, LdapSettings, Role, SessionLimits, set_instance_name};
use crate::text::first_control;

#[derive(Debug, Parser)]
#[command(
    name = "zulip-auth",
    version = crate::VERSION,
    about = "A small server that speaks Zulip's password-login API",
    after_help = "Example:\n  zulip-auth serve --demo"
)]
pub struct Cli {
    /// SQLite database file, or postgres://USER@HOST[:PORT]/DBNAME (password from
    /// PGPASSWORD or ~/.pgpass, never the URL); created and migrated on first use
    /// [default: $STATE_DIRECTORY/zulip-auth.sqlite3, else ./zulip-auth.sqlite3]
    #[arg(long, global = true, env = "ZULIP_AUTH_DB", value_name = "PATH|URL")]
    pub db: Option<PathBuf>,

    /// This process's name in the audit trail and in PostgreSQL's session list
    /// [default: the host name]
    #[arg(
        long,
        global = true,
        env = "ZULIP_AUTH_INSTANCE_NAME",
        value_name = "NAME",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub instance_name: Option<String>,

    /// Argon2id memory cost of new hashes, in KiB
    #[arg(
        long = "argon2-m",
        global = true,
        env = "ZULIP_AUTH_ARGON2_M",
        default_value_t = 19456
    )]
    pub argon2_m: u32,

    /// Argon2id iterations of new hashes
    #[arg(
        long = "argon2-t",
        global = true,
        env = "ZULIP_AUTH_ARGON2_T",
        default_value_t = 2
    )]
    pub argon2_t: u32,

    /// Argon2id lanes of new hashes
    #[arg(
        long = "argon2-p",
        global = true,
        env = "ZULIP_AUTH_ARGON2_P",
        default_value_t = 1
    )]
    pub argon2_p: u32,

    /// Log lines as text or as one JSON object per line
    #[arg(long, global = true, env = "ZULIP_AUTH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub config: config::ConfigArg,

    #[command(subcommand)]
    pub command: Command,
}

// `realm set` carries every realm setting; the value is parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API
    #[command(
        after_help = "Examples:\n  zulip-auth serve --demo\n  zulip-auth serve --listen 127.0.0.1:9991 --external-url https://chat.example.com"
    )]
    Serve(ServeArgs),
    /// Manage realms (organizations)
    #[command(subcommand)]
    Realm(RealmCommand),
    /// Manage users
    #[command(subcommand)]
    User(UserCommand),
    /// Manage a realm's OpenID Connect identity providers ("Sign in with …")
    #[command(subcommand)]
    Idp(IdpCommand),
    /// Time argon2 verification at --argon2-m/-t/-p, or suggest parameters for a time budget
    #[command(
        after_help = "Examples:\n  zulip-auth bench-hash\n  zulip-auth --argon2-m 102400 --argon2-t 2 --argon2-p 8 bench-hash\n  zulip-auth bench-hash --target-ms 50"
    )]
    BenchHash {
        /// Verifications to time (per thread)
        #[arg(long, default_value_t = 30, value_name = "N", value_parser = at_least_one)]
        samples: usize,
        /// Also time N threads verifying at once, and report the logins per second they bound
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = at_least_one, conflicts_with = "target_ms")]
        threads: usize,
        /// Suggest the largest memory cost (at the given -t and -p) whose median verification
        /// stays within this many milliseconds
        #[arg(long, value_name = "MS", value_parser = positive_ms, allow_negative_numbers = true)]
        target_ms: Option<f64>,
        /// One JSON object instead of a sentence
        #[arg(long)]
        json: bool,
    },
    /// Print each setting `serve` would run with (these flags added), its value and where it
    /// came from: flag, environment, file, credential or default; secrets as (set)
    #[command(
        after_help = "Examples:\n  zulip-auth config\n  sudo -u zulip-auth zulip-auth config --workers 4"
    )]
    Config(ServeArgs),
    /// Back up or check the database
    #[command(subcommand)]
    Db(DbCommand),
    /// Show the audit trail: logins, keys, passwords, user and realm changes
    #[command(
        after_help = "Examples:\n  zulip-auth audit --since 1d\n  zulip-auth audit --user iago@example.com --since 30d --json"
    )]
    Audit {
        /// Only this user's entries (of --realm, else of the root realm)
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// Only this realm's entries, by subdomain ('' for the root realm) [default: every realm]
        #[arg(long = "realm", value_name = "SUB")]
        realm: Option<String>,
        /// How far back, as a number and s, m, h or d [default: everything kept]
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
    },
}

/// Each worker is two threads (a front and a hashing one); beyond this, a typo.
const MAX_WORKERS: i64 = 1024;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT or localhost:PORT (127.0.0.1; port 0 picks a free port),
    /// or unix:/PATH (for nginx on this machine; its forwarding headers are trusted). A socket
    /// passed by systemd (LISTEN_FDS) is used instead
    #[arg(long, env = "ZULIP_AUTH_LISTEN", default_value = "127.0.0.1:9991")]
    pub listen: Listen,

    /// The root realm's URL, scheme://host[:port]; realm SUB lives at scheme://SUB.host[:port].
    /// Without it every Host is the root realm and URLs are built from the Host header
    #[arg(long, env = "ZULIP_AUTH_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,

    /// Threads that verify passwords (peak memory about N × argon2 m), and as many front
    /// threads for everything else [default: the number of cores]
    #[arg(long, env = "ZULIP_AUTH_WORKERS", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=MAX_WORKERS))]
    pub workers: Option<u16>,

    /// Mount the development endpoints dev_fetch_api_key and dev_list_users, which hand out
    /// any user's key without a password; refused on a listener that is not loopback
    #[arg(long, env = "ZULIP_AUTH_DEV")]
    pub dev: bool,

    /// Allow --dev on a listener that is not loopback
    #[arg(long, env = "ZULIP_AUTH_DEV_ALLOW_REMOTE", requires = "dev")]
    pub dev_allow_remote: bool,

    /// Serve a throw-away database seeded with demo users (iago@zulip.com / abcd1234)
    #[arg(long, env = "ZULIP_AUTH_DEMO")]
    pub demo: bool,

    /// Seconds to let requests in flight finish after SIGTERM or SIGINT
    #[arg(
        long,
        env = "ZULIP_AUTH_SHUTDOWN_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    pub shutdown_timeout: u64,

    /// Password attempts per username, as LIMIT/WINDOW (s, m or h), or off
    #[arg(
        long,
        env = "ZULIP_AUTH_AUTH_RATE",
        default_value = "5/1800s",
        value_name = "RATE"
    )]
    pub auth_rate: RuleSetting,

    /// Failed logins per client address, as LIMIT/WINDOW (s, m or h), or off
    #[arg(
        long,
        env = "ZULIP_AUTH_ADDRESS_RATE",
        default_value = "30/600s",
        value_name = "RATE"
    )]
    pub address_rate: RuleSetting,

    /// A proxy whose X-Forwarded-For / X-Real-IP names the client; repeatable
    /// (behind nginx: 127.0.0.1)
    #[arg(
        long,
        env = "ZULIP_AUTH_TRUSTED_PROXY",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<IpAddr>,

    #[command(flatten)]
    pub audit_retention: AuditRetentionArg,

    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArg,

    #[command(flatten)]
    pub socket: crate::server::SocketArgs,

    #[command(flatten)]
    pub mail: MailArgs,

    #[command(flatten)]
    pub reset_link: LinkLifetime,

    /// A browser session ends after this long unused (a number and s, m, h or d)
    #[arg(
        long,
        env = "ZULIP_AUTH_SESSION_IDLE_TIMEOUT",
        value_name = "DURATION",
        default_value = "30m",
        value_parser = parse_duration
    )]
    pub session_idle_timeout: Duration,

    /// A browser session ends this long after signing in, however it is used
    #[arg(
        long,
        env = "ZULIP_AUTH_SESSION_LIFETIME",
        value_name = "DURATION",
        default_value = "12h",
        value_parser = parse_duration
    )]
    pub session_lifetime: Duration,
}

/// Outgoing mail, for password resets. The SMTP password comes from ZULIP_AUTH_SMTP_PASSWORD
/// or a file, never from the command line.
#[derive(Debug, Args)]
pub struct MailArgs {
    /// The relay: smtp://[USER@]HOST[:PORT] (STARTTLS required, port 587), smtps://… (TLS,
    /// port 465), or smtp://HOST:PORT?tls=none (plain text, loopback only). Needs
    /// --mail-from and --external-url; without it, the reset page sends people to you
    #[arg(long, env = "ZULIP_AUTH_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<SmtpUrl>,

    /// The sender of reset mail: an address, or "Name <address>"
    #[arg(long, env = "ZULIP_AUTH_MAIL_FROM", value_name = "ADDRESS")]
    pub mail_from: Option<String>,

    /// File holding the SMTP password (or set ZULIP_AUTH_SMTP_PASSWORD, or pass the systemd
    /// credential ZULIP_AUTH_SMTP_PASSWORD)
    #[arg(long, env = "ZULIP_AUTH_SMTP_PASSWORD_FILE", value_name = "PATH")]
    pub smtp_password_file: Option<PathBuf>,
}

// `Set` carries every realm setting; the value is parsed once per process.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RealmCommand {
    /// Create a realm
    #[command(after_help = "Example:\n  zulip-auth realm create lear --name 'Lear & Co.'")]
    Create {
        subdomain: String,
        /// Display name
        #[arg(long)]
        name: String,
    },
    /// List realms with the sign-in methods in force (password auth is on only when a backend
    /// checks passwords) and user counts
    #[command(after_help = "Example:\n  zulip-auth realm list --json")]
    List {
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Deactivate a realm: its users can no longer log in
    #[command(after_help = "Example:\n  zulip-auth realm deactivate lear")]
    Deactivate { subdomain: String },
    /// Reactivate a deactivated realm
    #[command(after_help = "Example:\n  zulip-auth realm reactivate lear")]
    Reactivate { subdomain: String },
    /// Change a realm's settings
    #[command(
        after_help = "Examples:\n  zulip-auth realm set '' --name 'Example Org' --password-auth on\n  zulip-auth realm set '' --jwt-key-file /etc/zulip-auth/jwt.key --jwt-algorithms HS256\n  ZULIP_AUTH_LDAP_BIND_PASSWORD=secret zulip-auth realm set '' --ldap-url ldap://ldap.example.com \\\n    --ldap-bind-dn cn=zulip,dc=example,dc=com --ldap-user-search ou=people,dc=example,dc=com \\\n    --ldap-user-filter '(uid=%(user)s)' --ldap-append-domain example.com --ldap-full-name-attr cn"
    )]
    Set {
        subdomain: String,
        #[arg(long)]
        name: Option<String>,
        /// HTML shown on the login page
        #[arg(long)]
        description: Option<String>,
        /// Absolute or /-relative icon URL
        #[arg(long, value_name = "URL")]
        icon: Option<String>,
        /// Whether users may log in with a password at all (email and LDAP backends)
        #[arg(long)]
        password_auth: Option<OnOff>,
        /// Whether local passwords (the email backend) are checked
        #[arg(long)]
        email_auth: Option<OnOff>,
        #[command(flatten)]
        ldap: LdapArgs,
        #[command(flatten)]
        web: WebLoginArgs,
        #[command(flatten)]
        jwt: JwtArgs,
        #[command(flatten)]
        keys: KeyArgs,
    },
}

/// Zulip's JWT login, `POST /api/v1/jwt/fetch_api_key` (wire.md §17): an organization's
/// portal trades a token signed with the realm's key for a user's API key.
#[derive(Debug, Args)]
pub struct JwtArgs {
    /// File holding the shared secret (HS*) or the PEM public key; '' turns the JWT login off
    #[arg(long, value_name = "PATH")]
    pub jwt_key_file: Option<String>,
    /// The algorithms accepted with the key, comma-separated [default: HS256]
    #[arg(long, value_name = "ALGORITHMS")]
    pub jwt_algorithms: Option<String>,
    /// Whether a token must carry exp; off accepts tokens without expiry, as Zulip does
    /// [default: on]
    #[arg(long, value_name = "JWT_REQUIRE_EXP")]
    pub jwt_require_exp: Option<OnOff>,
    /// How far ahead a token's exp may lie, in seconds [default: 300]
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(i64).range(1..))]
    pub jwt_max_lifetime: Option<i64>,
}

/// API keys: one per user as in Zulip, or one per device (wire.md §9.5); and login mail.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Mail each user after every new login, as Zulip does (when mail is set up)
    #[arg(long, value_name = "ON_OFF")]
    pub login_mail: Option<OnOff>,
    /// per-user: one key per user, as Zulip; per-device: every login makes a key of its own
    #[arg(long, value_name = "MODE")]
    pub api_keys: Option<KeyMode>,
    /// A device's key unused this many days is revoked [default: 90]
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub api_key_idle_days: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyMode {
    PerUser,
    PerDevice,
}

/// The browser sign-in at /accounts/login/, which the pages always serve; these decide what
/// the apps are offered.
#[derive(Debug, Args)]
pub struct WebLoginArgs {
    /// List the browser sign-in in server_settings, as a "Sign in with …" button in the apps
    #[arg(long, env = "ZULIP_AUTH_WEB_LOGIN")]
    pub web_login: Option<OnOff>,
    /// The button's name [default: the realm's name]; '' goes back to the default
    #[arg(long, env = "ZULIP_AUTH_WEB_LOGIN_NAME", value_name = "NAME")]
    pub web_login_name: Option<String>,
    /// Phone logins only through the browser, with a second factor: fetch_api_key refuses
    /// passwords, and users without a factor enrol at their first browser sign-in
    #[arg(long = "require-2fa", env = "ZULIP_AUTH_REQUIRE_2FA")]
    pub require_2fa: Option<OnOff>,
    /// Offer passkeys on the sign-in and account pages, where the server has an
    /// --external-url [default: on]
    #[arg(long, value_name = "ON_OFF")]
    pub passkeys: Option<OnOff>,
}

/// A realm's LDAP directory, as Zulip's `AUTH_LDAP_*` settings. An empty value unsets an
/// optional one (`--ldap-ca-file ''`).
#[derive(Debug, Args)]
pub struct LdapArgs {
    #[command(flatten)]
    pub settings: LdapSettings,
    /// File holding the service account's password (or set ZULIP_AUTH_LDAP_BIND_PASSWORD)
    #[arg(long, value_name = "PATH")]
    pub ldap_bind_password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print the new id; the password is prompted twice on a terminal
    #[command(
        after_help = "Examples:\n  zulip-auth user create iago@example.com --full-name Iago --role admin\n  printf '%s\\n' 'Correct-Horse-9' | zulip-auth user create iago@example.com --password-stdin\n  zulip-auth user create hamlet@example.com --no-password"
    )]
    Create {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        #[arg(long, default_value = "")]
        full_name: String,
        #[arg(long, value_enum, default_value_t = Role::Member)]
        role: Role,
        /// Read the password from the first line of stdin instead of prompting
        #[arg(long)]
        password_stdin: bool,
        /// No password: the user cannot log in with one until `user set-password`
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// List a realm's users (never their keys)
    #[command(after_help = "Example:\n  zulip-auth user list --realm lear --json")]
    List {
        #[command(flatten)]
        realm: RealmArg,
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show one user: role, state, password hash kind, whether a key exists
    #[command(after_help = "Example:\n  zulip-auth user show iago@example.com")]
    Show {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Set a user's password (prompted twice on a terminal); clears their rate-limit history
    #[command(
        after_help = "Examples:\n  zulip-auth user set-password iago@example.com\n  printf '%s\\n' \"$NEW_PASSWORD\" | zulip-auth user set-password iago@example.com --password-stdin"
    )]
    SetPassword {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        /// Read the password from the first line of stdin instead of prompting
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print a fresh password-reset link to pass on by hand (no mail needed); it replaces the
    /// user's older link
    #[command(
        after_help = "Example:\n  zulip-auth user reset-link iago@example.com --external-url https://chat.example.com"
    )]
    ResetLink {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        /// Print the whole link: the realm's URL (from the root realm's, as serve's) and the path
        #[arg(long, env = "ZULIP_AUTH_EXTERNAL_URL", value_name = "URL")]
        external_url: Option<String>,
        #[command(flatten)]
        lifetime: LinkLifetime,
    },
    /// Replace a user's API key and print the new one; the old key stops working at once
    #[command(after_help = "Example:\n  zulip-auth user rotate-key iago@example.com")]
    RotateKey {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// List a user's API keys: each device's (per-device realms) and their own, id 0
    #[command(after_help = "Example:\n  zulip-auth user keys iago@example.com")]
    Keys {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Revoke one of a user's API keys by its id (see `user keys`), or every one with --all
    #[command(
        after_help = "Examples:\n  zulip-auth user revoke-key iago@example.com 7\n  zulip-auth user revoke-key iago@example.com --all"
    )]
    RevokeKey {
        email: String,
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every key of the user, their own included
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// List a user's passkeys (web.md §9): id, name, when added and last used
    #[command(after_help = "Example:\n  zulip-auth user passkeys iago@example.com")]
    Passkeys {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Manage a user's passkeys
    #[command(subcommand)]
    Passkey(PasskeyCommand),
    /// Import users exported from a Zulip server (JSON Lines; see the README), all or none
    #[command(after_help = "Example:\n  zulip-auth user import zulip-users.jsonl --realm lear")]
    Import {
        file: PathBuf,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Deactivate a user: logins fail with "Account is deactivated"
    #[command(after_help = "Example:\n  zulip-auth user deactivate hamlet@example.com")]
    Deactivate {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Reactivate a deactivated user
    #[command(after_help = "Example:\n  zulip-auth user reactivate hamlet@example.com")]
    Reactivate {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Change a user's role, full name or email; a new email is checked as at creation
    #[command(
        after_help = "Examples:\n  zulip-auth user set hamlet@example.com --role admin\n  zulip-auth user set hamlet@example.com --email prince@example.com --full-name 'Prince Hamlet'",
        group = clap::ArgGroup::new("change").required(true).multiple(true)
    )]
    Set {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        #[arg(long, value_enum, group = "change")]
        role: Option<Role>,
        #[arg(long, group = "change")]
        full_name: Option<String>,
        /// The user's new email address, which is also their username
        #[arg(
            long = "email",
            id = "new_email",
            value_name = "NEW_EMAIL",
            group = "change"
        )]
        new_email: Option<String>,
    },
    /// Remove a user for good: the account, its key, sessions, reset link and second factor;
    /// the audit trail keeps a row of the deletion, without the address. Asks on a terminal
    #[command(
        after_help = "Examples:\n  zulip-auth user delete hamlet@example.com\n  zulip-auth user delete hamlet@example.com --realm lear --yes"
    )]
    Delete {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        /// Delete without asking (needed when stdin is not a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Clear a user's rate-limit history, so that they may log in again at once
    #[command(after_help = "Example:\n  zulip-auth user unlock hamlet@example.com")]
    Unlock {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Manage a user's second factor (TOTP, as authenticator apps generate)
    #[command(subcommand)]
    Totp(TotpCommand),
}

#[derive(Debug, Subcommand)]
pub enum PasskeyCommand {
    /// Remove one of a user's passkeys by its id (see `user passkeys`)
    #[command(after_help = "Example:\n  zulip-auth user passkey remove iago@example.com 3")]
    Remove {
        email: String,
        id: i64,
        #[command(flatten)]
        realm: RealmArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Give a user a new TOTP key, active at once: prints the otpauth:// URI on the first
    /// line, then a QR code of it for an authenticator app, then (for a user's first second
    /// factor) ten recovery codes, one per line
    #[command(
        after_help = "Examples:\n  zulip-auth user totp enroll iago@example.com --realm lear\n  zulip-auth user totp enroll iago@example.com --replace"
    )]
    Enroll {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        /// Replace the user's key if they have one (their app's codes stop working)
        #[arg(long)]
        replace: bool,
    },
    /// Make a user a new set of recovery codes, ending the old one: prints them one per line
    #[command(after_help = "Example:\n  zulip-auth user totp recovery-codes iago@example.com")]
    RecoveryCodes {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
    /// Remove a user's TOTP key
    #[command(after_help = "Example:\n  zulip-auth user totp disable iago@example.com")]
    Disable {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy the database consistently (SQLite's online backup), also while the server runs
    #[command(
        after_help = "Example:\n  zulip-auth db backup /var/backups/zulip-auth-$(date +%F).sqlite3"
    )]
    Backup {
        /// Where to write the copy; must not exist yet
        dest: PathBuf,
    },
    /// Check the database's integrity and print its schema version
    #[command(after_help = "Example:\n  zulip-auth db check")]
    Check,
    /// Delete the audit rows past the retention now, in small batches, as the server's
    /// pruner does once a minute; safe while the server runs
    #[command(after_help = "Example:\n  zulip-auth db prune --audit-retention-days 400")]
    Prune {
        #[command(flatten)]
        audit_retention: AuditRetentionArg,
    },
    /// Give the space of deleted rows back to the file system. Without --full, safe while the
    /// server runs (SQLite: an incremental vacuum in small steps; PostgreSQL: VACUUM)
    #[command(after_help = "Example:\n  zulip-auth db vacuum")]
    Vacuum {
        /// Rewrite the whole database (SQLite: VACUUM, which also turns on incremental
        /// vacuuming for a database made before it; PostgreSQL: VACUUM FULL). Holds the write
        /// lock (PostgreSQL: every table's lock) until it ends: stop the server first
        #[arg(long)]
        full: bool,
    },
    /// Copy every table from one database to another (SQLite and PostgreSQL, either way),
    /// ids kept; refuses a target with users or realms unless --force
    #[command(
        after_help = "Example:\n  zulip-auth db copy --from /var/lib/zulip-auth/zulip-auth.sqlite3 --to postgres://zulip_auth@db.example.com/zulip_auth"
    )]
    Copy {
        /// The source: a SQLite file or a postgres:// URL
        #[arg(long, value_name = "PATH|URL")]
        from: PathBuf,
        /// The target, created and migrated if needed
        #[arg(long, value_name = "PATH|URL")]
        to: PathBuf,
        /// Replace whatever the target holds
        #[arg(long)]
        force: bool,
    },
}

/// How long a reset link stays valid.
#[derive(Debug, Args)]
pub struct LinkLifetime {
    /// How long a password-reset link stays valid, as a number and s, m or h; at most 24h
    #[arg(
        long = "reset-link-lifetime",
        env = "ZULIP_AUTH_RESET_LINK_LIFETIME",
        value_name = "DURATION",
        default_value = "1h",
        value_parser = parse_link_lifetime
    )]
    pub lifetime: Duration,
}

fn parse_link_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = parse_duration(text)?;
    if lifetime.is_zero() || lifetime > reset::MAX_LIFETIME {
        return Err(format!("invalid link lifetime {text:?}: from 1s to 24h"));
    }
    Ok(lifetime)
}

/// How long audit rows are kept (each user's newest password change and deactivation are
/// kept whatever their age: `auth::retention`).
#[derive(Debug, Args)]
pub struct AuditRetentionArg {
    /// Days of audit trail to keep
    #[arg(
        long = "audit-retention-days",
        env = "ZULIP_AUTH_AUDIT_RETENTION_DAYS",
        default_value_t = 400,
        value_name = "DAYS",
        value_parser = clap::value_parser!(u32).range(0..=36_500)
    )]
    pub days: u32,
}

impl AuditRetentionArg {
    pub fn duration(&self) -> Duration {
        Duration::from_secs(u64::from(self.days) * 86_400)
    }
}

#[derive(Debug, Args)]
pub struct RealmArg {
    /// The realm, by subdomain [default: the root realm]
    #[arg(long = "realm", value_name = "SUB", default_value = "")]
    pub subdomain: String,
}

/// `idp`: a realm's OpenID providers (web.md §10). The client secret comes from a file or
/// ZULIP_AUTH_OIDC_CLIENT_SECRET, never from argv, and is never printed.
#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Add an identity provider; register https://HOST/complete/oidc/ as its return URL
    #[command(
        after_help = "Example:\n  zulip-auth idp add keycloak --issuer https://id.example.com/realms/zulip \\\n    --client-id zulip --client-secret-file /etc/zulip-auth/keycloak.secret --display-name Keycloak"
    )]
    Add {
        /// A short word: 1 to 63 lowercase letters, digits and inner hyphens
        name: String,
        #[command(flatten)]
        realm: RealmArg,
        #[command(flatten)]
        settings: IdpArgs,
    },
    /// List a realm's identity providers (never their secrets)
    #[command(after_help = "Example:\n  zulip-auth idp list --realm lear --json")]
    List {
        #[command(flatten)]
        realm: RealmArg,
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Change an identity provider's settings
    #[command(
        after_help = "Examples:\n  zulip-auth idp set keycloak --auto-signup on\n  ZULIP_AUTH_OIDC_CLIENT_SECRET=… zulip-auth idp set keycloak --realm lear"
    )]
    Set {
        name: String,
        #[command(flatten)]
        realm: RealmArg,
        #[command(flatten)]
        settings: IdpArgs,
    },
    /// Remove an identity provider; sign-ins under way through it fail
    #[command(after_help = "Example:\n  zulip-auth idp remove keycloak")]
    Remove {
        name: String,
        #[command(flatten)]
        realm: RealmArg,
    },
}

/// The settings of `idp add` and `idp set`.
#[derive(Debug, Args)]
pub struct IdpArgs {
    /// The issuer URL (https, or http on loopback); discovery reads
    /// ISSUER/.well-known/openid-configuration
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// The client id registered with the provider
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// File holding the client secret (or set ZULIP_AUTH_OIDC_CLIENT_SECRET)
    #[arg(long, value_name = "PATH")]
    pub client_secret_file: Option<PathBuf>,
    /// The words of the sign-in button, "Sign in with NAME" [default: OpenID Connect]
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// An absolute URL of the button's icon, or none
    #[arg(long, value_name = "URL|none")]
    pub display_icon: Option<String>,
    /// Scopes asked for, separated by spaces; openid is always among them
    /// [default: openid email profile]
    #[arg(long, value_name = "SCOPES")]
    pub scopes: Option<String>,
    /// Whether an unknown verified email becomes a new member [default: off]
    #[arg(long, value_enum, value_name = "on|off")]
    pub auto_signup: Option<OnOff>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Role] {
        &Role::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

/// A count of 1 or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}")),
    }
}

/// A finite, positive number of milliseconds.
fn positive_ms(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if ms.is_finite() && ms > 0.0 => Ok(ms),
        Ok(_) => Err("must be a positive, finite number of milliseconds".into()),
        Err(e) => Err(format!("{e}")),
    }
}

impl Cli {
    fn db_path(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(|| {
            let dir = std::env::var("STATE_DIRECTORY").ok().and_then(|dirs| {
                // systemd passes a colon-separated list; ours is the first.
                dirs.split(':')
                    .next()
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            });
            dir.unwrap_or_else(|| PathBuf::from("."))
                .join("zulip-auth.sqlite3")
        })
    }

    /// The argon2 flags as given; only the commands that hash validate them, so a bad value
    /// in the environment does not stop `db check` or `user list`.
    fn argon2(&self) -> Argon2Config {
        Argon2Config {
            m_kib: self.argon2_m,
            t: self.argon2_t,
            p: self.argon2_p,
        }
    }
}

/// The argon2 parameters, if they are usable.
fn validated(config: Argon2Config) -> Result<Argon2Config, Error> {
    config.validate().map_err(Error::Invalid)
}

/// Writes one line on stdout. A reader that went away (`| head -1`) comes back as a broken
/// pipe, which main.rs ends quietly.
pub(crate) fn out_line(line: std::fmt::Arguments<'_>) -> Result<(), Error> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{line}")
        .map_err(|e| Error::Io("cannot write to stdout".into(), e))
}

/// `println!` for the commands: a failed write is an [`Error`], never a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

impl Command {
    /// Commands that only read: a mistyped `--db` must not leave an empty database behind
    /// them, so they refuse a missing file. Every other command creates and migrates one.
    fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Realm(RealmCommand::List { .. })
                | Command::Idp(IdpCommand::List { .. })
                | Command::User(UserCommand::List { .. } | UserCommand::Show { .. })
                | Command::Db(_)
                | Command::Audit { .. }
        )
    }
}

impl Command {
    /// The admin commands that write: on a SQLite file that does not exist yet, they create
    /// it (`serve` does too, without a word: a service's first start).
    fn creates_database(&self) -> bool {
        matches!(self, Command::Realm(_) | Command::User(_) | Command::Idp(_)) && !self.only_reads()
    }
}

/// Runs the command the user asked for; `sources` says where its settings came from.
pub fn run(cli: Cli, sources: &config::Sources) -> Result<(), Error> {
    if let Some(name) = &cli.instance_name {
        set_instance_name(name);
    }
    if let Command::Config(_) = cli.command {
        return config::show(&cli, sources);
    }
    let db = Database::from_arg(cli.db_path())?;
    let argon2 = cli.argon2();
    match &db {
        Database::Sqlite(path) if cli.command.creates_database() && !exists(path)? => {
            on_new_database(path, |db| execute(cli.command, db, argon2))
        }
        _ => execute(cli.command, db, argon2),
    }
}

fn exists(path: &Path) -> Result<bool, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io(format!("cannot open {}", path.display()), e)),
    }
}

/// Runs a write command that would create the database at `path` on a private file beside
/// it, which takes the name only if the command succeeds: a refused command, a mistyped
/// `--db` included, leaves nothing behind, and the one that made the database says so.
fn on_new_database(
    path: &Path,
    command: impl FnOnce(Database) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let staged = tempfile::Builder::new()
        .prefix(".zulip-auth-new-")
        .suffix(".sqlite3")
        .tempfile_in(dir)
        .map_err(|e| Error::Io(format!("cannot create {}", path.display()), e))?;
    let staged_path = staged.path().to_owned();
    // The store is closed when the command returns: SQLite has checkpointed its journal
    // into the file by then and removed it.
    let result = command(Database::Sqlite(staged_path.clone()));
    let journal = |suffix: &str| {
        let mut name = staged_path.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    let leftover = ["-wal", "-shm", "-journal"].map(journal);
    if let Err(e) = result {
        leftover.iter().for_each(|f| drop(std::fs::remove_file(f)));
        return Err(e);
    }
    if let Some(open) = leftover.iter().find(|f| f.exists()) {
        return invalid!("the new database is still open ({})", open.display());
    }
    staged
        .persist_noclobber(path)
        .map_err(|e| Error::Io(format!("cannot create {}", path.display()), e.error))?;
    eprintln!("zulip-auth: created the database {}", path.display());
    Ok(())
}

fn execute(command: Command, db: Database, argon2: Argon2Config) -> Result<(), Error> {
    let only_reads = command.only_reads();
    let open = || {
        if only_reads {
            db.open_existing()
        } else {
            db.open()
        }
    };
    match command {
        Command::Serve(args) => {
            if allowlist::under_systemd() && !args.demo {
                // The database first, and at once: the server cannot start without it.
                if let Some(remote) = db_remote(&db) {
                    allowlist::probe(&remote);
                }
                let relay = args.mail.smtp_url.as_ref();
                let relay =
                    relay.map(|url| allowlist::Remote::new("SMTP relay", &url.host, url.port));
                allowlist::warn_blocked(relay.into_iter().collect(), db.clone());
            }
            server::run(&serve_config(args, db, validated(argon2)?)?)
        }
        Command::Config(_) => invalid!("zulip-auth config runs on its own"),
        Command::Realm(command) => admin::realm(&open()?, command),
        Command::User(command) => admin::user(&open()?, argon2, command),
        Command::Idp(command) => idp::run(&open()?, command),
        Command::Db(command) => admin::db(open, command),
        Command::BenchHash {
            samples,
            threads,
            target_ms,
            json,
        } => bench::run(validated(argon2)?, samples, threads, target_ms, json),
        Command::Audit {
            user,
            realm,
            since,
            json,
        } => admin::show_audit(&open()?, user.as_deref(), realm.as_deref(), since, json),
    }
}

fn serve_config(args: ServeArgs, db: Database, argon2: Argon2Config) -> Result<ServeConfig, Error> {
    let external_url = args
        .external_url
        .as_deref()
        .map(ExternalUrl::parse)
        .transpose()
        .map_err(Error::Invalid)?;
    if args.session_idle_timeout.is_zero() || args.session_lifetime.is_zero() {
        return invalid!("--session-idle-timeout and --session-lifetime must be at least 1s");
    }
    let mail = mail_settings(args.mail, external_url.is_some())?;
    let workers = args.workers.map_or_else(default_workers, usize::from);
    Ok(ServeConfig {
        db,
        listen: args.listen,
        socket: args.socket,
        workers,
        argon2,
        api: ApiConfig {
            site: Site { external_url },
            dev: args.dev,
            limits: RateLimits {
                per_username: args.auth_rate.0,
                per_address: args.address_rate.0,
            },
            trusted_proxies: args.trusted_proxy,
            sessions: SessionLimits {
                idle: args.session_idle_timeout.as_secs_f64(),
                lifetime: args.session_lifetime.as_secs_f64(),
            },
        },
        mail,
        reset_link_lifetime: args.reset_link.lifetime,
        demo: args.demo,
        dev_allow_remote: args.dev_allow_remote,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        audit_retention: args.audit_retention.duration(),
        metrics_listen: args.metrics.metrics_listen,
    })
}

/// The PostgreSQL server `db` names, if any.
fn db_remote(db: &Database) -> Option<allowlist::Remote> {
    match db {
        Database::Sqlite(_) => None,
        #[cfg(feature = "postgres")]
        Database::Postgres(target) => allowlist::postgres_remote(&target.to_string()),
    }
}

/// `--workers` when unset: the number of cores.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

fn mail_settings(args: MailArgs, has_external_url: bool) -> Result<Option<MailSettings>, Error> {
    let Some(url) = args.smtp_url else {
        if args.mail_from.is_some() || args.smtp_password_file.is_some() {
            return invalid!("--mail-from and --smtp-password-file need --smtp-url");
        }
        return Ok(None);
    };
    // Without it, a reset link would take its host from the request's Host header, which
    // whoever asks for the reset chooses.
    if !has_external_url {
        return invalid!("--smtp-url needs --external-url: reset links are built from it");
    }
    let Some(from) = args.mail_from else {
        return invalid!("--smtp-url needs --mail-from");
    };
    let password = read_secret(
        args.smtp_password_file.as_deref(),
        "ZULIP_AUTH_SMTP_PASSWORD",
    )?;
    MailSettings::new(url, &from, password)
        .map(Some)
        .map_err(Error::Invalid)
}

/// Refuses a name that would reach a terminal with control characters in it.
fn no_controls(what: &str, name: &str) -> Result<(), Error> {
    match first_control(name) {
        Some(c) => invalid!("the {what} {name:?} contains the control character {c:?}"),
        None => Ok(()),
    }
}

/// A secret that never travels in argv: the file's first line if a file is named, else the
/// environment variable.
fn read_secret(file: Option<&std::path::Path>, env_var: &str) -> Result<Option<String>, Error> {
    match file {
        Some(path) => Ok(Some(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Io(format!("cannot read {}", path.display()), e))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        )),
        None => Ok(std::env::var(env_var).ok()),
    }
}
