//! The request bodies of the token and registration endpoints, read the same way by every
//! Stratus server that hands out tokens (`serve`, `proxy`, `import server`), so that a
//! client which works against one works against all of them.

use std::collections::HashMap;

use serde_json::Value;

use crate::server::OAuthError;

/// The form fields of a token request. Refused unless form-encoded, as RFC 6749 requires.
pub fn token_form(content_type: &str, body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError {
            status: 400,
            error: "invalid_request",
            description: "the token request must be application/x-www-form-urlencoded".into(),
        });
    }
    Ok(url_form(body))
}

fn url_form(body: &[u8]) -> HashMap<String, String> {
    form_pairs(body).into_iter().collect()
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// What a registration request asked for (RFC 7591 style, as JSON or as a form).
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// The JWKS sent by value.
    pub jwks: Option<Value>,
    /// A JWKS URL instead (`jwks_uri`, or `jwks_url` as bulk-data-server spells it).
    pub jwks_uri: Option<String>,
    /// The scopes asked for, if any.
    pub scope: Option<String>,
    /// Every member, for the fields a particular server adds (the import consumer's
    /// `consumer_client_id` and provider base URLs).
    pub fields: serde_json::Map<String, Value>,
}

/// Reads a registration body: JSON (`{"jwks": {...} | "<JSON text>", "scope": ...}`) or a
/// form (`jwks=<JSON>&scope=...`, the bulk-data-server convention). A field repeated in a
/// form becomes a JSON array.
pub fn registration(content_type: &str, body: &[u8]) -> Result<Registration, OAuthError> {
    let fields: serde_json::Map<String, Value> = if content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        let mut m = serde_json::Map::new();
        for (k, v) in form_pairs(body) {
            match m.get_mut(&k) {
                Some(Value::Array(a)) => a.push(Value::String(v)),
                Some(old) => {
                    let first = old.take();
                    *old = Value::Array(vec![first, Value::String(v)]);
                }
                None => {
                    m.insert(k, Value::String(v));
                }
            }
        }
        m
    } else {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(metadata_error("the body is not a JSON object")),
            Err(e) => return Err(metadata_error(format!("the body is not JSON: {e}"))),
        }
    };
    let jwks = match fields.get("jwks") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(
            serde_json::from_str::<Value>(s)
                .map_err(|e| metadata_error(format!("jwks is not JSON: {e}")))?,
        ),
        Some(j) => Some(j.clone()),
    };
    let text = |name: &str| {
        fields
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let jwks_uri = text("jwks_uri").or_else(|| text("jwks_url"));
    if jwks.is_some() && jwks_uri.is_some() {
        return Err(metadata_error(
            "send either jwks or jwks_uri, not both (RFC 7591 §2)",
        ));
    }
    Ok(Registration {
        jwks,
        jwks_uri,
        scope: text("scope"),
        fields,
    })
}

/// `invalid_client_metadata`, the RFC 7591 refusal of a registration.
pub fn metadata_error(description: impl Into<String>) -> OAuthError {
    OAuthError {
        status: 400,
        error: "invalid_client_metadata",
        description: description.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_escapes() {
        let f = url_form(b"a=x+y&b=%7B%22k%22%3A1%7D&c&d=%zz");
        assert_eq!(f["a"], "x y");
        assert_eq!(f["b"], "{\"k\":1}");
        assert_eq!(f["c"], "");
        assert_eq!(f["d"], "%zz");
    }

    #[test]
    fn registration_reads_json_and_forms() {
        let r = registration(
            "application/json",
            br#"{"jwks":{"keys":[]},"scope":"system/*.rs","aud":"x"}"#,
        )
        .unwrap();
        assert!(r.jwks.is_some());
        assert_eq!(r.scope.as_deref(), Some("system/*.rs"));
        assert_eq!(r.fields["aud"], "x");

        let r = registration(
            "application/x-www-form-urlencoded",
            b"jwks_url=http%3A%2F%2Fk&base=a&base=b",
        )
        .unwrap();
        assert_eq!(r.jwks_uri.as_deref(), Some("http://k"));
        assert_eq!(r.fields["base"], serde_json::json!(["a", "b"]));

        assert!(registration("application/json", b"[1]").is_err());
        assert!(registration("application/json", br#"{"jwks":"{","x":1}"#).is_err());
        assert!(
            registration(
                "application/json",
                br#"{"jwks":{"keys":[]},"jwks_uri":"http://k"}"#
            )
            .is_err()
        );
        assert!(token_form("application/json", b"a=b").is_err());
    }
}
