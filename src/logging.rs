//! Logs go to stderr (journald picks them up), filtered by `RUST_LOG` (default `info`), as
//! text lines or, with `--log-format json`, one JSON object per line for log shippers.
//!
//! When stderr is the journal (systemd sets `JOURNAL_STREAM` to its device and inode), each
//! line starts with its level as a journal priority, `<N>`, which journald reads and strips
//! (`journalctl -p warning`), and carries no timestamp of its own: the journal records one.
//!
//! What is logged is decided elsewhere and never includes a password, a key, a body or a
//! query string.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use clap::ValueEnum;
use log::Level;

use crate::text::escape_controls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let journal = stderr_is_journal();
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format(move |buf, record| {
        // Logged values come from clients (a path with a bare LF, say): escaped, so that one
        // record is one line and no terminal sequence reaches the operator.
        let text = record.args().to_string();
        let msg = escape_controls(&text);
        let level = record.level();
        if journal {
            write!(buf, "<{}>", journal_priority(level))?;
        }
        match (format, journal) {
            (LogFormat::Text, false) => writeln!(
                buf,
                "[{} {level:<5} {}] {msg}",
                buf.timestamp(),
                record.target()
            ),
            (LogFormat::Text, true) => writeln!(buf, "[{level:<5} {}] {msg}", record.target()),
            (LogFormat::Json, _) => {
                let mut line = serde_json::json!({
                    "level": level.as_str(),
                    "target": record.target(),
                    "msg": msg,
                });
                if !journal {
                    line["ts"] = buf.timestamp_millis().to_string().into();
                }
                writeln!(buf, "{line}")
            }
        }
    });
    builder.init();
}

/// syslog's priority of a level, as journald reads it from a `<N>` prefix.
fn journal_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` is
/// `DEVICE:INODE` of that stream, and a redirection (`2>file`) changes stderr but not the
/// variable, so both are compared.
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(meta) => names_stream(&stream.to_string_lossy(), meta.dev(), meta.ino()),
        Err(_) => false,
    }
}

fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream.split_once(':').is_some_and(|(d, i)| {
        d.parse::<u64>().is_ok_and(|d| d == dev) && i.parse::<u64>().is_ok_and(|i| i == ino)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("9:12345", 8, 12345));
        assert!(!names_stream("8", 8, 12345));
        assert!(!names_stream("", 0, 0));
    }

    #[test]
    fn levels_are_syslog_priorities() {
        assert_eq!(journal_priority(Level::Error), 3);
        assert_eq!(journal_priority(Level::Warn), 4);
        assert_eq!(journal_priority(Level::Info), 6);
        assert_eq!(journal_priority(Level::Trace), 7);
    }
}
