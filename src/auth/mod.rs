//! Authentication: password hashes, API keys and rate limits.

pub mod basic;
pub mod key;
pub mod password;
pub mod policy;
pub mod ratelimit;
