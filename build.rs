//! Records the git commit the binary is built from, for `zulip-auth --version`: "unknown"
//! when built outside a git checkout (from a source tarball, say).

use std::process::Command;

/// `git ARGS` in the package directory, trimmed, if git ran and answered.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short", "HEAD"]);
    println!(
        "cargo:rustc-env=ZULIP_AUTH_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rerun-if-changed=build.rs");
    if commit.is_none() {
        return;
    }
    // A new commit moves the branch's ref (HEAD names it), or HEAD itself when detached.
    // `--git-path` finds them in a linked worktree too.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
