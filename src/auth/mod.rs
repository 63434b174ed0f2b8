//! Authentication: the login, password hashes, LDAP, API keys and rate limits.

pub mod basic;
pub mod key;
pub mod ldap;
pub mod login;
pub mod password;
pub mod policy;
pub mod ratelimit;
