//! The one integration-test binary: every test starts the real `zulip-auth` on 127.0.0.1:0
//! with a throw-away database and talks HTTP to it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failed unwrap is a failed test, with its line"
)]

mod account;
mod accounts;
mod admin_changes;
mod cli;
mod clients;
mod config;
mod dev;
mod devices;
mod fetch_api_key;
mod hardening;
mod hygiene;
mod instances;
mod jwt;
mod ldap;
mod mail;
mod mailbox;
mod metrics;
mod oidc;
mod ops;
mod passkeys;
mod ratelimit;
mod redteam;
mod reset;
mod server_settings;
mod settings_api;
mod support;
mod transport;
mod web;
