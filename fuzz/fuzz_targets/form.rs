//! urlencoded bodies and query strings: never a panic, and only the errors wire.md §3.4 names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zulip_auth::params::Params;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    for content_type in [Some("application/x-www-form-urlencoded; charset=utf-8"), None] {
        if let Ok(params) = Params::parse(content_type, data, &query) {
            let _ = params.get("username");
            let _ = params.ignored(&["username", "password"]);
        }
    }
});
