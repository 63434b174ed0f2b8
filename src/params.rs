//! Request parameters from the query string and from urlencoded or multipart bodies.
//!
//! Decoding is strict where Django's is lossy: invalid UTF-8 is rejected rather than turned
//! into U+FFFD, because lossy decoding lets different byte strings collide into one password.
//! A malformed multipart body counts as having no fields (wire.md §3.4).

use std::borrow::Cow;

use percent_encoding::percent_decode;

use crate::error::ApiError;

/// Body, query string and the two together may hold at most this many pairs (wire.md §3.4).
pub const MAX_PARAMETERS: usize = 100;

/// The fields of one request, body and query string kept apart: the body wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    body: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Params {
    /// Parses the query string, and the body when its type is one Zulip parses.
    pub fn parse(content_type: Option<&str>, body: &[u8], query: &str) -> Result<Params, ApiError> {
        let raw_body = match body_kind(content_type) {
            BodyKind::UrlEncoded => split_urlencoded(body),
            BodyKind::Multipart(boundary) => parse_multipart(body, boundary.as_bytes()),
            BodyKind::Ignored => Vec::new(),
        };
        let raw_query = split_urlencoded(query.as_bytes());
        if raw_body.len() + raw_query.len() > MAX_PARAMETERS {
            return Err(ApiError::too_many_parameters());
        }
        Ok(Params {
            body: decode_pairs(raw_body)?,
            query: decode_pairs(raw_query)?,
        })
    }

    /// The last value of `name` in the body, else the last one in the query string.
    pub fn get(&self, name: &str) -> Option<&str> {
        last_value(&self.body, name).or_else(|| last_value(&self.query, name))
    }

    /// The value of a parameter the endpoint cannot do without: E2/E3 when absent.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::missing_argument(name))
    }

    /// Every distinct parameter name not in `used`, sorted by code point (wire.md §5.5).
    pub fn ignored(&self, used: &[&str]) -> Vec<String> {
        let mut names: Vec<String> = self
            .body
            .iter()
            .chain(&self.query)
            .map(|(name, _)| name)
            .filter(|name| !used.contains(&name.as_str()))
            .cloned()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

fn last_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

enum BodyKind {
    UrlEncoded,
    Multipart(String),
    Ignored,
}

fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(content_type) = content_type else {
        return BodyKind::Ignored;
    };
    let mut parts = content_type.split(';');
    let main = parts.next().unwrap_or("").trim();
    if main.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::UrlEncoded
    } else if main.eq_ignore_ascii_case("multipart/form-data") {
        let boundary = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| unquote(v.trim()).to_owned())
            .unwrap_or_default();
        BodyKind::Multipart(boundary)
    } else {
        BodyKind::Ignored
    }
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

type RawPair = (Vec<u8>, Vec<u8>);

/// Splits on `&` only, then at the first `=`; empty segments are skipped, as Python's
/// `parse_qsl` does. `+` is a space and `%XX` a byte; malformed escapes stay literal.
pub fn split_urlencoded(input: &[u8]) -> Vec<RawPair> {
    let decode = |s: &[u8]| -> Vec<u8> {
        // Spaces before escapes, so that `%2B` stays a plus; decoding only shortens.
        let spaced: Cow<'_, [u8]> = if s.contains(&b'+') {
            Cow::Owned(
                s.iter()
                    .map(|&b| if b == b'+' { b' ' } else { b })
                    .collect(),
            )
        } else {
            Cow::Borrowed(s)
        };
        let mut decoded = Vec::with_capacity(s.len());
        decoded.extend(percent_decode(&spaced));
        decoded
    };
    input
        .split(|&b| b == b'&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (decode(&segment[..eq]), decode(&segment[eq + 1..])),
            None => (decode(segment), Vec::new()),
        })
        .collect()
}

fn decode_pairs(raw: Vec<RawPair>) -> Result<Vec<(String, String)>, ApiError> {
    raw.into_iter()
        .map(|(name, value)| {
            let name = String::from_utf8(name).map_err(|_| ApiError::invalid_utf8())?;
            let value = String::from_utf8(value).map_err(|_| ApiError::invalid_utf8())?;
            if name.contains('\0') || value.contains('\0') {
                return Err(ApiError::invalid_characters());
            }
            Ok((name, value))
        })
        .collect()
}

/// The `form-data` fields of a multipart body, file parts left out. Any malformation
/// yields no fields at all.
pub fn parse_multipart(body: &[u8], boundary: &[u8]) -> Vec<RawPair> {
    try_parse_multipart(body, boundary).unwrap_or_default()
}

fn try_parse_multipart(body: &[u8], boundary: &[u8]) -> Option<Vec<RawPair>> {
    if boundary.is_empty() || boundary.len() > 200 {
        return None;
    }
    let delimiter = [b"--", boundary].concat();
    let between = [b"\r\n--", boundary].concat();

    // Skip any preamble up to the first delimiter.
    let start = if body.starts_with(&delimiter) {
        0
    } else {
        find(body, &between)? + 2
    };
    let mut rest = &body[start + delimiter.len()..];
    let mut fields = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Some(fields);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let header_end = find(rest, b"\r\n\r\n")?;
        let headers = &rest[..header_end];
        let after_headers = &rest[header_end + 4..];
        let content_end = find(after_headers, &between)?;
        if let Some(name) = form_field_name(headers)? {
            fields.push((name, after_headers[..content_end].to_vec()));
        }
        rest = &after_headers[content_end + between.len()..];
    }
}

/// `Some(Some(name))` for a field, `Some(None)` for a file or non-form-data part, and
/// `None` when the part's headers are malformed.
fn form_field_name(headers: &[u8]) -> Option<Option<Vec<u8>>> {
    let headers = std::str::from_utf8(headers).ok()?;
    for line in headers.split("\r\n") {
        let (field, value) = line.split_once(':')?;
        if !field.trim().eq_ignore_ascii_case("content-disposition") {
            continue;
        }
        let mut items = value.split(';');
        if !items.next()?.trim().eq_ignore_ascii_case("form-data") {
            return Some(None);
        }
        let mut name = None;
        for item in items {
            let (key, val) = item.split_once('=')?;
            let key = key.trim().to_ascii_lowercase();
            if key == "filename" || key == "filename*" {
                return Some(None);
            }
            if key == "name" {
                name = Some(unquote_header_value(val.trim()));
            }
        }
        return Some(name.map(String::into_bytes));
    }
    Some(None)
}

/// A header parameter value, quoted with backslash escapes or a bare token.
fn unquote_header_value(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str, query: &str) -> Result<Params, ApiError> {
        Params::parse(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            body.as_bytes(),
            query,
        )
    }

    #[test]
    fn urlencoded_decoding_rules() {
        let p = form("a=x+y%20z&b&=e&c=%zz&a=last&&", "").unwrap();
        assert_eq!(p.get("a"), Some("last"));
        assert_eq!(p.get("b"), Some(""));
        assert_eq!(p.get(""), Some("e"));
        assert_eq!(p.get("c"), Some("%zz"));
        assert_eq!(form("a=x+y%20z", "").unwrap().get("a"), Some("x y z"));
    }

    #[test]
    fn body_wins_over_query() {
        let p = form("username=body", "username=query&password=q").unwrap();
        assert_eq!(p.get("username"), Some("body"));
        assert_eq!(p.get("password"), Some("q"));
        assert_eq!(p.ignored(&["username"]), vec!["password".to_owned()]);
    }

    #[test]
    fn strictness() {
        assert_eq!(form("a=%ff", ""), Err(ApiError::invalid_utf8()));
        assert_eq!(form("a=%00", ""), Err(ApiError::invalid_characters()));
        let many = "a=1&".repeat(MAX_PARAMETERS);
        assert!(form(&many, "").is_ok());
        assert_eq!(form(&many, "b=2"), Err(ApiError::too_many_parameters()));
    }

    #[test]
    fn json_body_is_ignored() {
        let p = Params::parse(Some("application/json"), b"username=x", "").unwrap();
        assert_eq!(p.get("username"), None);
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\niago@example.com\r\n--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\npa\r\nss\r\n--XyZ--\r\n";
        let p = Params::parse(Some("multipart/form-data;boundary=\"XyZ\""), body, "").unwrap();
        assert_eq!(p.get("username"), Some("iago@example.com"));
        assert_eq!(p.get("password"), Some("pa\r\nss"));
        assert_eq!(p.get("f"), None);
        assert!(p.ignored(&["username", "password"]).is_empty());
    }

    #[test]
    fn malformed_multipart_has_no_fields() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nno end";
        let p = Params::parse(Some("multipart/form-data; boundary=XyZ"), body, "").unwrap();
        assert_eq!(p, Params::default());
    }
}
