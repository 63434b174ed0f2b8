//! Authentication: the login, the browser sign-in's steps, password hashes, LDAP, API keys,
//! rate limits and the second factor.

pub mod account;
pub mod basic;
pub mod enrolment;
pub mod jwt;
pub mod key;
pub mod ldap;
pub mod login;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod policy;
pub mod ratelimit;
pub mod reset;
pub mod second_factor;
pub mod session;
pub mod signin;
pub mod token;
pub mod totp;
