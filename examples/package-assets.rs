//! The generated files of the Debian package: one man page per command (zulip-auth.1,
//! zulip-auth-user-create.1, ...) and bash, zsh and fish completions, all from the clap
//! definitions the binary parses with, so they cannot drift from `--help`.
//!
//! Usage: cargo run --example package-assets -- DIR   (deploy/debian/build-deb runs it)

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: package-assets DIR");
    let dir = Path::new(&dir);
    let command = zulip_auth::cli::Cli::command();
    std::fs::create_dir_all(dir.join("man"))?;
    // Recursive: a page per subcommand, named after its path (zulip-auth-user-create.1).
    clap_mangen::generate_to(command.clone(), dir.join("man"))?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), "zulip-auth", &completions)?;
    }
    Ok(())
}
