//! Inlining clinical-note attachments: `DocumentReference.content[].attachment` and
//! `DiagnosticReport.presentedForm[]` that point to a URL get the bytes themselves as
//! `data`, so the ETL and NLP never need to reach back to the EHR. Fields written follow
//! smart-fetch: `data`, `size`, `hash` (SHA-1, base64), and `url` is kept.

use std::path::Path;

use base64::Engine;
use reqwest::Method;
use serde_json::Value;
use sha1::{Digest, Sha1};
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::writer::{Compression, NdjsonWriter};
use stratus_http::Client;
use stratus_http::client::{error_text, origin};

/// Which attachments to inline.
#[derive(Debug, Clone)]
pub struct InlineOptions {
    /// MIME types (parameters ignored); `text/plain`, `text/html`, `application/xhtml+xml`
    /// by default, as smart-fetch.
    pub types: Vec<String>,
    /// Larger attachments are left as URLs.
    pub max_bytes: u64,
    /// Inline PDFs as their text (`text/plain`), as bulk-data-client's `pdfToText` does, so
    /// NLP reads them like any other note.
    pub pdf_to_text: bool,
}

impl Default for InlineOptions {
    fn default() -> Self {
        InlineOptions {
            types: vec![
                "text/plain".into(),
                "text/html".into(),
                "application/xhtml+xml".into(),
            ],
            max_bytes: 10 << 20,
            pdf_to_text: false,
        }
    }
}

/// What inlining did to one file.
#[derive(Debug, Default, Clone)]
pub struct Inlined {
    pub inlined: u64,
    pub already: u64,
    pub too_large: u64,
    pub failed: Vec<String>,
}

fn mime(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The resource types whose files carry attachments to inline.
pub fn applies_to(resource_type: &str) -> bool {
    matches!(resource_type, "DocumentReference" | "DiagnosticReport")
}

/// Rewrites `path` (an NDJSON file of DocumentReference or DiagnosticReport) with its
/// attachments inlined. The file is replaced atomically; unchanged if nothing was inlined.
pub async fn inline_file(
    client: &Client,
    path: &Path,
    compression: Compression,
    opts: &InlineOptions,
) -> Result<Inlined, String> {
    let mut result = Inlined::default();
    let mut reader =
        NdjsonReader::open(path, ReaderOptions::default()).map_err(|e| e.to_string())?;
    let mut changed = false;
    let tmp_path = path.with_file_name(format!(
        ".{}.inline",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut writer = NdjsonWriter::create(&tmp_path, compression).map_err(|e| e.to_string())?;
    loop {
        let bytes = match reader.next_line().map_err(|e| e.to_string())? {
            None => break,
            Some(Line::TooLong { .. }) => continue,
            Some(Line::Data { bytes, .. }) => bytes.to_vec(),
        };
        let mut v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                writer.write_line(&bytes).map_err(|e| e.to_string())?;
                continue;
            }
        };
        let mut touched = false;
        let pointers: Vec<String> = attachment_pointers(&v);
        for p in pointers {
            let Some(att) = v.pointer_mut(&p) else {
                continue;
            };
            match inline_one(client, att, opts).await {
                Outcome::Inlined => {
                    result.inlined += 1;
                    touched = true;
                }
                Outcome::Already => result.already += 1,
                Outcome::TooLarge => result.too_large += 1,
                Outcome::Skipped => {}
                Outcome::Failed(e) => {
                    if result.failed.len() < 20 {
                        result.failed.push(e);
                    }
                }
            }
        }
        if touched {
            changed = true;
            let out = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
            writer.write_line(&out).map_err(|e| e.to_string())?;
        } else {
            writer.write_line(&bytes).map_err(|e| e.to_string())?;
        }
    }
    drop(reader);
    if changed {
        writer.finish().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp_path, path).map_err(|e| format!("{}: {e}", path.display()))?;
    } else {
        drop(writer);
        let _ = std::fs::remove_file(&tmp_path);
    }
    Ok(result)
}

fn attachment_pointers(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v.get("resourceType").and_then(Value::as_str) {
        Some("DocumentReference") => {
            for (i, c) in v
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if c.get("attachment").is_some() {
                    out.push(format!("/content/{i}/attachment"));
                }
            }
        }
        Some("DiagnosticReport") => {
            let n = v
                .get("presentedForm")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            out.extend((0..n).map(|i| format!("/presentedForm/{i}")));
        }
        _ => {}
    }
    out
}

enum Outcome {
    Inlined,
    Already,
    TooLarge,
    Skipped,
    Failed(String),
}

async fn inline_one(client: &Client, att: &mut Value, opts: &InlineOptions) -> Outcome {
    let Some(ct) = att.get("contentType").and_then(Value::as_str) else {
        return Outcome::Skipped;
    };
    let m = mime(ct);
    if !opts.types.iter().any(|t| mime(t) == m) {
        return Outcome::Skipped;
    }
    if att.get("data").is_some() {
        return Outcome::Already;
    }
    let Some(url) = att.get("url").and_then(Value::as_str) else {
        return Outcome::Skipped;
    };
    if att
        .get("size")
        .and_then(Value::as_u64)
        .is_some_and(|s| s > opts.max_bytes)
    {
        return Outcome::TooLarge;
    }
    let full = client.resolve(url);
    // The token goes only to the FHIR server itself, never to hosts named in resources.
    let same_origin = origin(&full) == origin(client.base());
    let resp = match client
        .send_opts(Method::GET, &full, same_origin, |r| r.header("accept", &m))
        .await
    {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let status = resp.status();
    if !status.is_success() {
        return Outcome::Failed(format!(
            "{full}: HTTP {}: {}",
            status.as_u16(),
            error_text(resp).await
        ));
    }
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(format!("{full}: {e}")),
    };
    // Some servers answer a Binary resource whatever Accept says.
    let bytes: Vec<u8> = if is_json && m != "application/json" {
        let binary: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return Outcome::Failed(format!("{full}: not a Binary: {e}")),
        };
        match binary
            .get("data")
            .and_then(Value::as_str)
            .map(|d| base64::engine::general_purpose::STANDARD.decode(d.trim()))
        {
            Some(Ok(b)) => b,
            _ => return Outcome::Failed(format!("{full}: a Binary without base64 data")),
        }
    } else {
        body.to_vec()
    };
    if bytes.len() as u64 > opts.max_bytes {
        return Outcome::TooLarge;
    }
    let bytes = if opts.pdf_to_text && m == "application/pdf" {
        match tokio::task::spawn_blocking(move || pdf_extract::extract_text_from_mem(&bytes)).await
        {
            Ok(Ok(text)) => {
                att["contentType"] = Value::String("text/plain; charset=utf-8".into());
                text.into_bytes()
            }
            Ok(Err(e)) => return Outcome::Failed(format!("{full}: no text from the PDF: {e}")),
            Err(e) => return Outcome::Failed(format!("{full}: {e}")),
        }
    } else {
        bytes
    };
    let hash = Sha1::digest(&bytes);
    att["data"] = Value::String(base64::engine::general_purpose::STANDARD.encode(&bytes));
    att["size"] = Value::from(bytes.len() as u64);
    att["hash"] = Value::String(base64::engine::general_purpose::STANDARD.encode(hash));
    Outcome::Inlined
}
