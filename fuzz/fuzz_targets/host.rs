//! The external URL and the Host → subdomain rule: input is `URL\nHOST`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zulip_auth::site::{ExternalUrl, Site};

fuzz_target!(|data: &str| {
    let (url, host) = data.split_once('\n').unwrap_or((data, data));
    if let Ok(url) = ExternalUrl::parse(url) {
        let subdomain = url.subdomain_of(host);
        let _ = url.realm_url(&subdomain);
        let site = Site { external_url: Some(url) };
        let _ = site.realm_url(&subdomain, host);
    }
    let _ = Site::default().subdomain_of(host);
});
