//! The settings file: `ZULIP_AUTH_*=VALUE` lines (and `RUST_LOG`), the same variables the flags
//! read, so admin commands on a packaged host find the service's database and settings
//! without flags; secrets from systemd credentials; and `zulip-auth config`, which shows
//! each setting in effect and where it came from.
//!
//! Precedence is flag, then environment, then file, then default: a line of the file fills
//! its variable only when the environment leaves it unset, and clap then resolves flag against
//! variable as for any other run. The file is read when `--config FILE` or `ZULIP_AUTH_CONFIG`
//! names it, or else from [`DEFAULT_FILE`] when it exists and neither `--db` nor
//! `ZULIP_AUTH_DB` chose a database; `none` turns it off.
//!
//! A secret ([`SECRETS`]) may also come from a systemd credential of its name
//! (`LoadCredential=ZULIP_AUTH_SMTP_PASSWORD:/etc/zulip-auth/smtp-password`), which systemd
//! reads as root, so the file can be root's alone; it counts as environment, above the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches};

use super::Cli;
use crate::error::{Error, invalid};

/// Where the Debian package installs the settings.
pub const DEFAULT_FILE: &str = "/etc/zulip-auth/zulip-auth.conf";

/// Variables no flag reads, whose values are never shown: the SMTP relay's and the LDAP
/// service account's passwords, and PostgreSQL's (as libpq reads it).
pub const SECRETS: [&str; 3] = [
    "ZULIP_AUTH_SMTP_PASSWORD",
    "ZULIP_AUTH_LDAP_BIND_PASSWORD",
    "PGPASSWORD",
];

/// The `--config` flag, flattened into [`Cli`].
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Settings file of ZULIP_AUTH_*=VALUE lines, below flags and environment; none reads no
    /// file [default: /etc/zulip-auth/zulip-auth.conf, when neither --db nor ZULIP_AUTH_DB is
    /// given]
    #[arg(long, global = true, env = "ZULIP_AUTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the settings of this run came from, for `zulip-auth config`.
#[derive(Debug, Default)]
pub struct Sources {
    /// The settings file read, if any.
    file: Option<PathBuf>,
    from_file: BTreeSet<String>,
    from_credentials: BTreeSet<String>,
    matches: ArgMatches,
}

/// Parses the command line, reading the settings file and credentials first when they apply.
/// `parse_args` reports a command line that does not parse itself, and exits.
pub fn parse(parse_args: impl Fn() -> ArgMatches) -> Result<(Cli, Sources), Error> {
    let matches = parse_args();
    let cli = from_matches(&matches)?;
    let mut sources = Sources::default();
    for (name, value) in credentials(std::env::var_os("CREDENTIALS_DIRECTORY"))? {
        // SAFETY: nothing else runs yet; main calls this before any thread is started.
        unsafe { std::env::set_var(&name, value) };
        sources.from_credentials.insert(name);
    }
    if let Some((file, required)) = settings_file(cli.config.config.as_deref(), cli.db.is_some()) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => Some(text),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let hint = "(ZULIP_AUTH_CONFIG=none reads no settings file)";
                return Err(Error::Io(
                    format!("cannot read settings {} {hint}", file.display()),
                    e,
                ));
            }
        };
        if let Some(text) = text {
            for (name, value) in settings(&file, &text)? {
                if std::env::var_os(&name).is_none() {
                    // SAFETY: as above, no other thread runs yet.
                    unsafe { std::env::set_var(&name, value) };
                    sources.from_file.insert(name);
                }
            }
            sources.file = Some(file);
        }
    }
    if sources.file.is_none() && sources.from_credentials.is_empty() {
        sources.matches = matches;
        return Ok((cli, sources));
    }
    sources.matches = parse_args();
    Ok((from_matches(&sources.matches)?, sources))
}

fn from_matches(matches: &ArgMatches) -> Result<Cli, Error> {
    Cli::from_arg_matches(matches).map_err(|e| Error::Invalid(e.kind().to_string()))
}

/// The secrets systemd passed as credentials (`$CREDENTIALS_DIRECTORY/NAME`, first line),
/// for those the environment leaves unset.
fn credentials(dir: Option<std::ffi::OsString>) -> Result<Vec<(String, String)>, Error> {
    let mut found = Vec::new();
    let Some(dir) = dir else {
        return Ok(found);
    };
    for name in SECRETS {
        let path = Path::new(&dir).join(name);
        if std::env::var_os(name).is_some() || !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Io(format!("cannot read the credential {}", path.display()), e))?;
        let value = text.lines().next().unwrap_or_default();
        found.push((name.to_owned(), value.to_owned()));
    }
    Ok(found)
}

/// Which file to read, and whether its absence is an error (only when it was named).
fn settings_file(named: Option<&Path>, db_given: bool) -> Option<(PathBuf, bool)> {
    match named {
        Some(path) if path == Path::new("none") => None,
        Some(path) => Some((path.to_path_buf(), true)),
        None if db_given => None,
        None => Some((PathBuf::from(DEFAULT_FILE), false)),
    }
}

/// The file's variables, refusing any that no flag reads, so a misspelt setting is an error
/// rather than silently ignored.
///
/// The dialect is the packaged file's (deploy/zulip-auth.conf): `NAME=VALUE` lines, blank
/// lines and `#` comments. A value is taken as written, to the end of the line, spaces, `<`,
/// `$` and `#` included (`ZULIP_AUTH_MAIL_FROM=Zulip <noreply@example.com>`); a value in
/// single quotes is taken literally, one in double quotes with `\"` and `\\` unescaped, so
/// a value may keep leading spaces. dotenvy, used before, refused the unquoted spaces of
/// the README's own example and named no line.
fn settings(file: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    let known = known_variables();
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", file.display(), number + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return invalid!("{}: expected NAME=VALUE, found {line:?}", at());
        };
        let name = name.trim_end();
        if !known.contains(name) {
            return invalid!("{}: {name:?} is not a zulip-auth setting", at());
        }
        let value =
            unquote(value.trim_start()).map_err(|e| Error::Invalid(format!("{}: {e}", at())))?;
        pairs.push((name.to_owned(), value));
    }
    Ok(pairs)
}

/// A value as written, or the inside of its quotes.
fn unquote(value: &str) -> Result<String, String> {
    let quote = match value.chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => return Ok(value.to_owned()),
    };
    let inner = value[1..]
        .strip_suffix(quote)
        .ok_or_else(|| format!("the value {value} has no closing {quote}"))?;
    if quote == '\'' {
        return Ok(inner.to_owned());
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            ('"', _) => return Err(format!("the value {value} has a \" inside: write \\\"")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Every variable a flag of any command reads, RUST_LOG and the secrets, less
/// ZULIP_AUTH_CONFIG itself.
fn known_variables() -> BTreeSet<String> {
    fn collect(command: &clap::Command, into: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                into.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, into);
        }
    }
    let mut known = BTreeSet::from(["RUST_LOG".to_string()]);
    known.extend(SECRETS.map(String::from));
    collect(&Cli::command(), &mut known);
    known.remove("ZULIP_AUTH_CONFIG");
    known
}

/// `zulip-auth config`: each setting `serve` would run with, its value and where it came
/// from; secrets as `(set)`.
pub fn show(cli: &Cli, sources: &Sources) -> Result<(), Error> {
    let Some(("config", matches)) = sources.matches.subcommand() else {
        return invalid!("zulip-auth config: no settings were parsed");
    };
    let from = |name: &str, source: Option<ValueSource>| match source {
        Some(ValueSource::CommandLine) => "flag",
        Some(ValueSource::EnvVariable) if sources.from_credentials.contains(name) => "credential",
        Some(ValueSource::EnvVariable) if sources.from_file.contains(name) => "file",
        Some(ValueSource::EnvVariable) => "environment",
        _ => "default",
    };
    let root = Cli::command();
    let Some(sub) = root.find_subcommand("config") else {
        return invalid!("zulip-auth config: the command is not defined");
    };
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for arg in root.get_arguments().chain(sub.get_arguments()) {
        let Some(env) = arg.get_env() else { continue };
        let name = env.to_string_lossy().into_owned();
        if !seen.insert(name.clone()) {
            continue;
        }
        let id = arg.get_id().as_str();
        let raw: Vec<String> = match matches.try_get_raw(id) {
            Ok(Some(values)) => values.map(|v| v.to_string_lossy().into_owned()).collect(),
            _ => Vec::new(),
        };
        let value = match (name.as_str(), raw.is_empty()) {
            ("ZULIP_AUTH_CONFIG", _) => match &sources.file {
                Some(file) => file.display().to_string(),
                None => "none".to_owned(),
            },
            ("ZULIP_AUTH_DB", true) => cli.db_path().display().to_string(),
            ("ZULIP_AUTH_INSTANCE_NAME", true) => crate::store::instance_name().to_owned(),
            ("ZULIP_AUTH_WORKERS", true) => super::default_workers().to_string(),
            (_, true) => "-".to_owned(),
            (_, false) => raw.join(","),
        };
        rows.push(vec![
            name.clone(),
            value,
            from(&name, matches.value_source(id)).to_owned(),
        ]);
    }
    let env_source = |name: &str| {
        if sources.from_credentials.contains(name) {
            "credential"
        } else if sources.from_file.contains(name) {
            "file"
        } else {
            "environment"
        }
    };
    let log = std::env::var("RUST_LOG").ok();
    rows.push(vec![
        "RUST_LOG".to_owned(),
        log.clone().unwrap_or_else(|| "info".to_owned()),
        log.map_or("default", |_| env_source("RUST_LOG")).to_owned(),
    ]);
    for name in SECRETS {
        let set = std::env::var_os(name).is_some();
        rows.push(vec![
            name.to_owned(),
            if set { "(set)" } else { "-" }.to_owned(),
            if set { env_source(name) } else { "default" }.to_owned(),
        ]);
    }
    super::admin::print_table(&["SETTING", "VALUE", "FROM"], rows.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_applies_only_without_a_chosen_database() {
        let default = Some((PathBuf::from(DEFAULT_FILE), false));
        assert_eq!(settings_file(None, false), default);
        assert_eq!(settings_file(None, true), None);
        assert_eq!(settings_file(Some(Path::new("none")), false), None);
        let named = Some((PathBuf::from("/srv/a.conf"), true));
        assert_eq!(settings_file(Some(Path::new("/srv/a.conf")), true), named);
    }

    #[test]
    fn settings_are_the_flags_variables() {
        let text = "# comment\nZULIP_AUTH_DB=/var/lib/x.sqlite3\n\nZULIP_AUTH_EXTERNAL_URL=\"https://a.example\"\nRUST_LOG=warn\n";
        let pairs = settings(Path::new("f"), text).unwrap();
        assert_eq!(
            pairs,
            [
                ("ZULIP_AUTH_DB".into(), "/var/lib/x.sqlite3".into()),
                ("ZULIP_AUTH_EXTERNAL_URL".into(), "https://a.example".into()),
                ("RUST_LOG".into(), "warn".into()),
            ]
        );
        let typo = settings(Path::new("f"), "\nZULIP_AUTH_EXTRNAL_URL=x\n").unwrap_err();
        assert_eq!(
            typo.to_string(),
            "f:2: \"ZULIP_AUTH_EXTRNAL_URL\" is not a zulip-auth setting"
        );
        assert!(settings(Path::new("f"), "ZULIP_AUTH_CONFIG=/x\n").is_err());
        assert!(settings(Path::new("f"), "LD_PRELOAD=/x.so\n").is_err());
    }

    #[test]
    fn values_are_taken_as_written_or_unquoted() {
        let value = |line: &str| {
            settings(Path::new("f"), &format!("ZULIP_AUTH_MAIL_FROM={line}\n"))
                .map(|pairs| pairs[0].1.clone())
                .map_err(|e| e.to_string())
        };
        let from = "Zulip <noreply@example.com>";
        assert_eq!(value(from).unwrap(), from);
        assert_eq!(value(&format!("\"{from}\"")).unwrap(), from);
        assert_eq!(value(&format!("'{from}'")).unwrap(), from);
        assert_eq!(value("'$HOME \\n'").unwrap(), "$HOME \\n");
        assert_eq!(
            value(r#""Say \"hi\" \\ <a@b.c>""#).unwrap(),
            r#"Say "hi" \ <a@b.c>"#
        );
        assert_eq!(value("a # b").unwrap(), "a # b");
        assert_eq!(value("").unwrap(), "");
        assert_eq!(
            value("\"Zulip <a@b.c>").unwrap_err(),
            "f:1: the value \"Zulip <a@b.c> has no closing \""
        );
        assert_eq!(
            value(r#""a"b""#).unwrap_err(),
            r#"f:1: the value "a"b" has a " inside: write \""#
        );
        let broken = settings(Path::new("f"), "# c\n\nZULIP_AUTH_DB\n").unwrap_err();
        assert_eq!(
            broken.to_string(),
            "f:3: expected NAME=VALUE, found \"ZULIP_AUTH_DB\""
        );
    }

    #[test]
    fn secrets_come_from_credentials_named_after_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("PGPASSWORD"), "pg-secret\n").unwrap();
        std::fs::write(dir.path().join("OTHER"), "x\n").unwrap();
        let found = credentials(Some(dir.path().into())).unwrap();
        let expected = [("PGPASSWORD".to_owned(), "pg-secret".to_owned())];
        // PGPASSWORD may be set in the environment of whoever runs the tests.
        if std::env::var_os("PGPASSWORD").is_none() {
            assert_eq!(found, expected);
        }
        assert!(credentials(None).unwrap().is_empty());
    }
}
