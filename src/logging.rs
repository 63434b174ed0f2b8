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
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}
