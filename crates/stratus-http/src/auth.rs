//! How requests authenticate. SMART Backend Services tokens are fetched when first needed,
//! cached, and replaced 30 s before they expire, so a long export never polls with a dead
//! token; a 401 anyway (a server that cut the token short) forces one refresh.

use std::time::{Duration, Instant};

use stratus_smart::keys::SigningKey;

/// How requests authenticate.
pub enum Auth {
    None,
    /// A fixed bearer token (`--bearer-token`).
    Bearer(String),
    /// HTTP Basic (`--basic-user` / `--basic-passwd`).
    Basic {
        user: String,
        password: String,
    },
    /// SMART Backend Services: signed assertions for short-lived tokens.
    Smart(Box<SmartClient>),
}

/// A SMART Backend Services client: its id, key and scope, and the token it holds.
pub struct SmartClient {
    pub client_id: String,
    pub key: SigningKey,
    /// Requested scope; `system/*.rs` by default, falling back to `system/*.read` once if
    /// the server answers `invalid_scope` (many servers know only v1 scopes).
    pub(crate) scope: tokio::sync::Mutex<String>,
    /// The token endpoint, if given; otherwise discovered from the server.
    pub(crate) token_url: tokio::sync::Mutex<Option<String>>,
    pub(crate) cached: tokio::sync::Mutex<Option<Cached>>,
    /// Assertion lifetime (at most 300 s).
    pub assertion_lifetime: Duration,
    /// When not empty, a token endpoint found by discovery is used only on one of these
    /// origins: a client acting for someone else (the import consumer) must not let a
    /// discovery document send its signed assertion to another server's token endpoint.
    pub token_origins: Vec<String>,
}

pub(crate) struct Cached {
    pub token: String,
    pub refresh_at: Instant,
}

impl SmartClient {
    pub fn new(
        client_id: impl Into<String>,
        key: SigningKey,
        scope: Option<String>,
        token_url: Option<String>,
    ) -> Self {
        SmartClient {
            client_id: client_id.into(),
            key,
            scope: tokio::sync::Mutex::new(scope.unwrap_or_else(|| "system/*.rs".into())),
            token_url: tokio::sync::Mutex::new(token_url),
            cached: tokio::sync::Mutex::new(None),
            assertion_lifetime: Duration::from_secs(300),
            token_origins: Vec::new(),
        }
    }
}

/// `system/*.rs` → `system/*.read`: the v1 spelling of a v2 read+search scope.
pub(crate) fn v1_scope(scope: &str) -> Option<String> {
    let out: Vec<String> = scope
        .split_whitespace()
        .map(|s| match s.strip_suffix(".rs") {
            Some(base) => format!("{base}.read"),
            None => s.to_owned(),
        })
        .collect();
    let out = out.join(" ");
    (out != scope).then_some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn v1_fallback() {
        assert_eq!(
            super::v1_scope("system/*.rs system/Patient.rs").as_deref(),
            Some("system/*.read system/Patient.read")
        );
        assert_eq!(super::v1_scope("system/*.read"), None);
    }
}
