//! zulip-auth: a small synchronous server that speaks Zulip's password-login API, so that
//! unmodified Zulip clients can log in against it.
//!
//! The request path is plain threads: tiny_http hands requests to a fixed pool of workers,
//! each owning a SQLite connection, and the handlers in [`api`] answer them byte for byte as
//! `docs/wire.md` describes. The library exists so the binary stays thin and fuzz targets can
//! reach the parsers.

/// The version and the git commit it was built from (`zulip-auth --version`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ZULIP_AUTH_COMMIT"),
    ")"
);

pub mod api;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod deadline;
pub mod dns;
pub mod email;
pub mod error;
pub mod gate;
pub mod http;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod params;
pub mod reset_desk;
pub mod server;
pub mod site;
pub mod store;
pub mod text;
pub mod web;
