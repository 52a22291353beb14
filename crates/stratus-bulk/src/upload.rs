//! Remote destinations. `s3://` is in [`crate::s3`]. An `http(s)://` destination: each finished file is sent with `PUT {base}/{name}`, where
//! `name` is its place in the export folder (`Patient.001.ndjson.gz`,
//! `error/OperationOutcome.001.ndjson.gz`, `manifest.json`). The body streams from the
//! staged file, so memory stays flat. Credentials come from the URL (`https://user:pw@...`);
//! the FHIR server's token is never sent there.

use std::path::Path;

use reqwest::Method;
use stratus_http::Client;
use stratus_http::client::error_text;
use tokio_util::io::ReaderStream;

/// A client for the destination: no FHIR headers or token, Basic auth from the URL's
/// user info if it has one.
pub fn destination_client(url: &str) -> Result<(Client, String), String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("--out {url}: {e}"))?;
    let auth = if u.username().is_empty() {
        stratus_http::Auth::None
    } else {
        let user = u.username().to_owned();
        let password = u.password().unwrap_or_default().to_owned();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        stratus_http::Auth::Basic { user, password }
    };
    let base = u.as_str().trim_end_matches('/').to_owned();
    let client =
        Client::new(&base, auth, stratus_http::HttpConfig::default()).map_err(|e| e.to_string())?;
    Ok((client, base))
}

pub async fn put_file(client: &Client, base: &str, name: &Path, path: &Path) -> Result<(), String> {
    let rel = name
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let url = format!("{}/{rel}", base.trim_end_matches('/'));
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let content_type = if rel.ends_with(".json") {
        "application/json"
    } else if rel.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/fhir+ndjson"
    };
    let resp = client
        .send_opts(Method::PUT, &url, true, |r| {
            let body = match std::fs::File::open(path) {
                Ok(f) => reqwest::Body::wrap_stream(ReaderStream::with_capacity(
                    tokio::fs::File::from_std(f),
                    256 * 1024,
                )),
                Err(_) => reqwest::Body::from(Vec::new()),
            };
            r.header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(body)
        })
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!(
            "upload {url}: HTTP {}: {}",
            status.as_u16(),
            error_text(resp).await
        ));
    }
    Ok(())
}

/// A remote destination for finished files.
pub enum Uploader {
    Http {
        client: Client,
        base: String,
    },
    S3 {
        dest: crate::s3::S3Dest,
        http: reqwest::Client,
    },
}

impl Uploader {
    /// For `http(s)://...` or `s3://bucket/prefix`.
    pub fn for_url(url: &str) -> Result<Uploader, String> {
        if url.starts_with("s3://") {
            let dest = crate::s3::S3Dest::from_url(url)?;
            let http = reqwest::Client::builder()
                .no_gzip()
                .build()
                .map_err(|e| e.to_string())?;
            Ok(Uploader::S3 { dest, http })
        } else {
            let (client, base) = destination_client(url)?;
            Ok(Uploader::Http { client, base })
        }
    }

    /// Sends `path` as `name` (a relative path in the export folder).
    pub async fn put(&self, name: &Path, path: &Path) -> Result<(), String> {
        match self {
            Uploader::Http { client, base } => put_file(client, base, name, path).await,
            Uploader::S3 { dest, http } => {
                let rel = name
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                dest.put(http, &rel, path).await
            }
        }
    }
}
