//! Fetching a JWKS named by URL (`jwks_uri` at registration), for the servers that take
//! one: bounded in time and size, since the URL comes from whoever registers.

use std::time::Duration;

use serde_json::Value;

/// The largest JWKS accepted; real ones are a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// GETs `url` (http or https only) with `http`, within `timeout`, and parses it as JSON.
/// The error says what went wrong in words that follow "jwks_uri URL: ".
pub async fn fetch(http: &reqwest::Client, url: &str, timeout: Duration) -> Result<Value, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http:// and https:// URLs are fetched".into());
    }
    let fetch = async {
        let mut resp = http
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("cannot fetch it: {}", crate::client::error_chain(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("it answered HTTP {}", resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(format!("it is over {MAX_JWKS_BYTES} bytes"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading it: {e}"))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(format!("it is over {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice::<Value>(&body).map_err(|e| format!("it is not JSON: {e}"))
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}
