//! One manifest file: streamed to disk as the server sends it (gzip stays gzip), then read
//! back once to validate every line and, only if the compression must change, re-encoded.
//! A broken transfer restarts the file; nothing partial ever has the final name.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use line_check::check_line;
use reqwest::Method;
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::writer::{Compression, NdjsonWriter};
use stratus_http::Client;
use stratus_http::client::{error_chain, error_text};

/// Which manifest list a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Output,
    Deleted,
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Output => "output",
            Kind::Deleted => "deleted",
            Kind::Error => "error",
        }
    }
}

/// One file of the manifest.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub resource_type: Option<String>,
    pub url: String,
    pub count: Option<u64>,
}

/// What a finished file holds.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub resources: u64,
    /// Decompressed bytes.
    pub bytes: u64,
    /// Bytes received over the network.
    pub wire_bytes: u64,
    /// Validation problems, `file:line: reason` style, at most 20 kept.
    pub problems: Vec<String>,
    pub bad_lines: u64,
    /// Attachments inlined into this file.
    pub attachments: u64,
}

/// Settings shared by all downloads.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub authorize: bool,
    pub compression: Compression,
    pub max_line_bytes: usize,
    pub attempts: u32,
}

/// Downloads `item` to `dest` (or only validates it when `dest` is `None`).
pub async fn fetch(
    client: &Client,
    item: &Item,
    dest: Option<&Path>,
    scratch: &Path,
    opts: &FetchOptions,
    wire: &std::sync::atomic::AtomicU64,
) -> Result<Fetched, String> {
    let tmp = match dest {
        Some(d) => d.with_file_name(format!(
            ".{}.download",
            d.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        )),
        None => scratch.join(format!(".discard.{}.download", crate::export::unique())),
    };
    let mut last_error = String::new();
    let mut have = 0u64;
    // Attempts that moved the file forward (a resumed range) do not use up the budget and
    // go again at once; attempts that made no progress back off. A hard cap still ends a
    // transfer that creeps forever.
    let budget = opts.attempts.max(1);
    let mut failures = 0;
    let mut tries = 0;
    while failures < budget && tries < budget * 20 {
        tries += 1;
        let before = have;
        if failures > 0 && tries > 1 {
            tracing::info!(
                "{}: retrying the download from byte {have} ({last_error})",
                item.url
            );
        }
        match transfer(client, item, &tmp, opts, wire, &mut have).await {
            Ok(received) => {
                let item = item.clone();
                let tmp2 = tmp.clone();
                let dest = dest.map(Path::to_path_buf);
                let opts2 = opts.clone();
                let mut fetched = tokio::task::spawn_blocking(move || {
                    validate_and_place(&item, &tmp2, dest.as_deref(), &opts2)
                })
                .await
                .map_err(|e| e.to_string())??;
                fetched.wire_bytes = received;
                return Ok(fetched);
            }
            Err(Transfer::Fatal(e)) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            Err(Transfer::Retry(e)) => {
                last_error = e;
                if have > before {
                    continue;
                }
                failures += 1;
                let base = std::time::Duration::from_millis(250);
                tokio::time::sleep(stratus_http::retry::backoff(base, failures, base * 64)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&tmp);
    Err(format!("gave up after {tries} attempts: {last_error}"))
}

enum Transfer {
    Retry(String),
    Fatal(String),
}

/// One attempt. `have` is how many bytes `tmp` already holds from an attempt that broke:
/// the request asks for the rest with `Range`, and a server that answers 200 instead (no
/// range support) sends the file from the start. Afterwards `have` says how much `tmp`
/// holds, so the next attempt continues from there.
async fn transfer(
    client: &Client,
    item: &Item,
    tmp: &Path,
    opts: &FetchOptions,
    wire: &std::sync::atomic::AtomicU64,
    have: &mut u64,
) -> Result<u64, Transfer> {
    let from = *have;
    let resp = client
        .send_opts(Method::GET, &item.url, opts.authorize, |r| {
            let r = r
                .header(reqwest::header::ACCEPT, "application/fhir+ndjson")
                .header(reqwest::header::ACCEPT_ENCODING, "gzip");
            if from > 0 {
                r.header(reqwest::header::RANGE, format!("bytes={from}-"))
            } else {
                r
            }
        })
        .await
        .map_err(|e| Transfer::Retry(e.to_string()))?;
    let status = resp.status();
    if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        // The file changed under us: start over.
        *have = 0;
        return Err(Transfer::Retry(
            "the server refused the resume range".into(),
        ));
    }
    if !status.is_success() {
        let msg = format!("HTTP {}: {}", status.as_u16(), error_text(resp).await);
        // 410 Gone and other 4xx will not get better by asking again.
        return Err(if stratus_http::retry::is_retryable(status.as_u16()) {
            Transfer::Retry(msg)
        } else {
            Transfer::Fatal(msg)
        });
    }
    let partial = status == reqwest::StatusCode::PARTIAL_CONTENT
        && resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(&format!("bytes {from}-")));
    let start = if partial { from } else { 0 };
    let expected_len = resp.content_length().map(|l| l + start);
    let file = if partial {
        std::fs::OpenOptions::new().append(true).open(tmp)
    } else {
        std::fs::File::create(tmp)
    }
    .map_err(|e| Transfer::Fatal(format!("{}: {e}", tmp.display())))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut stream = resp.bytes_stream();
    let mut received = start;
    let mut broke = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                broke = Some(format!("connection broke: {}", error_chain(&e)));
                break;
            }
        };
        received += chunk.len() as u64;
        wire.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        out.write_all(&chunk)
            .map_err(|e| Transfer::Fatal(format!("{}: {e}", tmp.display())))?;
    }
    out.flush()
        .map_err(|e| Transfer::Fatal(format!("{}: {e}", tmp.display())))?;
    // Everything on disk so far is good; the next attempt may continue from it.
    *have = received;
    if let Some(e) = broke {
        return Err(Transfer::Retry(e));
    }
    if let Some(len) = expected_len
        && len != received
    {
        return Err(Transfer::Retry(format!("got {received} of {len} bytes")));
    }
    Ok(received)
}

fn is_gzip(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == [0x1f, 0x8b]
}

fn validate_and_place(
    item: &Item,
    tmp: &Path,
    dest: Option<&Path>,
    opts: &FetchOptions,
) -> Result<Fetched, String> {
    let gz = is_gzip(tmp);
    let want_gz = matches!(opts.compression, Compression::Gzip { .. });
    let mut writer = match dest {
        Some(d) if gz != want_gz => {
            Some(NdjsonWriter::create(d, opts.compression).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let expected_type = match item.kind {
        Kind::Output => item.resource_type.clone(),
        Kind::Deleted => Some("Bundle".to_owned()),
        Kind::Error => Some("OperationOutcome".to_owned()),
    };
    let mut reader = NdjsonReader::open(
        tmp,
        ReaderOptions {
            max_line_bytes: opts.max_line_bytes,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut f = Fetched::default();
    let problem = |f: &mut Fetched, line: u64, why: String| {
        f.bad_lines += 1;
        if f.problems.len() < 20 {
            f.problems.push(format!("{} line {line}: {why}", item.url));
        }
    };
    loop {
        let line = match reader.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                return Err(format!("the file is corrupt: {e}"));
            }
        };
        match line {
            Line::TooLong { number } => problem(
                &mut f,
                number,
                format!("line over {} bytes", opts.max_line_bytes),
            ),
            Line::Data { number, bytes } => {
                f.bytes += bytes.len() as u64 + 1;
                match check_line(bytes, expected_type.as_deref(), item.kind == Kind::Output) {
                    Ok(()) => {}
                    Err(why) => problem(&mut f, number, why),
                }
                f.resources += 1;
                if let Some(w) = writer.as_mut() {
                    w.write_line(bytes).map_err(|e| e.to_string())?;
                }
            }
        }
    }
    if let Some(expected) = item.count
        && item.kind == Kind::Output
        && expected != f.resources
    {
        let msg = format!(
            "{}: the manifest says {expected} resources, the file holds {}",
            item.url, f.resources
        );
        f.problems.push(msg);
    }
    match (dest, writer) {
        (Some(_), Some(w)) => {
            w.finish().map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(tmp);
        }
        (Some(d), None) => std::fs::rename(tmp, d).map_err(|e| format!("{}: {e}", d.display()))?,
        (None, _) => {
            let _ = std::fs::remove_file(tmp);
        }
    }
    Ok(f)
}

/// JSON checks of one line: valid JSON, a `resourceType` as the manifest says, an `id`.
mod line_check {
    use stratus_fhir::sonic_rs::{self, JsonValueTrait};

    pub fn check_line(bytes: &[u8], expected: Option<&str>, needs_id: bool) -> Result<(), String> {
        let v: sonic_rs::Value = sonic_rs::from_slice(bytes).map_err(|e| {
            format!(
                "invalid JSON: {}",
                stratus_fhir::resource::first_line(&e.to_string())
            )
        })?;
        let Some(t) = v.get("resourceType").and_then(|t| t.as_str()) else {
            return Err("no resourceType".into());
        };
        if let Some(want) = expected
            && t != want
            && t != "Parameters"
        {
            return Err(format!("resourceType {t}, but the manifest says {want}"));
        }
        if needs_id
            && v.get("id")
                .and_then(|i| i.as_str())
                .is_none_or(str::is_empty)
        {
            return Err(format!("{t} without an id"));
        }
        Ok(())
    }
}

/// Where a file goes: `dir/Type.NNN.ndjson[.gz]` (or `N.Type.ndjson[.gz]`), with
/// `error/` and `deleted/` sub-folders.
pub fn dest_name(
    kind: Kind,
    rtype: &str,
    n: u32,
    standard: bool,
    compression: Compression,
) -> PathBuf {
    let suffix = compression.suffix();
    // The type comes from the server's manifest: anything but a plain type name (a path,
    // `..`) would put the file outside the export folder.
    let rtype = if !rtype.is_empty()
        && rtype.len() <= 64
        && rtype.starts_with(|c: char| c.is_ascii_uppercase())
        && rtype.chars().all(|c| c.is_ascii_alphanumeric())
    {
        rtype
    } else {
        "output"
    };
    let name = if standard {
        format!("{n}.{rtype}{suffix}")
    } else {
        format!("{rtype}.{n:03}{suffix}")
    };
    match kind {
        Kind::Output => PathBuf::from(name),
        Kind::Deleted => Path::new("deleted").join(name),
        Kind::Error => Path::new("error").join(name),
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn a_manifest_type_cannot_leave_the_export_folder() {
        let c = Compression::None;
        assert_eq!(
            dest_name(Kind::Output, "Patient", 1, false, c),
            PathBuf::from("Patient.001.ndjson")
        );
        for bad in ["../../etc/x", "/tmp/x", "", "patient", "Pa/tient"] {
            let p = dest_name(Kind::Error, bad, 2, false, c);
            assert_eq!(p, Path::new("error").join("output.002.ndjson"), "{bad}");
        }
    }
}
