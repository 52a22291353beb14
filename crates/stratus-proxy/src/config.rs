//! What `stratus proxy` is told: the upstream, the network, the registry and the limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ProxyError;

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// FHIR base URL of the open server, e.g. `http://127.0.0.1:9444/fhir`.
    pub upstream: String,
    /// Other spellings of the upstream's FHIR base that appear in its answers (its own
    /// public URL when the proxy reaches it at another address, `localhost` for
    /// `127.0.0.1`...). URLs under them are rewritten like URLs under `upstream`.
    pub upstream_aliases: Vec<String>,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Origin clients use, if not `http://HOST:PORT` (behind a TLS terminator, in a
    /// container). Every URL the proxy hands out starts with it.
    pub public_url: Option<String>,
    /// `clients.json` is kept here, so registrations survive a restart; without it they
    /// live as long as the process.
    pub state_dir: Option<PathBuf>,
    /// `expires_in` of access tokens.
    pub token_lifetime: Duration,
    /// Requests without a token pass through unchecked (bdt's "optional" auth); a token
    /// that is sent must still be valid.
    pub optional_auth: bool,
    /// Whether `POST /auth/register` accepts new clients.
    pub registration: bool,
    /// The most a registered client may be granted (a registration may ask for less, never
    /// more), and what it gets when its registration asks for nothing.
    pub default_scope: String,
    /// Largest request body the proxy reads itself: token and registration requests,
    /// `$export` kick-offs and `_search` forms (forwarded bodies otherwise stream).
    pub max_body_bytes: usize,
    /// Largest JSON answer (manifest, Bundle, CapabilityStatement) buffered to rewrite its
    /// URLs, before and after gunzip; a larger one streams through unchanged.
    pub max_rewrite_bytes: usize,
    /// Time to connect to the upstream and to get its response head; also the longest
    /// pause inside a body. A body that keeps flowing may take as long as it needs.
    pub upstream_timeout: Duration,
}

impl ProxyConfig {
    /// Defaults for fronting `upstream` on 127.0.0.1:9446.
    pub fn new(upstream: impl Into<String>) -> Self {
        ProxyConfig {
            upstream: upstream.into(),
            upstream_aliases: Vec::new(),
            host: "127.0.0.1".into(),
            port: 9446,
            public_url: None,
            state_dir: None,
            token_lifetime: Duration::from_secs(300),
            optional_auth: false,
            registration: true,
            default_scope: "system/*.rs".into(),
            max_body_bytes: 1 << 20,
            max_rewrite_bytes: 32 << 20,
            upstream_timeout: Duration::from_secs(60),
        }
    }
}

/// An absolute http(s) URL without query or fragment, trailing slashes removed, so that
/// prefix matching and joining never double or miss a `/`.
pub(crate) fn base_url(what: &str, raw: &str) -> Result<String, ProxyError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ProxyError::Config(format!("{what} '{raw}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ProxyError::Config(format!(
            "{what} '{raw}' must be an http:// or https:// URL"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ProxyError::Config(format!(
            "{what} '{raw}' must not have a query or fragment"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ProxyError::Config(format!("{what} '{raw}' has no host")));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised_and_checked() {
        assert_eq!(
            base_url("u", "http://h:1/fhir/").ok().as_deref(),
            Some("http://h:1/fhir")
        );
        assert_eq!(base_url("u", "HTTP://H").ok().as_deref(), Some("http://h"));
        assert!(base_url("u", "ftp://h/fhir").is_err());
        assert!(base_url("u", "http://h/fhir?x=1").is_err());
        assert!(base_url("u", "fhir").is_err());
    }
}
