//! The binary: parse the command line, run it, and turn an error into one line on stderr and
//! a non-zero exit. This is the only place errors become exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = zulip_auth::cli::config::parse().and_then(|cli| {
        zulip_auth::logging::init(cli.log_format);
        zulip_auth::cli::run(cli)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("zulip-auth: {err}");
            ExitCode::FAILURE
        }
    }
}
