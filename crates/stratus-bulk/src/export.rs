//! The export from kick-off to manifest: every step logs its bulk-data-client event and
//! updates the state file, so that running the same command again after any failure picks
//! up where this one stopped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stratus_fhir::writer::Compression;
use stratus_http::client::{error_text, json_body, origin};
use stratus_http::{Client, HttpError};

use crate::download::{self, FetchOptions, Item, Kind};
use crate::events::EventLog;
use crate::request::ExportSpec;
use crate::state::{FileDone, State};

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("kick-off {url} refused: HTTP {status}: {message}")]
    Kickoff {
        url: String,
        status: u16,
        message: String,
    },
    #[error("export status {url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    State(String),
    #[error(
        "{count} files failed (first: {first}); run the same command again to fetch what is missing"
    )]
    Failed { count: usize, first: String },
    #[error("{count} validation problems and --strict (first: {first})")]
    Invalid { count: u64, first: String },
}

/// How to run the export.
#[derive(Debug, Clone)]
pub struct Options {
    /// The output folder; `None` validates and counts without keeping anything.
    pub out: Option<PathBuf>,
    /// Downloads at once.
    pub parallel: usize,
    /// `1.Patient.ndjson` instead of `Patient.001.ndjson`.
    pub standard_names: bool,
    pub compression: Compression,
    /// Validation problems fail the export.
    pub strict: bool,
    pub max_line_bytes: usize,
    /// Skip the kick-off and poll this status URL.
    pub resume_url: Option<String>,
    /// Delete the server's job instead of exporting.
    pub cancel: bool,
    /// Leave the job on the server after a complete download (default: DELETE it).
    pub keep_on_server: bool,
    /// Longest wait between status polls.
    pub max_poll_interval: Duration,
    /// Attempts per file.
    pub attempts: u32,
    /// Inline note attachments into DocumentReference and DiagnosticReport files.
    pub inline: Option<crate::attachments::InlineOptions>,
    /// Send every finished file (then `manifest.json` and `log.ndjson`) to this
    /// `http(s)://` URL (a PUT per file) or `s3://bucket/prefix`; `out` is then the local
    /// staging folder.
    pub upload: Option<String>,
    /// Only fetch files whose URL is on one of these origins (`scheme://host[:port]`);
    /// empty: any. For a client acting on someone else's word (the import consumer), so
    /// that a manifest cannot send it, with its token, to any address.
    pub allowed_origins: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            out: None,
            parallel: 4,
            standard_names: false,
            compression: Compression::FAST_GZIP,
            strict: false,
            max_line_bytes: stratus_fhir::reader::DEFAULT_MAX_LINE_BYTES,
            resume_url: None,
            cancel: false,
            keep_on_server: false,
            max_poll_interval: Duration::from_secs(60),
            attempts: 5,
            inline: None,
            upload: None,
            allowed_origins: Vec::new(),
        }
    }
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub phase: Mutex<String>,
    pub server_percent: AtomicU64,
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub resources: AtomicU64,
    pub wire_bytes: AtomicU64,
}

impl Progress {
    pub fn set_phase(&self, p: impl Into<String>) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p.into();
    }

    /// The current phase: "kick-off", "waiting for the server", "downloading", ...
    pub fn phase_text(&self) -> String {
        self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the export produced.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub status_url: String,
    pub transaction_time: String,
    pub files: u64,
    pub resources: u64,
    /// Resources in the output files, by resource type.
    pub resources_by_type: BTreeMap<String, u64>,
    pub bytes: u64,
    pub bad_lines: u64,
    pub problems: Vec<String>,
    /// Messages from the server's error files (OperationOutcome diagnostics).
    pub server_messages: Vec<String>,
    pub resumed: bool,
    pub cancelled: bool,
    /// Attachments inlined, and those that could not be.
    pub attachments: u64,
    pub attachment_failures: Vec<String>,
}

/// A name unique within this process, for scratch files.
pub fn unique() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs one export.
pub async fn run(
    client: &Client,
    spec: &ExportSpec,
    opts: &Options,
    progress: Arc<Progress>,
) -> Result<Summary, BulkError> {
    let out = opts.out.as_deref();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| BulkError::Io(format!("{}: {e}", dir.display())))?;
    }
    let previous = match out {
        Some(dir) => State::load(dir).map_err(BulkError::State)?,
        None => None,
    };
    let mut summary = Summary::default();

    if opts.cancel {
        let url = opts
            .resume_url
            .clone()
            .or_else(|| previous.as_ref().map(|s| s.status_url.clone()))
            .ok_or_else(|| {
                BulkError::State(
                    "nothing to cancel: no --resume URL and no export state in the output folder"
                        .into(),
                )
            })?;
        let resp = client.send(Method::DELETE, &url, |r| r).await?;
        let status = resp.status();
        if !status.is_success() && status != StatusCode::NOT_FOUND {
            return Err(BulkError::Status {
                url,
                status: status.as_u16(),
                message: error_text(resp).await,
            });
        }
        if let Some(dir) = out {
            let _ = std::fs::remove_file(State::path(dir));
        }
        summary.status_url = url;
        summary.cancelled = true;
        return Ok(summary);
    }

    let mut state = match previous {
        Some(s) if s.complete && s.spec == *spec && opts.resume_url.is_none() => {
            return Err(BulkError::State(format!(
                "{} already holds this export, complete; choose a new --out for a new export",
                out.map(|d| d.display().to_string()).unwrap_or_default()
            )));
        }
        Some(s) if s.spec == *spec && s.fhir_url == client.base() => {
            summary.resumed = true;
            s
        }
        Some(s) if opts.resume_url.is_none() => {
            return Err(BulkError::State(format!(
                "{} holds another export ({}); use a new --out, or --cancel it first",
                out.map(|d| d.display().to_string()).unwrap_or_default(),
                s.status_url
            )));
        }
        _ => State {
            fhir_url: client.base().to_owned(),
            spec: spec.clone(),
            ..State::default()
        },
    };
    let log = EventLog::open(out).map_err(|e| BulkError::Io(format!("log.ndjson: {e}")))?;

    if let Some(url) = &opts.resume_url {
        state.status_url = url.clone();
        summary.resumed = true;
    }
    if state.status_url.is_empty() {
        progress.set_phase("kick-off");
        let (kickoff_url, status_url) = kickoff(client, spec, &log).await?;
        if !opts.allowed_origins.is_empty()
            && !opts
                .allowed_origins
                .iter()
                .any(|o| Some(o.as_str()) == origin(&status_url).as_deref())
        {
            return Err(BulkError::State(format!(
                "the server's status URL {status_url} is not on an allowed origin ({})",
                opts.allowed_origins.join(", ")
            )));
        }
        state.kickoff_url = kickoff_url;
        state.status_url = status_url;
        if let Some(dir) = out {
            state.save(dir).map_err(BulkError::State)?;
        }
    } else {
        log.set_export_id(&state.status_url);
        tracing::info!("resuming export {}", state.status_url);
    }
    summary.status_url = state.status_url.clone();

    progress.set_phase("waiting for the server");
    let manifests = poll(client, &state.status_url, &log, opts, &progress).await?;
    let transaction_time = manifests
        .first()
        .and_then(|m| m.get("transactionTime"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    summary.transaction_time = transaction_time.clone();
    let requires_token = manifests
        .first()
        .and_then(|m| m.get("requiresAccessToken"))
        .and_then(Value::as_bool)
        .unwrap_or(true);

    // Every file of every page, named once and for good.
    let mut items: Vec<(Item, PathBuf)> = Vec::new();
    for m in &manifests {
        for (kind, key) in [
            (Kind::Output, "output"),
            (Kind::Deleted, "deleted"),
            (Kind::Error, "error"),
        ] {
            for entry in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                let Some(url) = entry.get("url").and_then(Value::as_str) else {
                    continue;
                };
                let url = client.resolve(url);
                if !opts.allowed_origins.is_empty() {
                    let origin = origin(&url);
                    if !opts
                        .allowed_origins
                        .iter()
                        .any(|o| Some(o.as_str()) == origin.as_deref())
                    {
                        return Err(BulkError::State(format!(
                            "the manifest lists {url}, which is not on an allowed origin ({})",
                            opts.allowed_origins.join(", ")
                        )));
                    }
                }
                let rtype = entry.get("type").and_then(Value::as_str).map(str::to_owned);
                let name = match state.files.get(&url) {
                    Some(done) => PathBuf::from(&done.dest),
                    None => {
                        let t = rtype.clone().unwrap_or_else(|| "output".into());
                        let counter = state
                            .names
                            .entry(format!("{}/{t}", kind.as_str()))
                            .or_insert(0);
                        *counter += 1;
                        download::dest_name(
                            kind,
                            &t,
                            *counter,
                            opts.standard_names,
                            opts.compression,
                        )
                    }
                };
                items.push((
                    Item {
                        kind,
                        resource_type: rtype,
                        url,
                        count: entry.get("count").and_then(Value::as_u64),
                    },
                    name,
                ));
            }
        }
    }
    if let Some(dir) = out {
        for sub in ["error", "deleted"] {
            if items.iter().any(|(i, _)| i.kind.as_str() == sub) {
                std::fs::create_dir_all(dir.join(sub)).map_err(|e| BulkError::Io(e.to_string()))?;
            }
        }
    }
    progress
        .files_total
        .store(items.len() as u64, Ordering::Relaxed);
    progress.set_phase("downloading");

    let fetch_opts = FetchOptions {
        authorize: requires_token,
        compression: opts.compression,
        max_line_bytes: opts.max_line_bytes,
        attempts: opts.attempts,
    };
    let scratch = match out {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir(),
    };
    let uploader = match &opts.upload {
        Some(u) => Some(crate::upload::Uploader::for_url(u).map_err(BulkError::Io)?),
        None => None,
    };
    let uploader = &uploader;
    let state = Arc::new(Mutex::new(state));
    let results = futures_util::stream::iter(items.iter().cloned())
        .map(|(item, name)| {
            let state = state.clone();
            let log = &log;
            let progress = progress.clone();
            let fetch_opts = &fetch_opts;
            let scratch = &scratch;
            async move {
                let already = state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .files
                    .get(&item.url)
                    .cloned();
                if let Some(done) = already {
                    progress.files_done.fetch_add(1, Ordering::Relaxed);
                    progress.resources.fetch_add(done.resources, Ordering::Relaxed);
                    return (item, name, Ok((done.resources, done.bytes, Vec::new(), 0, 0)));
                }
                log.event(
                    "download_request",
                    json!({"fileUrl": item.url, "itemType": item.kind.as_str(), "resourceType": item.resource_type}),
                );
                let dest = out.map(|d| d.join(&name));
                let r = download::fetch(
                    client,
                    &item,
                    dest.as_deref(),
                    scratch,
                    fetch_opts,
                    &progress.wire_bytes,
                )
                .await;
                let r = match (r, &opts.inline, &dest) {
                    (Ok(mut f), Some(inline), Some(path))
                        if item.kind == Kind::Output
                            && item
                                .resource_type
                                .as_deref()
                                .is_some_and(crate::attachments::applies_to) =>
                    {
                        match crate::attachments::inline_file(client, path, opts.compression, inline).await {
                            Ok(done) => {
                                f.attachments = done.inlined;
                                f.problems.extend(done.failed.iter().map(|e| format!("attachment: {e}")));
                                Ok(f)
                            }
                            Err(e) => Err(format!("inlining attachments: {e}")),
                        }
                    }
                    (r, _, _) => r,
                };
                let r = match (r, uploader, &dest) {
                    (Ok(f), Some(up), Some(path)) => {
                        match up.put(&name, path).await {
                            Ok(()) => {
                                let _ = std::fs::remove_file(path);
                                Ok(f)
                            }
                            Err(e) => Err(e),
                        }
                    }
                    (r, _, _) => r,
                };
                match r {
                    Ok(f) => {
                        log.event(
                            "download_complete",
                            json!({"fileUrl": item.url, "fileSize": f.bytes, "resourceCount": f.resources}),
                        );
                        progress.files_done.fetch_add(1, Ordering::Relaxed);
                        progress.resources.fetch_add(f.resources, Ordering::Relaxed);
                        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                        st.files.insert(
                            item.url.clone(),
                            FileDone {
                                dest: name.to_string_lossy().into_owned(),
                                resources: f.resources,
                                bytes: f.bytes,
                            },
                        );
                        if let Some(dir) = out
                            && let Err(e) = st.save(dir)
                        {
                            tracing::warn!("cannot save the export state: {e}");
                        }
                        drop(st);
                        (item, name, Ok((f.resources, f.bytes, f.problems, f.bad_lines, f.attachments)))
                    }
                    Err(e) => {
                        log.event(
                            "download_error",
                            json!({"fileUrl": item.url, "body": Value::Null, "code": Value::Null, "message": e, "responseHeaders": {}}),
                        );
                        (item, name, Err(e))
                    }
                }
            }
        })
        .buffer_unordered(opts.parallel.max(1))
        .collect::<Vec<_>>()
        .await;

    let mut failed = Vec::new();
    for (item, _, r) in &results {
        match r {
            Ok((resources, bytes, problems, bad, attachments)) => {
                summary.attachments += attachments;
                summary.files += 1;
                summary.resources += resources;
                if item.kind == Kind::Output
                    && let Some(t) = &item.resource_type
                {
                    *summary.resources_by_type.entry(t.clone()).or_default() += resources;
                }
                summary.bytes += bytes;
                summary.bad_lines += bad;
                summary.problems.extend(problems.iter().cloned());
            }
            Err(e) => failed.push(format!("{}: {e}", item.url)),
        }
    }
    if let Some(first) = failed.first() {
        return Err(BulkError::Failed {
            count: failed.len(),
            first: first.clone(),
        });
    }
    if opts.strict && !summary.problems.is_empty() {
        return Err(BulkError::Invalid {
            count: summary.problems.len() as u64,
            first: summary.problems[0].clone(),
        });
    }
    if let Some(dir) = out {
        summary.server_messages = server_messages(dir, &items);
    }

    // The manifest, with each file's destination, goes last: its arrival means complete.
    if let Some(dir) = out {
        let dests: BTreeMap<&str, &Path> = items
            .iter()
            .map(|(i, n)| (i.url.as_str(), n.as_path()))
            .collect();
        let mut manifest = manifests.first().cloned().unwrap_or(Value::Null);
        for key in ["output", "deleted", "error"] {
            let mut all: Vec<Value> = Vec::new();
            for m in &manifests {
                for e in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                    let mut e = e.clone();
                    if let Some(url) = e
                        .get("url")
                        .and_then(Value::as_str)
                        .map(|u| client.resolve(u))
                        && let Some(d) = dests.get(url.as_str())
                    {
                        e["destination"] = json!(d.to_string_lossy());
                    }
                    all.push(e);
                }
            }
            manifest[key] = Value::Array(all);
        }
        if let Some(o) = manifest.as_object_mut() {
            o.remove("link");
        }
        let path = dir.join("manifest.json");
        let mut f = stratus_fhir::writer::AtomicFile::create(&path)
            .map_err(|e| BulkError::Io(e.to_string()))?;
        let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
        f.write_all(text.as_bytes())
            .map_err(|e| BulkError::Io(e.to_string()))?;
        f.commit().map_err(|e| BulkError::Io(e.to_string()))?;
    }
    if let (Some(up), Some(dir)) = (uploader, out) {
        up.put(Path::new("manifest.json"), &dir.join("manifest.json"))
            .await
            .map_err(BulkError::Io)?;
    }
    log.event(
        "export_complete",
        json!({"files": summary.files, "resources": summary.resources, "bytes": summary.bytes, "attachments": opts.inline.as_ref().map(|_| summary.attachments), "duration": log.elapsed_ms() as u64}),
    );
    {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.complete = true;
        if let Some(dir) = out {
            st.save(dir).map_err(BulkError::State)?;
        }
    }
    if let (Some(up), Some(dir)) = (uploader, out) {
        up.put(Path::new("log.ndjson"), &dir.join("log.ndjson"))
            .await
            .map_err(BulkError::Io)?;
    }
    if !opts.keep_on_server {
        match client
            .send(Method::DELETE, &summary.status_url, |r| r)
            .await
        {
            Ok(r) if r.status().is_success() || r.status() == StatusCode::NOT_FOUND => {}
            Ok(r) => tracing::warn!(
                "the server did not release the export ({}): HTTP {}",
                summary.status_url,
                r.status().as_u16()
            ),
            Err(e) => tracing::warn!("the server did not release the export: {e}"),
        }
    }
    progress.set_phase("done");
    Ok(summary)
}

async fn kickoff(
    client: &Client,
    spec: &ExportSpec,
    log: &EventLog,
) -> Result<(String, String), BulkError> {
    // Software name and version for the log, as the peers record them; best effort.
    let meta = client
        .get_json(&format!("{}/metadata", client.base()))
        .await
        .ok();
    let software = |k: &str| {
        meta.as_ref()
            .and_then(|m| m.pointer(&format!("/software/{k}")))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let url = if spec.uses_post() {
        spec.kickoff_url(client.base())
    } else {
        spec.get_url(client.base())
    };
    let prefer = if spec.lenient {
        "respond-async, handling=lenient"
    } else {
        "respond-async"
    };
    let body = spec.parameters().to_string();
    let resp = if spec.uses_post() {
        client
            .send(Method::POST, &url, |r| {
                r.header("accept", "application/fhir+json")
                    .header("prefer", prefer)
                    .header("content-type", "application/fhir+json")
                    .body(body.clone())
            })
            .await?
    } else {
        client
            .send(Method::GET, &url, |r| {
                r.header("accept", "application/fhir+json")
                    .header("prefer", prefer)
            })
            .await?
    };
    let status = resp.status();
    let headers: serde_json::Map<String, Value> = resp
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), json!(v.to_str().ok()?))))
        .collect();
    let location = resp
        .headers()
        .get(reqwest::header::CONTENT_LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| client.resolve(l));
    let mut detail = json!({
        "exportUrl": url,
        "errorCode": Value::Null,
        "errorBody": Value::Null,
        "softwareName": software("name"),
        "softwareVersion": software("version"),
        "softwareReleaseDate": software("releaseDate"),
        "fhirVersion": meta.as_ref().and_then(|m| m.get("fhirVersion")).cloned().unwrap_or(Value::Null),
        "requestParameters": spec.log_parameters(),
        "responseHeaders": headers,
    });
    if status == StatusCode::ACCEPTED
        && let Some(loc) = location
    {
        log.set_export_id(&loc);
        log.event("kickoff", detail);
        return Ok((url, loc));
    }
    let message = if status == StatusCode::ACCEPTED {
        "the server accepted the export but sent no Content-Location".to_owned()
    } else {
        error_text(resp).await
    };
    detail["errorCode"] = json!(status.as_u16());
    detail["errorBody"] = json!(message);
    log.event("kickoff", detail);
    Err(BulkError::Kickoff {
        url,
        status: status.as_u16(),
        message,
    })
}

/// Polls until the manifest is complete; follows `link[next]` pages.
async fn poll(
    client: &Client,
    status_url: &str,
    log: &EventLog,
    opts: &Options,
    progress: &Progress,
) -> Result<Vec<Value>, BulkError> {
    let mut pages = Vec::new();
    let mut url = status_url.to_owned();
    let mut wait = Duration::from_millis(500);
    loop {
        let resp = client
            .send(Method::GET, &url, |r| {
                r.header("accept", "application/json")
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::ACCEPTED {
            let x_progress = resp
                .headers()
                .get("x-progress")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if let Some(p) = x_progress.as_deref().and_then(leading_percent) {
                progress.server_percent.store(p, Ordering::Relaxed);
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    stratus_http::retry::parse_retry_after(
                        v,
                        SystemTime::now(),
                        opts.max_poll_interval,
                    )
                });
            log.event(
                "status_progress",
                json!({"body": Value::Null, "xProgress": x_progress, "retryAfter": retry_after.map(|d| d.as_secs())}),
            );
            let delay = retry_after.unwrap_or(wait).max(Duration::from_millis(100));
            wait = (wait * 2).min(opts.max_poll_interval);
            tokio::time::sleep(delay).await;
            continue;
        }
        if !status.is_success() {
            let code = status.as_u16();
            let message = error_text(resp).await;
            log.event(
                "status_error",
                json!({"body": message, "code": code, "message": format!("Unexpected status response {code}"), "responseHeaders": {}}),
            );
            return Err(BulkError::Status {
                url,
                status: code,
                message,
            });
        }
        let manifest = json_body(&url, resp).await?;
        progress.server_percent.store(100, Ordering::Relaxed);
        let tt = manifest
            .get("transactionTime")
            .cloned()
            .unwrap_or(Value::Null);
        if pages.is_empty() {
            log.event("status_complete", json!({"transactionTime": tt}));
        }
        let count = |k: &str| {
            manifest
                .get(k)
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        };
        log.event(
            "status_page_complete",
            json!({"transactionTime": tt, "outputFileCount": count("output"), "deletedFileCount": count("deleted"), "errorFileCount": count("error")}),
        );
        let next = stratus_http::client::next_link(&manifest).map(|u| client.resolve(u));
        pages.push(manifest);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    let total = |k: &str| -> usize {
        pages
            .iter()
            .map(|m| m.get(k).and_then(Value::as_array).map_or(0, Vec::len))
            .sum()
    };
    log.event(
        "manifest_complete",
        json!({
            "transactionTime": pages.first().and_then(|m| m.get("transactionTime")).cloned().unwrap_or(Value::Null),
            "totalOutputFileCount": total("output"),
            "totalDeletedFileCount": total("deleted"),
            "totalErrorFileCount": total("error"),
            "totalManifests": pages.len(),
        }),
    );
    Ok(pages)
}

fn leading_percent(s: &str) -> Option<u64> {
    let digits: String = s.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|p| *p <= 100)
}

/// The diagnostics of the OperationOutcomes the server put in the error files.
fn server_messages(dir: &Path, items: &[(Item, PathBuf)]) -> Vec<String> {
    let mut out = Vec::new();
    for (_, name) in items.iter().filter(|(i, _)| i.kind == Kind::Error) {
        let Ok(mut reader) = stratus_fhir::NdjsonReader::open(dir.join(name), Default::default())
        else {
            continue;
        };
        while let Ok(Some(stratus_fhir::Line::Data { bytes, .. })) = reader.next_line() {
            if let Some(m) = stratus_http::client::outcome_message(&String::from_utf8_lossy(bytes))
            {
                out.push(m);
            }
            if out.len() >= 50 {
                return out;
            }
        }
    }
    out
}
