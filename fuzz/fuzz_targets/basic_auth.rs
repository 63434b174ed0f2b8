//! The Basic `Authorization` header: a valid parse always yields a well-formed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zulip_auth::auth::{basic, key};

fuzz_target!(|data: &str| {
    if let Ok(credentials) = basic::parse(Some(data)) {
        assert!(key::is_well_formed(&credentials.api_key));
    }
});
