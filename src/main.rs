//! The binary: parse the command line, run it, and turn an error into one line on stderr and
//! a non-zero exit. This is the only place errors become exit codes: 2 for arguments that do
//! not parse (clap's convention), 1 for everything else.

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;
use clap::error::{ContextKind, ErrorKind as ArgErrorKind};
use zulip_auth::cli::Cli;
use zulip_auth::error::Error;

fn main() -> ExitCode {
    let result = zulip_auth::cli::config::parse(parse_args).and_then(|cli| {
        zulip_auth::logging::init(cli.log_format);
        zulip_auth::cli::run(cli)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head -1`): nothing is left to say.
        Err(Error::Io(_, err)) if err.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zulip-auth: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, or exit 2 (clap's convention) when it does not parse.
fn parse_args() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused value needs no usage text, and is not repeated: a URL may hold a password
        // (issue 20). Our parsers' reasons name what they may show.
        Err(err) if matches!(err.kind(), ArgErrorKind::ValueValidation) => {
            let arg = err
                .get(ContextKind::InvalidArg)
                .map_or_else(String::new, ToString::to_string);
            let why = std::error::Error::source(&err)
                .map_or_else(|| "not a valid value".to_owned(), ToString::to_string);
            eprintln!("error: invalid value for '{arg}': {why}");
            std::process::exit(2)
        }
        Err(err) => err.exit(),
    }
}
