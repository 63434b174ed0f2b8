//! The generated files of the Debian package: one man page per command (zulip-auth.1,
//! zulip-auth-user-create.1, ...) and bash, zsh and fish completions, all from the clap
//! definitions the binary parses with, so they cannot drift from `--help`.
//!
//! Usage: cargo run --example package-assets -- DIR   (deploy/debian/build-deb runs it)
//!
//! tests/completions/run checks the completions in each shell.

#![allow(
    clippy::expect_used,
    reason = "a packaging tool run by build-deb: a panic with its message is the report"
)]

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{Roff, bold, roman};

const BIN: &str = "zulip-auth";

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: package-assets DIR");
    let dir = Path::new(&dir);
    let command = zulip_auth::cli::Cli::command();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    // Recursive: a page per subcommand, named after its path (zulip-auth-user-create.1).
    clap_mangen::generate_to(command.clone(), &man)?;
    // The top page again, with the files and the environment it reads.
    let mut page = std::fs::File::create(man.join(format!("{BIN}.1")))?;
    top_page(command.clone(), &mut page)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), BIN, &completions)?;
    }
    std::fs::write(completions.join(format!("{BIN}.bash")), bash(command))
}

/// clap_complete's bash script breaks past the first word for a name with a hyphen (clap
/// #6421, #6529): it spells the state `zulip__auth` where it sets it and
/// `zulip__subcmd__auth` where it reads it. Generated for a name without one, the script is
/// consistent; only the registration names the binary.
fn bash(mut command: clap::Command) -> Vec<u8> {
    let stand_in = BIN.replace('-', "");
    let mut script = Vec::new();
    clap_complete::generate(Shell::Bash, &mut command, &stand_in, &mut script);
    let script = String::from_utf8(script).expect("the script is UTF-8");
    let registered = format!(" {stand_in}\n");
    let lines: Vec<String> = script
        .split_inclusive('\n')
        .map(|line| match line.strip_suffix(&registered) {
            Some(head) if line.trim_start().starts_with("complete ") => {
                format!("{head} {BIN}\n")
            }
            _ => line.to_owned(),
        })
        .collect();
    lines.concat().into_bytes()
}

/// zulip-auth.1: clap_mangen's sections, then FILES and ENVIRONMENT, which the settings file
/// and systemd need.
fn top_page(command: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command);
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    man.render_extra_section(w)?;
    let mut roff = Roff::new();
    let entry = |roff: &mut Roff, name: &str, text: &str| {
        roff.control("TP", [])
            .text([bold(name)])
            .text([roman(text)]);
    };
    roff.control("SH", ["FILES"]);
    entry(
        &mut roff,
        "/etc/zulip-auth/zulip-auth.conf",
        "The settings file, read by the service and by every admin command unless --config, \
         ZULIP_AUTH_CONFIG, --db or ZULIP_AUTH_DB says otherwise. Lines are NAME=VALUE, one \
         ZULIP_AUTH_* variable per option (as listed under OPTIONS and in the man pages of the \
         subcommands), RUST_LOG, and the secrets of ENVIRONMENT; blank lines and lines starting \
         with # are skipped. A value is taken as written, to the end of the line, spaces, <, $ \
         and # included (ZULIP_AUTH_MAIL_FROM=Zulip <noreply@example.com>); single quotes keep \
         it literally, double quotes unescape \\\" and \\\\. A flag beats the environment, which \
         beats the file, which beats the default. A line that does not parse, or a name that is \
         no setting, stops the command with the file and the line number. The packaged file \
         lists every setting, commented; zulip-auth config prints each one in effect and where \
         it came from.",
    );
    entry(
        &mut roff,
        "/var/lib/zulip-auth/zulip-auth.sqlite3",
        "The service's database (its StateDirectory), owned by the zulip-auth user, mode 0600.",
    );
    entry(
        &mut roff,
        "/usr/share/doc/zulip-auth/README.md",
        "The operator's guide: the first production install, nginx, mail, backups, recipes.",
    );
    roff.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut roff,
        "ZULIP_AUTH_*",
        "Each option's variable, as listed with it; below a flag, above the settings file.",
    );
    entry(
        &mut roff,
        "ZULIP_AUTH_SMTP_PASSWORD, PGPASSWORD, ZULIP_AUTH_LDAP_BIND_PASSWORD",
        "The secrets: the SMTP relay's password, PostgreSQL's, and the LDAP service \
         account's (read by realm set). Never options, so they never show in the process list.",
    );
    entry(
        &mut roff,
        "CREDENTIALS_DIRECTORY",
        "Set by systemd for LoadCredential=: a credential named after a secret's variable \
         (LoadCredential=ZULIP_AUTH_SMTP_PASSWORD:/etc/zulip-auth/smtp-password) supplies it \
         when the environment does not, so the file can be readable by root alone.",
    );
    entry(
        &mut roff,
        "JOURNAL_STREAM",
        "Set by systemd when stderr is the journal: each log line then starts with its \
         priority (<4> for a warning) and carries no timestamp of its own.",
    );
    entry(
        &mut roff,
        "RUST_LOG",
        "The log filter (default info; warn keeps only failures).",
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "zulip-auth-serve(1), zulip-auth-config(1), zulip-auth-user(1), zulip-auth-realm(1), \
         systemd.exec(5)",
    )]);
    roff.to_writer(w)?;
    man.render_version_section(w)
}
