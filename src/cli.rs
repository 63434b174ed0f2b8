//! The command line: clap's definitions, then one function per admin command.
//!
//! Every flag also reads `ZULIP_AUTH_` plus its name in upper snake case, so a systemd
//! `EnvironmentFile` can configure anything a flag can.

use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::ApiConfig;
use crate::auth::password::{Argon2Config, Hasher};
use crate::auth::ratelimit::{RateLimits, RuleSetting};
use crate::email;
use crate::error::{Error, invalid};
use crate::logging::LogFormat;
use crate::server::{self, ServeConfig};
use crate::site::{ExternalUrl, Site};
use crate::store::{ROLES, RealmChanges, Store};

#[derive(Debug, Parser)]
#[command(
    name = "zulip-auth",
    version,
    about = "A small server that speaks Zulip's password-login API",
    after_help = "Example:\n  zulip-auth serve --demo"
)]
pub struct Cli {
    /// SQLite database, created and migrated on first use
    /// [default: $STATE_DIRECTORY/zulip-auth.sqlite3, else ./zulip-auth.sqlite3]
    #[arg(long, global = true, env = "ZULIP_AUTH_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

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

    /// Handler threads [default: the number of cores]
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
}

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
    /// Deactivate a realm: its users can no longer log in
    #[command(after_help = "Example:\n  zulip-auth realm deactivate lear")]
    Deactivate { subdomain: String },
    /// Reactivate a deactivated realm
    #[command(after_help = "Example:\n  zulip-auth realm reactivate lear")]
    Reactivate { subdomain: String },
    /// Change a realm's settings
    #[command(
        after_help = "Example:\n  zulip-auth realm set '' --name 'Example Org' --password-auth on"
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
        /// Whether users may log in with a password
        #[arg(long, env = "ZULIP_AUTH_PASSWORD_AUTH")]
        password_auth: Option<OnOff>,
    },
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

#[derive(Debug, Args)]
pub struct RealmArg {
    /// The user's realm, by subdomain [default: the root realm]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Owner,
    Admin,
    Moderator,
    Member,
    Guest,
}

impl Role {
    fn code(self) -> i64 {
        let name = self.to_possible_value().expect("every role has a name");
        ROLES
            .iter()
            .find(|(n, _)| *n == name.get_name())
            .map(|&(_, code)| code)
            .expect("every role has a code")
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

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> Result<(), Error> {
    let db = cli.db_path();
    let argon2 = cli.argon2()?;
    match cli.command {
        Command::Serve(args) => server::run(serve_config(args, db, argon2)?),
        Command::Realm(command) => realm_command(&Store::open(&db)?, command),
        Command::User(command) => user_command(&Store::open(&db)?, &Hasher::new(argon2), command),
    }
}

fn serve_config(args: ServeArgs, db: PathBuf, argon2: Argon2Config) -> Result<ServeConfig, Error> {
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
    })
}

fn realm_command(store: &Store, command: RealmCommand) -> Result<(), Error> {
    let (subdomain, changes) = match command {
        RealmCommand::Create { subdomain, name } => {
            validate_subdomain(&subdomain)?;
            store.create_realm(&subdomain, &name)?;
            return Ok(());
        }
        RealmCommand::Deactivate { subdomain } => (
            subdomain,
            RealmChanges {
                deactivated: Some(true),
                ..RealmChanges::default()
            },
        ),
        RealmCommand::Reactivate { subdomain } => (
            subdomain,
            RealmChanges {
                deactivated: Some(false),
                ..RealmChanges::default()
            },
        ),
        RealmCommand::Set {
            subdomain,
            name,
            description,
            icon,
            password_auth,
        } => (
            subdomain,
            RealmChanges {
                name,
                description,
                icon_url: icon,
                password_auth_enabled: password_auth.map(|v| v == OnOff::On),
                deactivated: None,
            },
        ),
    };
    let realm = store.require_realm(&subdomain)?;
    store.update_realm(&realm, &changes)?;
    Ok(())
}

/// A DNS label, or several joined by dots: it becomes part of a host name.
fn validate_subdomain(subdomain: &str) -> Result<(), Error> {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if subdomain.split('.').all(label_ok) {
        Ok(())
    } else {
        invalid!("invalid subdomain {subdomain:?}: use lowercase letters, digits and inner hyphens")
    }
}

fn user_command(store: &Store, hasher: &Hasher, command: UserCommand) -> Result<(), Error> {
    match command {
        UserCommand::Create {
            email,
            realm,
            full_name,
            role,
            password_stdin: _,
        } => {
            if !email::is_valid(&email) {
                return invalid!("invalid email address {email:?}");
            }
            let realm = store.require_realm(&realm.subdomain)?;
            let password = read_password_line()?;
            let id = store.create_user(
                &realm,
                &email,
                &full_name,
                role.code(),
                &hasher.hash(&password),
            )?;
            println!("{id}");
            Ok(())
        }
        UserCommand::Deactivate { email, realm } => set_active(store, &realm, &email, false),
        UserCommand::Reactivate { email, realm } => set_active(store, &realm, &email, true),
    }
}

fn set_active(store: &Store, realm: &RealmArg, email: &str, active: bool) -> Result<(), Error> {
    let realm = store.require_realm(&realm.subdomain)?;
    let user = store.require_user(&realm, email)?;
    store.set_user_active(user.id, active)?;
    Ok(())
}

/// The first line of stdin, without its line ending.
fn read_password_line() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Io("cannot read the password from stdin".into(), e))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return invalid!("empty password: give it on the first line of stdin");
    }
    Ok(password.to_owned())
}
