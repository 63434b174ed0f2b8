//! Logs go to stderr (journald picks them up), filtered by `RUST_LOG` (default `info`), as
//! text lines or, with `--log-format json`, one JSON object per line for log shippers.
//!
//! What is logged is decided elsewhere and never includes a password, a key, a body or a
//! query string.

use std::io::Write;

use clap::ValueEnum;

use crate::text::escape_controls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // The lines carry no colours, so there is nothing for env_logger to strip: without
    // this it scans every byte of every line written to a pipe or a file for escapes.
    builder.write_style(env_logger::WriteStyle::Always);
    builder.format(move |buf, record| {
        // Logged values come from clients (a path with a bare LF, say): escaped, so that one
        // record is one line and no terminal sequence reaches the operator.
        let text = record.args().to_string();
        let msg = escape_controls(&text);
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
