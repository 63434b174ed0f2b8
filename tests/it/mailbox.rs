//! A real SMTP server for tests: `tests/mail/smtpd.py` (aiosmtpd) on a free loopback port,
//! run by the Python that `ZULIP_AUTH_TEST_SMTPD_PYTHON` names (`tests/mail/run` sets it up),
//! and the messages it received.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub struct Mailbox {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl Mailbox {
    pub fn start() -> Mailbox {
        let python = std::env::var("ZULIP_AUTH_TEST_SMTPD_PYTHON").expect(
            "ZULIP_AUTH_TEST_SMTPD_PYTHON names a Python with aiosmtpd: run tests/mail/run",
        );
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mail/smtpd.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("smtpd.py did not start: {line:?}"));
        Mailbox { child, port, dir }
    }

    /// `--smtp-url` for this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The messages received so far, oldest first, raw.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".eml") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| std::fs::read_to_string(self.dir.path().join(n)).unwrap())
            .collect()
    }

    /// Waits (at most 15 s) until `count` messages have arrived, and returns them.
    #[track_caller]
    pub fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages arrived",
                messages.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a message with quoted-printable soft line breaks joined.
pub fn unfolded(message: &str) -> String {
    message.replace("=\r\n", "").replace("=\n", "")
}

/// The reset token in a message's link.
pub fn reset_token(message: &str) -> String {
    let text = unfolded(message);
    let start = text
        .find("/accounts/password/reset/")
        .unwrap_or_else(|| panic!("no reset link in {message}"))
        + "/accounts/password/reset/".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}
