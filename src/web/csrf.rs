//! Cross-site request forgery protection as Django's (web.md §3): a random token in the
//! `csrftoken` cookie, repeated in each form's hidden `csrfmiddlewaretoken` field. A POST
//! whose pair is missing or differs gets 403. Another site can make a browser send the
//! cookie, but cannot read it to fill in the field. Nothing is stored on the server, so any
//! instance can check a form another one served.

use subtle::ConstantTimeEq;

use crate::auth::token;
use crate::http::{Request, Response};
use crate::web::cookie::{self, SameSite};
use crate::web::form::Form;
use crate::web::page::Refusal;

pub const COOKIE: &str = "csrftoken";
pub const FIELD: &str = "csrfmiddlewaretoken";
/// 32 random bytes, hex-encoded.
const TOKEN_LENGTH: usize = 64;
/// As Django's `CSRF_COOKIE_AGE`: a page left open for days still submits.
const COOKIE_MAX_AGE: u64 = 31_449_600;

/// The token a page's forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Csrf {
    token: String,
}

impl Csrf {
    /// The request's token if its cookie holds a well-formed one, else a new one: tabs
    /// opened side by side keep working.
    pub fn for_page(request: &Request) -> Csrf {
        match cookie::get(request, COOKIE).filter(|t| is_well_formed(t)) {
            Some(token) => Csrf {
                token: token.to_owned(),
            },
            None => Csrf {
                token: random_hex(),
            },
        }
    }

    /// The check every POST passes first: the cookie and the field agree.
    pub fn check(request: &Request, form: &Form) -> Result<Csrf, Refusal> {
        let cookie = cookie::get(request, COOKIE).filter(|t| is_well_formed(t));
        match (cookie, form.get(FIELD)) {
            (Some(cookie), Some(field))
                if bool::from(cookie.as_bytes().ct_eq(field.as_bytes())) =>
            {
                Ok(Csrf {
                    token: cookie.to_owned(),
                })
            }
            _ => Err(Refusal {
                status: 403,
                message: "CSRF verification failed. Request aborted.",
            }),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// `response` with the cookie (re)set, so that its age starts again.
    pub fn set_cookie(&self, response: Response, secure: bool) -> Response {
        response.header(
            "Set-Cookie",
            cookie::set(
                COOKIE,
                &self.token,
                Some(COOKIE_MAX_AGE),
                SameSite::Lax,
                secure,
            ),
        )
    }
}

fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 32 bytes from the OS generator as 64 lowercase hex digits: for tokens of every kind.
pub fn random_hex() -> String {
    token::random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(cookie: Option<&str>, field: Option<&str>) -> (Request, Form) {
        let body = field.map_or(String::new(), |f| format!("{FIELD}={f}"));
        let request = Request {
            method: "POST".into(),
            cookie: cookie.map(|c| format!("{COOKIE}={c}")),
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: body.into_bytes(),
            ..Request::default()
        };
        let form = Form::from_body(&request).unwrap();
        (request, form)
    }

    #[test]
    fn pair_must_match() {
        let token = random_hex();
        let other = random_hex();
        let (request, form) = post(Some(&token), Some(&token));
        assert_eq!(Csrf::check(&request, &form).unwrap().token(), token);
        for (cookie, field) in [
            (None, Some(token.as_str())),
            (Some(token.as_str()), None),
            (Some(token.as_str()), Some(other.as_str())),
            (Some("short"), Some("short")),
            (Some(""), Some("")),
        ] {
            let (request, form) = post(cookie, field);
            assert_eq!(Csrf::check(&request, &form).unwrap_err().status, 403);
        }
    }

    #[test]
    fn a_page_reuses_a_good_cookie_and_replaces_a_bad_one() {
        let token = random_hex();
        let (request, _) = post(Some(&token), None);
        assert_eq!(Csrf::for_page(&request).token(), token);
        let (request, _) = post(Some("<script>"), None);
        let fresh = Csrf::for_page(&request);
        assert!(is_well_formed(fresh.token()));
        let response = fresh.set_cookie(crate::web::page::plain(200, "ok"), true);
        let set = &response.headers.last().unwrap().1;
        assert!(set.starts_with(&format!("csrftoken={}; Path=/; HttpOnly;", fresh.token())));
        assert!(set.ends_with("SameSite=Lax; Secure"));
    }
}
