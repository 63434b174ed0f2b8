//! The binary: parse the command line, run it, and turn an error into one line on stderr and
//! a non-zero exit. This is the only place errors become exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = zulip_auth::cli::Cli::parse();
    zulip_auth::logging::init(cli.log_format);
    match zulip_auth::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zulip-auth: {err}");
            ExitCode::FAILURE
        }
    }
}
