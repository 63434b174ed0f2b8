//! The relying party of `src/auth/oidc` against a real provider, one step per run, for
//! tests/oidc/run (which drives the provider's login pages in between).
//!
//! Usage (the client from CLIENT_ID and CLIENT_SECRET):
//!   oidc-check start ISSUER RETURN_URL [reconfirm]
//!       prints {"url": the authorization URL, "pending": what to keep}
//!   oidc-check finish ISSUER RETURN_URL PENDING_JSON CALLBACK_URL
//!       checks the callback's state, exchanges its code, checks the ID token, and prints
//!       {"subject","email","name"}, or {"error","reason","unavailable"} and exits 1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test driver run by tests/oidc/run: a panic with its message is the report"
)]

use std::process::ExitCode;

use openidconnect::url::Url;
use serde_json::{Value, json};
use zulip_auth::auth::oidc::config::parse_scopes;
use zulip_auth::auth::oidc::{Pending, Provider, RelyingParty};
use zulip_auth::clock::now;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (Some(step), Some(issuer), Some(return_url)) = (args.first(), args.get(1), args.get(2))
    else {
        eprintln!("usage: oidc-check start|finish ISSUER RETURN_URL ...");
        return ExitCode::from(2);
    };
    let provider = Provider {
        id: 0,
        realm_id: 0,
        name: "test".into(),
        issuer: issuer.clone(),
        client_id: env("CLIENT_ID", "zulip"),
        client_secret: env("CLIENT_SECRET", "zulip-test-secret"),
        scopes: parse_scopes("openid email profile").unwrap_or_default(),
        display_name: "Test".into(),
        display_icon: None,
        auto_signup: false,
    };
    let party = RelyingParty::new(1);
    let outcome = match (step.as_str(), args.get(3), args.get(4)) {
        ("start", reconfirm, None) => party
            .start(&provider, return_url, reconfirm.is_some(), now())
            .map(|start| json!({"url": start.url, "pending": pending_json(&start.pending)})),
        ("finish", Some(pending), Some(callback)) => {
            finish(&party, &provider, return_url, pending, callback)
        }
        _ => {
            eprintln!("usage: oidc-check start|finish ISSUER RETURN_URL ...");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(answer) => {
            println!("{answer}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!(
                "{}",
                json!({"error": error.to_string(), "reason": error.reason(), "unavailable": error.is_unavailable()})
            );
            ExitCode::FAILURE
        }
    }
}

fn finish(
    party: &RelyingParty,
    provider: &Provider,
    return_url: &str,
    pending: &str,
    callback: &str,
) -> Result<Value, zulip_auth::auth::oidc::Error> {
    let pending: Value = serde_json::from_str(pending).unwrap_or_default();
    let text = |key: &str| pending[key].as_str().unwrap_or_default().to_owned();
    let pending = Pending {
        state: text("state"),
        nonce: text("nonce"),
        verifier: text("verifier"),
        started: pending["started"].as_f64().unwrap_or_default(),
        reconfirm: pending["reconfirm"].as_bool().unwrap_or_default(),
    };
    let callback = Url::parse(callback).ok();
    let query = |key: &str| {
        callback
            .as_ref()
            .and_then(|url| url.query_pairs().find(|(k, _)| k == key))
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    if !pending.state_matches(&query("state")) {
        // What the callback handler answers before asking the provider anything.
        return Ok(json!({"refused": "state"}));
    }
    let identity = party.finish(provider, return_url, &pending, &query("code"), now())?;
    Ok(json!({"subject": identity.subject, "email": identity.email, "name": identity.name}))
}

fn pending_json(pending: &Pending) -> Value {
    json!({
        "state": pending.state,
        "nonce": pending.nonce,
        "verifier": pending.verifier,
        "started": pending.started,
        "reconfirm": pending.reconfirm,
    })
}
