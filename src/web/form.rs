//! The fields of a form POST (its body only: web.md §3 keeps all state in fields, never in
//! the action's query string) and of a page's query string, decoded as strictly as the
//! API's parameters. A malformed one gets a plain 400 page.

use crate::http::Request;
use crate::params::Params;
use crate::web::page::Refusal;

#[derive(Debug)]
pub struct Form(Params);

impl Form {
    /// The urlencoded (or multipart) body of a POST.
    pub fn from_body(request: &Request) -> Result<Form, Refusal> {
        Form::parse(request.content_type.as_deref(), &request.body, "")
    }

    /// The query string of a GET.
    pub fn from_query(request: &Request) -> Result<Form, Refusal> {
        Form::parse(None, b"", &request.query)
    }

    fn parse(content_type: Option<&str>, body: &[u8], query: &str) -> Result<Form, Refusal> {
        Params::parse(content_type, body, query)
            .map(Form)
            .map_err(|err| Refusal {
                status: 400,
                // The parameter errors all have fixed messages.
                message: match err.msg {
                    std::borrow::Cow::Borrowed(message) => message,
                    std::borrow::Cow::Owned(_) => "Invalid request parameters",
                },
            })
    }

    /// The last value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name)
    }

    /// The value of `name`, or `""` when absent: for text inputs, which browsers always send.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_fields_only_for_a_post() {
        let request = Request {
            method: "POST".into(),
            query: "a=query".into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: b"b=body&b=last".to_vec(),
            ..Request::default()
        };
        let form = Form::from_body(&request).unwrap();
        assert_eq!((form.get("a"), form.text("b")), (None, "last"));
        let query = Form::from_query(&request).unwrap();
        assert_eq!((query.get("a"), query.get("b")), (Some("query"), None));
        let bad = Request {
            query: "a=%FF".into(),
            ..Request::default()
        };
        assert_eq!(Form::from_query(&bad).unwrap_err().status, 400);
    }
}
