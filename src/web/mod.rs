//! The pages a person sees in a browser (web.md): rendered on the server with maud, which
//! escapes every interpolated value, and working without JavaScript at a phone's width.
//!
//! The shared pieces live here, one concept per module: [`page`] (the layout, the security
//! headers, plain error pages, redirects), [`cookie`], [`csrf`] (the `csrftoken` pair) and
//! [`form`] (fields of a POST or a query string). Each page has its own module, reached from
//! the route table in `api.rs`.

pub mod cookie;
pub mod csrf;
pub mod form;
pub mod login;
pub mod mobile_flow;
pub mod page;
