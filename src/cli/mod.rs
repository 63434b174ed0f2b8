//! The command line: clap's definitions and [`run`], which validates a command's arguments
//! into a configuration and hands it to the module that carries it out.
//!
//! Every flag also reads `ZULIP_AUTH_` plus its name in upper snake case, so a systemd
//! `EnvironmentFile` can configure anything a flag can.

mod admin;
mod bench;
mod import;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::ApiConfig;
use crate::auth::password::{Argon2Config, Hasher};
use crate::auth::ratelimit::{RateLimits, RuleSetting};
use crate::clock::parse_duration;
use crate::error::{Error, invalid};
use crate::logging::LogFormat;
use crate::server::{self, ServeConfig};
use crate::site::{ExternalUrl, Site};
use crate::store::{Database, LdapSettings, Role, set_instance_name};

#[derive(Debug, Parser)]
#[command(
    name = "zulip-auth",
    version,
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

    #[command(subcommand)]
    pub command: Command,
}

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
    /// Time argon2 verification at --argon2-m/-t/-p, or suggest parameters for a time budget
    #[command(
        after_help = "Examples:\n  zulip-auth bench-hash\n  zulip-auth --argon2-m 102400 --argon2-t 2 --argon2-p 8 bench-hash\n  zulip-auth bench-hash --target-ms 50"
    )]
    BenchHash {
        /// Verifications to time
        #[arg(long, env = "ZULIP_AUTH_SAMPLES", default_value_t = 30)]
        samples: usize,
        /// Suggest the largest memory cost (at the given -t and -p) whose median verification
        /// stays within this many milliseconds
        #[arg(long, env = "ZULIP_AUTH_TARGET_MS", value_name = "MS")]
        target_ms: Option<f64>,
        /// One JSON object instead of a sentence
        #[arg(long, env = "ZULIP_AUTH_JSON")]
        json: bool,
    },
    /// Back up or check the database
    #[command(subcommand)]
    Db(DbCommand),
    /// Show the audit trail: logins, keys, passwords, user and realm changes
    #[command(
        after_help = "Examples:\n  zulip-auth audit --since 1d\n  zulip-auth audit --user iago@example.com --since 30d --json"
    )]
    Audit {
        /// Only this user's entries (of --realm, else of the root realm)
        #[arg(long, env = "ZULIP_AUTH_USER", value_name = "EMAIL")]
        user: Option<String>,
        /// Only this realm's entries, by subdomain ('' for the root realm) [default: every realm]
        #[arg(long = "realm", env = "ZULIP_AUTH_REALM", value_name = "SUB")]
        realm: Option<String>,
        /// How far back, as a number and s, m, h or d [default: everything kept]
        #[arg(long, env = "ZULIP_AUTH_SINCE", value_name = "DURATION", value_parser = parse_duration)]
        since: Option<Duration>,
        /// One JSON object per line instead of a table
        #[arg(long, env = "ZULIP_AUTH_JSON")]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. A socket passed by systemd
    /// (LISTEN_FDS) is used instead
    #[arg(long, env = "ZULIP_AUTH_LISTEN", default_value = "127.0.0.1:9991")]
    pub listen: SocketAddr,

    /// The root realm's URL, scheme://host[:port]; realm SUB lives at scheme://SUB.host[:port].
    /// Without it every Host is the root realm and URLs are built from the Host header
    #[arg(long, env = "ZULIP_AUTH_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,

    /// Threads that verify passwords (peak memory about N × argon2 m), and as many front
    /// threads for everything else [default: the number of cores]
    #[arg(long, env = "ZULIP_AUTH_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Mount the development endpoints dev_fetch_api_key and dev_list_users
    #[arg(long, env = "ZULIP_AUTH_DEV")]
    pub dev: bool,

    /// Serve a throw-away database seeded with demo users (iago@zulip.com / abcd1234)
    #[arg(long, env = "ZULIP_AUTH_DEMO")]
    pub demo: bool,

    /// Seconds to let requests in flight finish after SIGTERM or SIGINT
    #[arg(
        long,
        env = "ZULIP_AUTH_SHUTDOWN_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
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

    /// Days of audit trail to keep
    #[arg(
        long,
        env = "ZULIP_AUTH_AUDIT_RETENTION_DAYS",
        default_value_t = 90,
        value_name = "DAYS"
    )]
    pub audit_retention_days: u32,
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
        #[arg(long, env = "ZULIP_AUTH_NAME")]
        name: String,
    },
    /// List realms with their settings and user counts
    #[command(after_help = "Example:\n  zulip-auth realm list --json")]
    List {
        /// JSON instead of a table
        #[arg(long, env = "ZULIP_AUTH_JSON")]
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
        after_help = "Examples:\n  zulip-auth realm set '' --name 'Example Org' --password-auth on\n  ZULIP_AUTH_LDAP_BIND_PASSWORD=secret zulip-auth realm set '' --ldap-url ldap://ldap.example.com \\\n    --ldap-bind-dn cn=zulip,dc=example,dc=com --ldap-user-search ou=people,dc=example,dc=com \\\n    --ldap-user-filter '(uid=%(user)s)' --ldap-append-domain example.com --ldap-full-name-attr cn"
    )]
    Set {
        subdomain: String,
        #[arg(long, env = "ZULIP_AUTH_NAME")]
        name: Option<String>,
        /// HTML shown on the login page
        #[arg(long, env = "ZULIP_AUTH_DESCRIPTION")]
        description: Option<String>,
        /// Absolute or /-relative icon URL
        #[arg(long, env = "ZULIP_AUTH_ICON", value_name = "URL")]
        icon: Option<String>,
        /// Whether users may log in with a password at all (email and LDAP backends)
        #[arg(long, env = "ZULIP_AUTH_PASSWORD_AUTH")]
        password_auth: Option<OnOff>,
        /// Whether local passwords (the email backend) are checked
        #[arg(long, env = "ZULIP_AUTH_EMAIL_AUTH")]
        email_auth: Option<OnOff>,
        #[command(flatten)]
        ldap: LdapArgs,
    },
}

/// A realm's LDAP directory, as Zulip's `AUTH_LDAP_*` settings. An empty value unsets an
/// optional one (`--ldap-ca-file ''`).
#[derive(Debug, Args)]
pub struct LdapArgs {
    #[command(flatten)]
    pub settings: LdapSettings,
    /// File holding the service account's password (or set ZULIP_AUTH_LDAP_BIND_PASSWORD)
    #[arg(long, env = "ZULIP_AUTH_LDAP_BIND_PASSWORD_FILE", value_name = "PATH")]
    pub ldap_bind_password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; reads the password from the first line of stdin and prints the new id
    #[command(
        after_help = "Example:\n  printf '%s\\n' 'Correct-Horse-9' | zulip-auth user create iago@example.com --full-name Iago --role admin --password-stdin"
    )]
    Create {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
        #[arg(long, env = "ZULIP_AUTH_FULL_NAME", default_value = "")]
        full_name: String,
        #[arg(long, env = "ZULIP_AUTH_ROLE", value_enum, default_value_t = Role::Member)]
        role: Role,
        /// Read the password from the first line of stdin
        #[arg(long, env = "ZULIP_AUTH_PASSWORD_STDIN", required = true)]
        password_stdin: bool,
    },
    /// List a realm's users (never their keys)
    #[command(after_help = "Example:\n  zulip-auth user list --realm lear --json")]
    List {
        #[command(flatten)]
        realm: RealmArg,
        /// JSON instead of a table
        #[arg(long, env = "ZULIP_AUTH_JSON")]
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
        #[arg(long, env = "ZULIP_AUTH_PASSWORD_STDIN")]
        password_stdin: bool,
    },
    /// Replace a user's API key and print the new one; the old key stops working at once
    #[command(after_help = "Example:\n  zulip-auth user rotate-key iago@example.com")]
    RotateKey {
        email: String,
        #[command(flatten)]
        realm: RealmArg,
    },
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

#[derive(Debug, Args)]
pub struct RealmArg {
    /// The realm, by subdomain [default: the root realm]
    #[arg(
        long = "realm",
        env = "ZULIP_AUTH_REALM",
        value_name = "SUB",
        default_value = ""
    )]
    pub subdomain: String,
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

    fn argon2(&self) -> Result<Argon2Config, Error> {
        Argon2Config {
            m_kib: self.argon2_m,
            t: self.argon2_t,
            p: self.argon2_p,
        }
        .validate()
        .map_err(Error::Invalid)
    }
}

impl Command {
    /// Commands that only read: a mistyped `--db` must not leave an empty database behind
    /// them, so they refuse a missing file. Every other command creates and migrates one.
    fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Realm(RealmCommand::List { .. })
                | Command::User(UserCommand::List { .. } | UserCommand::Show { .. })
                | Command::Db(_)
                | Command::Audit { .. }
        )
    }
}

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> Result<(), Error> {
    if let Some(name) = &cli.instance_name {
        set_instance_name(name);
    }
    let db = Database::from_arg(cli.db_path())?;
    let argon2 = cli.argon2()?;
    let only_reads = cli.command.only_reads();
    let open = || {
        if only_reads {
            db.open_existing()
        } else {
            db.open()
        }
    };
    match cli.command {
        Command::Serve(args) => server::run(serve_config(args, db, argon2)?),
        Command::Realm(command) => admin::realm(&open()?, command),
        Command::User(command) => admin::user(&open()?, &Hasher::new(argon2), command),
        Command::Db(command) => admin::db(open, command),
        Command::BenchHash {
            samples,
            target_ms,
            json,
        } => bench::run(argon2, samples, target_ms, json),
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
    let workers = match args.workers {
        Some(0) => return invalid!("--workers must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(2, usize::from),
    };
    Ok(ServeConfig {
        db,
        listen: args.listen,
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
        },
        demo: args.demo,
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        audit_retention: Duration::from_secs(u64::from(args.audit_retention_days) * 86_400),
    })
}
