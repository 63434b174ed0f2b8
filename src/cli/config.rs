//! The settings file: `ZULIP_AUTH_*=VALUE` lines (and `RUST_LOG`), the same variables the flags
//! read, so admin commands on a packaged host find the service's database and settings
//! without flags.
//!
//! Precedence is flag, then environment, then file, then default: a line of the file fills
//! its variable only when the environment leaves it unset, and clap then resolves flag against
//! variable as for any other run. The file is read when `--config FILE` or `ZULIP_AUTH_CONFIG`
//! names it, or else from [`DEFAULT_FILE`] when it exists and neither `--db` nor
//! `ZULIP_AUTH_DB` chose a database; `none` turns it off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::Cli;
use crate::error::{Error, invalid};

/// Where the Debian package installs the settings.
pub const DEFAULT_FILE: &str = "/etc/zulip-auth/zulip-auth.conf";

/// The `--config` flag, flattened into [`Cli`].
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Settings file of ZULIP_AUTH_*=VALUE lines, below flags and environment; none reads no
    /// file [default: /etc/zulip-auth/zulip-auth.conf, when neither --db nor ZULIP_AUTH_DB is
    /// given]
    #[arg(long, global = true, env = "ZULIP_AUTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Parses the command line, reading the settings file first when one applies.
pub fn parse(parse_args: impl Fn() -> Cli) -> Result<Cli, Error> {
    let cli = parse_args();
    let Some((file, required)) = settings_file(cli.config.config.as_deref(), cli.db.is_some())
    else {
        return Ok(cli);
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(cli),
        Err(e) => {
            let hint = "(ZULIP_AUTH_CONFIG=none reads no settings file)";
            return Err(Error::Io(
                format!("cannot read settings {} {hint}", file.display()),
                e,
            ));
        }
    };
    for (name, value) in settings(&file, &text)? {
        if std::env::var_os(&name).is_none() {
            // SAFETY: nothing else runs yet; main calls this before any thread is started.
            unsafe { std::env::set_var(&name, value) };
        }
    }
    Ok(parse_args())
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
fn settings(file: &Path, text: &str) -> Result<Vec<(String, String)>, Error> {
    let known = known_variables();
    let mut pairs = Vec::new();
    // dotenvy reads the dotenv dialect: KEY=VALUE, # comments, quotes; `$` is literal only
    // inside single quotes.
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (name, value) = item.map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?;
        if !known.contains(name.as_str()) {
            return invalid!("{}: {name} is not a zulip-auth setting", file.display());
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Every variable a flag of any command reads, and RUST_LOG, less ZULIP_AUTH_CONFIG itself.
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
    collect(&Cli::command(), &mut known);
    known.remove("ZULIP_AUTH_CONFIG");
    known
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
        let typo = settings(Path::new("f"), "ZULIP_AUTH_EXTRNAL_URL=x\n").unwrap_err();
        assert_eq!(
            typo.to_string(),
            "f: ZULIP_AUTH_EXTRNAL_URL is not a zulip-auth setting"
        );
        assert!(settings(Path::new("f"), "ZULIP_AUTH_CONFIG=/x\n").is_err());
        assert!(settings(Path::new("f"), "LD_PRELOAD=/x.so\n").is_err());
    }
}
