//! The HTTP Basic `Authorization` header of the key-checking endpoints, parsed in upstream's
//! order (wire.md §9.2, steps 1 to 5). Base64 is decoded strictly, padding required.

use base64ct::{Base64, Encoding};

use crate::auth::key;

/// `email:api_key` from a well-formed header; neither is known to exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub email: String,
    pub api_key: String,
}

/// Which of the steps failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAuthError {
    /// Step 1: no header, or an empty one.
    Missing,
    /// Steps 2 and 4: not two tokens, or a payload that is not base64 `user:key`.
    Invalid,
    /// Step 3: another scheme.
    NotBasic,
    /// Step 5: the key is not 32 × `[A-Za-z0-9]`.
    MalformedKey,
}

pub fn parse(header: Option<&str>) -> Result<Credentials, BasicAuthError> {
    let header = header
        .filter(|h| !h.is_empty())
        .ok_or(BasicAuthError::Missing)?;
    let tokens: Vec<&str> = header.split_whitespace().collect();
    let [scheme, payload] = tokens[..] else {
        return Err(BasicAuthError::Invalid);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(BasicAuthError::NotBasic);
    }
    let decoded = Base64::decode_vec(payload).map_err(|_| BasicAuthError::Invalid)?;
    let decoded = String::from_utf8(decoded).map_err(|_| BasicAuthError::Invalid)?;
    let parts: Vec<&str> = decoded.split(':').collect();
    let [email, api_key] = parts[..] else {
        return Err(BasicAuthError::Invalid);
    };
    let (email, api_key) = (email.trim(), api_key.trim());
    if !key::is_well_formed(api_key) {
        return Err(BasicAuthError::MalformedKey);
    }
    Ok(Credentials {
        email: email.to_owned(),
        api_key: api_key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(payload: &str) -> String {
        format!("Basic {}", Base64::encode_string(payload.as_bytes()))
    }

    #[test]
    fn steps_in_order() {
        assert_eq!(parse(None), Err(BasicAuthError::Missing));
        assert_eq!(parse(Some("")), Err(BasicAuthError::Missing));
        assert_eq!(parse(Some("Basic")), Err(BasicAuthError::Invalid));
        assert_eq!(parse(Some("Digest abc")), Err(BasicAuthError::NotBasic));
        assert_eq!(parse(Some("Digest a b")), Err(BasicAuthError::Invalid));
        assert_eq!(parse(Some("Basic !!!")), Err(BasicAuthError::Invalid));
        assert_eq!(
            parse(Some("Basic aWFnbw")),
            Err(BasicAuthError::Invalid),
            "padding is required"
        );
        assert_eq!(
            parse(Some(&basic("no-colon"))),
            Err(BasicAuthError::Invalid)
        );
        assert_eq!(parse(Some(&basic("a:b:c"))), Err(BasicAuthError::Invalid));
        assert_eq!(
            parse(Some(&basic("a@b.c:short"))),
            Err(BasicAuthError::MalformedKey)
        );
    }

    #[test]
    fn spec_example() {
        let header = "basic aWFnb0BleGFtcGxlLmNvbTpnakEwNFpZY3FYS2FsdllNQThPZVhTZnpVT0xydGJadg==";
        assert_eq!(
            parse(Some(header)),
            Ok(Credentials {
                email: "iago@example.com".into(),
                api_key: "gjA04ZYcqXKalvYMA8OeXSfzUOLrtbZv".into()
            })
        );
        let spaced = basic(" iago@example.com : gjA04ZYcqXKalvYMA8OeXSfzUOLrtbZv ");
        assert_eq!(parse(Some(&spaced)).unwrap().email, "iago@example.com");
    }
}
