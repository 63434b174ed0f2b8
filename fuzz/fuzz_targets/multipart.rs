//! multipart/form-data bodies, with the boundary taken from the input's first line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zulip_auth::params::Params;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let boundary = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let content_type = format!("multipart/form-data; boundary={boundary}");
    if let Ok(params) = Params::parse(Some(&content_type), body, "") {
        let _ = params.get("password");
        let _ = params.ignored(&[]);
    }
});
