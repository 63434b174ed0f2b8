//! Logs go to stderr (journald picks them up), filtered by `RUST_LOG` (default `info`), as
//! text lines or, with `--log-format json`, one JSON object per line for log shippers.
//!
//! What is logged is decided elsewhere and never includes a password, a key, a body or a
//! query string.

use std::io::Write;

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    builder.format(move |buf, record| {
        // Logged values come from clients (a path with a bare LF, say): escaped, so that one
        // record is one line and no terminal sequence reaches the operator.
        let msg = escape_controls(&record.args().to_string());
        match format {
            LogFormat::Text => writeln!(
                buf,
                "[{} {:<5} {}] {msg}",
                buf.timestamp(),
                record.level(),
                record.target()
            ),
            LogFormat::Json => {
                let line = serde_json::json!({
                    "ts": buf.timestamp_millis().to_string(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "msg": msg,
                });
                writeln!(buf, "{line}")
            }
        }
    });
    builder.init();
}

/// `text` with each control character written as Rust escapes it (`\n`, `\r`, `\u{1b}`).
pub fn escape_controls(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("GET /a\nb\rc\u{1b}[31m\u{7f}é"),
            "GET /a\\nb\\rc\\u{1b}[31m\\u{7f}é"
        );
    }
}
