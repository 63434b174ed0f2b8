//! Authentication: password hashes, API keys and (with the abuse work) rate limits.

pub mod key;
pub mod password;
