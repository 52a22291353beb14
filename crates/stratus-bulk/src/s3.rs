//! An `s3://bucket/prefix` destination: one signed `PUT Object` per finished file
//! (AWS Signature Version 4, payload unsigned so the body can stream from disk). Works with
//! AWS and with S3-compatible servers (MinIO, s3s, moto) through `AWS_ENDPOINT_URL`.
//!
//! Credentials and region come from the usual variables: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or `AWS_DEFAULT_REGION`,
//! default `us-east-1`) and `AWS_ENDPOINT_URL`. Single PUTs carry objects up to 5 GB, far
//! above any Bulk Data file at the default split.

use std::path::Path;
use std::time::Duration;

/// Where and how to write objects.
#[derive(Clone)]
pub struct S3Dest {
    /// `https://s3.us-east-1.amazonaws.com` or a custom endpoint; path-style URLs.
    pub endpoint: String,
    pub bucket: String,
    pub prefix: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "s3://{}/{} at {}",
            self.bucket, self.prefix, self.endpoint
        )
    }
}

impl S3Dest {
    /// Parses `s3://bucket[/prefix]` and reads credentials from the environment.
    pub fn from_url(url: &str) -> Result<S3Dest, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("'{url}' is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("'{url}' names no bucket"));
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let access_key = env("AWS_ACCESS_KEY_ID")
            .ok_or("s3:// needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
        let secret_key = env("AWS_SECRET_ACCESS_KEY")
            .ok_or("s3:// needs AWS_SECRET_ACCESS_KEY as well as AWS_ACCESS_KEY_ID")?;
        Ok(S3Dest {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region,
            access_key,
            secret_key,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// Uploads `path` as `prefix/name`.
    pub async fn put(&self, http: &reqwest::Client, name: &str, path: &Path) -> Result<(), String> {
        let key = self.key(name);
        let canonical_uri = format!("/{}/{}", uri_encode(&self.bucket), uri_encode(&key));
        let url = format!("{}{canonical_uri}", self.endpoint);
        let parsed = url::Url::parse(&url).map_err(|e| format!("{url}: {e}"))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(format!("{url}: no host")),
        };
        let len = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let mut last = String::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                let wait = Duration::from_millis(300);
                tokio::time::sleep(stratus_http::retry::backoff(wait, attempt, wait * 16)).await;
            }
            let (amz_date, auth) = self.sign("PUT", &canonical_uri, &host);
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                file,
                256 * 1024,
            ));
            let mut req = http
                .put(&url)
                .header("x-amz-date", &amz_date)
                .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
                .header("authorization", auth)
                .header("content-length", len)
                .body(body);
            if let Some(t) = &self.session_token {
                req = req.header("x-amz-security-token", t);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status().as_u16();
                    let text = r.text().await.unwrap_or_default();
                    let code = between(&text, "<Code>", "</Code>").unwrap_or_default();
                    let msg = between(&text, "<Message>", "</Message>").unwrap_or_default();
                    last = format!("s3://{}/{key}: HTTP {status} {code} {msg}", self.bucket);
                    if !(status == 429 || status >= 500) {
                        return Err(last);
                    }
                }
                Err(e) => last = format!("s3://{}/{key}: {e}", self.bucket),
            }
        }
        Err(last)
    }

    /// The `x-amz-date` value and the `Authorization` header for a request whose signed
    /// headers are host, x-amz-content-sha256, x-amz-date (and the session token).
    fn sign(&self, method: &str, canonical_uri: &str, host: &str) -> (String, String) {
        let now = stratus_fhir::date::format_instant(stratus_fhir::date::now_ms());
        // 2026-11-23T06:52:34.120Z -> 20261123T065234Z
        let amz_date = format!(
            "{}{}{}T{}{}{}Z",
            &now[0..4],
            &now[5..7],
            &now[8..10],
            &now[11..13],
            &now[14..16],
            &now[17..19]
        );
        let date = &amz_date[..8];
        let mut headers = vec![
            ("host", host.to_owned()),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD".to_owned()),
            ("x-amz-date", amz_date.clone()),
        ];
        if let Some(t) = &self.session_token {
            headers.push(("x-amz-security-token", t.clone()));
        }
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| *k).collect();
        let signed = signed.join(";");
        let canonical_request =
            format!("{method}\n{canonical_uri}\n\n{canonical_headers}\n{signed}\nUNSIGNED-PAYLOAD");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&hmac_sha256::Hash::hash(canonical_request.as_bytes()))
        );
        let k_date = hmac_sha256::HMAC::mac(date, format!("AWS4{}", self.secret_key));
        let k_region = hmac_sha256::HMAC::mac(&self.region, k_date);
        let k_service = hmac_sha256::HMAC::mac("s3", k_region);
        let k_signing = hmac_sha256::HMAC::mac("aws4_request", k_service);
        let signature = hex(&hmac_sha256::HMAC::mac(string_to_sign, k_signing));
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.access_key
        );
        (amz_date, auth)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// S3's URI encoding: everything but unreserved characters and `/`.
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn between<'a>(text: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let start = text.find(a)? + a.len();
    let end = text[start..].find(b)? + start;
    Some(&text[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_encoding() {
        // SAFETY of the env calls is not at stake: from_url only reads.
        let d = S3Dest {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "b".into(),
            prefix: "exports/2025".into(),
            region: "us-east-1".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            session_token: None,
        };
        assert_eq!(
            d.key("error/OperationOutcome.001.ndjson.gz"),
            "exports/2025/error/OperationOutcome.001.ndjson.gz"
        );
        assert_eq!(uri_encode("a b/c+d"), "a%20b/c%2Bd");
        let (date, auth) = d.sign("PUT", "/b/k", "127.0.0.1:9000");
        assert_eq!(date.len(), 16);
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=test/"));
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
    }
}
