//! Bulk Data `$export`: kick-off (GET and POST), async jobs, status, manifest, cancel and
//! file downloads streamed from disk.
//!
//! A job writes its files gzip-compressed into its own folder under the work folder. Gzip
//! clients (all real ones) get those bytes as they are, with `Content-Encoding: gzip`, so a
//! download costs the server a `read` per chunk; a client that does not accept gzip gets
//! them decompressed on the fly. Memory stays flat whatever the file size.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use async_compression::tokio::bufread::GzipDecoder;
use axum::body::Body;
use axum::extract::{Extension, OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value, json};
use stratus_fhir::date::{self, DateRange};
use stratus_fhir::elements;
use tokio_util::io::ReaderStream;

use crate::app::{Caller, Shared};
use crate::error::ApiError;
use crate::faults::FaultyStream;
use crate::rest::{fhir_json, lenient};
use crate::search::{self, Criterion};
use crate::store::{NO_PATIENT, NO_TIME, Store};
use crate::subset::Elements;

/// Every export job the server knows, and how many are running.
#[derive(Default)]
pub struct Jobs {
    map: RwLock<HashMap<String, Arc<Job>>>,
    running: AtomicUsize,
}

impl Jobs {
    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) -> Option<Arc<Job>> {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }

    /// Deletes jobs whose files have expired; called every few seconds.
    pub fn sweep(&self, now_ms: i64) {
        let expired: Vec<String> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, j)| j.expires_ms().is_some_and(|e| e <= now_ms))
            .map(|(k, _)| k.clone())
            .collect();
        for id in expired {
            if let Some(job) = self.remove(&id) {
                tracing::debug!("export {id} expired; deleting its files");
                let _ = std::fs::remove_dir_all(&job.dir);
            }
        }
    }
}

pub struct Job {
    id: String,
    client: Option<String>,
    request: String,
    transaction_time: String,
    dir: PathBuf,
    cancel: AtomicBool,
    polls: AtomicU32,
    done: AtomicU64,
    total: AtomicU64,
    phase: Mutex<Phase>,
}

enum Phase {
    Running,
    Complete {
        manifest: Vec<u8>,
        files: HashMap<String, FileInfo>,
        expires_ms: i64,
    },
    Failed(String),
}

#[derive(Clone)]
struct FileInfo {
    path: PathBuf,
    disk_bytes: u64,
    plain_bytes: u64,
}

impl Job {
    fn expires_ms(&self) -> Option<i64> {
        match &*self.phase.lock().unwrap_or_else(|p| p.into_inner()) {
            Phase::Complete { expires_ms, .. } => Some(*expires_ms),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Level {
    System,
    Patient,
    Group(String),
}

/// A kick-off request, checked.
struct ExportRequest {
    level: Level,
    types: Vec<String>,
    since: Option<DateRange>,
    until: Option<DateRange>,
    /// Per type: alternatives (OR), each a list of criteria (AND).
    filters: HashMap<String, Vec<Vec<Criterion>>>,
    elements: Option<Elements>,
    /// Patients (store indexes) whose compartments are exported; `None` = no restriction.
    patients: Option<Vec<u32>>,
    /// Ignored parameters and other remarks, written to the manifest's error files.
    notes: Vec<String>,
}

pub async fn kickoff_system(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    kickoff(
        state,
        caller,
        Level::System,
        method,
        uri,
        query,
        headers,
        body,
    )
    .await
}

pub async fn kickoff_patient(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    kickoff(
        state,
        caller,
        Level::Patient,
        method,
        uri,
        query,
        headers,
        body,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn kickoff_group(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    kickoff(
        state,
        caller,
        Level::Group(id),
        method,
        uri,
        query,
        headers,
        body,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn kickoff(
    state: Shared,
    caller: Caller,
    level: Level,
    method: Method,
    uri: axum::http::Uri,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let lenient = lenient(&headers);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let from_post = method == Method::POST;
    if from_post {
        let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-long",
                    format!(
                        "the kick-off body is over {} bytes",
                        state.config.max_body_bytes
                    ),
                )
            })?;
        pairs = parameters_body(&bytes)?;
    }
    let query_pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if !from_post && query_pairs.iter().any(|(k, _)| k == "patient") {
        return Err(ApiError::bad_request(
            "the patient parameter is only accepted in a POST Parameters body (Bulk Data v2)",
        ));
    }
    pairs.extend(query_pairs);
    let request = check_request(&state.store, &caller, level, &pairs, lenient)?;

    let running = state.jobs.running.load(Ordering::SeqCst);
    if running >= state.config.max_running_exports {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("{running} exports are already running; try again later"),
        )
        .with_retry_after(10));
    }

    let id = stratus_smart::keys::random_hex(16);
    let dir = state.work.join("jobs").join(&id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let now = date::now_ms();
    let job = Arc::new(Job {
        id: id.clone(),
        client: caller.client_id().map(str::to_owned),
        request: format!("{}{}", state.origin, uri),
        transaction_time: date::format_instant(now),
        dir,
        cancel: AtomicBool::new(false),
        polls: AtomicU32::new(0),
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
        phase: Mutex::new(Phase::Running),
    });
    state
        .jobs
        .map
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), job.clone());
    state.jobs.running.fetch_add(1, Ordering::SeqCst);
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = write_export(&st, &job, &request);
        let mut phase = job.phase.lock().unwrap_or_else(|p| p.into_inner());
        *phase = match result {
            Ok((manifest, files)) => Phase::Complete {
                manifest,
                files,
                expires_ms: date::now_ms() + st.config.file_ttl.as_millis() as i64,
            },
            Err(e) => {
                tracing::warn!("export {} failed: {e}", job.id);
                Phase::Failed(e)
            }
        };
        drop(phase);
        st.jobs.running.fetch_sub(1, Ordering::SeqCst);
        if job.cancel.load(Ordering::SeqCst) {
            let _ = std::fs::remove_dir_all(&job.dir);
        }
    });

    let location = format!("{}/bulkstatus/{id}", state.base);
    let oo = stratus_fhir::bundle::operation_outcome(
        "information",
        "informational",
        &format!("export started; poll {location}"),
    );
    let mut resp = fhir_json(
        StatusCode::ACCEPTED,
        sonic_rs::to_vec(&oo).unwrap_or_default(),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    Ok(resp)
}

/// Turns a POST `Parameters` body into name/value pairs like a query string's.
fn parameters_body(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Value = sonic_rs::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the kick-off body is not JSON: {}",
            e.to_string().lines().next().unwrap_or_default()
        ))
    })?;
    if v.get("resourceType").and_then(|t| t.as_str()) != Some("Parameters") {
        return Err(ApiError::bad_request(
            "the kick-off body must be a FHIR Parameters resource",
        ));
    }
    let mut out = Vec::new();
    for p in v
        .get("parameter")
        .and_then(|p| p.as_array())
        .map(|a| a.iter().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let Some(name) = p.get("name").and_then(|n| n.as_str()) else {
            return Err(ApiError::bad_request("a Parameters entry has no name"));
        };
        let obj = p.as_object();
        let value = obj.and_then(|o| {
            o.iter()
                .find(|(k, _)| k.starts_with("value"))
                .map(|(_, v)| v.clone())
        });
        let text = match value {
            Some(v) if v.is_str() => v.as_str().unwrap_or_default().to_owned(),
            Some(v) if v.is_boolean() || v.is_number() => v.to_string(),
            Some(v) if v.get("reference").is_some() => v
                .get("reference")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned(),
            Some(v) if v.get("code").is_some() => v
                .get("code")
                .and_then(|r| r.as_str())
                .unwrap_or_default()
                .to_owned(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Parameters entry '{name}' has no value[x] this server understands"
                )));
            }
        };
        out.push((name.to_owned(), text));
    }
    Ok(out)
}

fn check_request(
    store: &Store,
    caller: &Caller,
    level: Level,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<ExportRequest, ApiError> {
    let mut req = ExportRequest {
        level: level.clone(),
        types: Vec::new(),
        since: None,
        until: None,
        filters: HashMap::new(),
        elements: None,
        patients: None,
        notes: Vec::new(),
    };
    let mut requested_types: Option<Vec<String>> = None;
    let mut element_values = Vec::new();
    let mut patient_refs = Vec::new();
    let mut filter_values = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_outputFormat" => {
                if !matches!(
                    v.as_str(),
                    "application/fhir+ndjson" | "application/ndjson" | "ndjson"
                ) {
                    let msg = format!(
                        "_outputFormat '{v}' is not supported; use application/fhir+ndjson"
                    );
                    if lenient {
                        req.notes.push(msg);
                    } else {
                        return Err(ApiError::bad_request(msg));
                    }
                }
            }
            "_since" | "_until" => {
                let r = DateRange::parse(v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{k} '{v}' is not a FHIR instant (for example 2024-01-31T00:00:00Z)"
                    ))
                })?;
                if k == "_since" {
                    req.since = Some(r);
                } else {
                    req.until = Some(r);
                }
            }
            "_type" => {
                let list = requested_types.get_or_insert_with(Vec::new);
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    match elements::resource_type(t) {
                        Some(t) => list.push(t.to_owned()),
                        None if lenient => req
                            .notes
                            .push(format!("_type '{t}' is not an R4 resource type; ignored")),
                        None => {
                            return Err(ApiError::bad_request(format!(
                                "_type '{t}' is not an R4 resource type"
                            )));
                        }
                    }
                }
            }
            "_elements" => element_values.push(v.as_str()),
            "_typeFilter" => filter_values.push(v.as_str()),
            "patient" => patient_refs.push(v.as_str()),
            "includeAssociatedData" => req.notes.push(format!(
                "includeAssociatedData '{v}' ignored: this server has no associated data"
            )),
            "allowPartialManifests" => {}
            other => {
                let msg = if other == "organizeOutputBy" {
                    "organizeOutputBy is not supported by this server".to_owned()
                } else {
                    format!("unknown $export parameter '{other}'")
                };
                if lenient {
                    req.notes.push(format!("{msg}; ignored"));
                } else {
                    return Err(ApiError::bad_request(format!(
                        "{msg} (send Prefer: handling=lenient to have it ignored)"
                    )));
                }
            }
        }
    }
    if let (Some(s), Some(u)) = (req.since, req.until)
        && u.end <= s.start
    {
        return Err(ApiError::bad_request("_until is before _since"));
    }
    if !element_values.is_empty() {
        req.elements = Some(Elements::parse(element_values)?);
    }
    for value in filter_values {
        for q in split_type_filters(value) {
            parse_type_filter(&q, &mut req, lenient)?;
        }
    }

    // Which patients.
    let group_members: Option<Vec<u32>> = match &level {
        Level::Group(id) => {
            let g = store
                .groups
                .get(id)
                .ok_or_else(|| ApiError::not_found(format!("Group/{id} is not on this server")))?;
            Some(g.members.clone())
        }
        _ => None,
    };
    if !patient_refs.is_empty() {
        if matches!(level, Level::System) {
            return Err(ApiError::bad_request(
                "the patient parameter is not allowed on a system-level export; use Patient/$export or Group/[id]/$export",
            ));
        }
        let mut chosen = Vec::new();
        for r in patient_refs {
            let id = r.strip_prefix("Patient/").unwrap_or(r);
            let idx = store
                .patient_index(id)
                .filter(|_| store.has_patient(id))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("patient {r} is not on this server"))
                })?;
            if let Some(members) = &group_members
                && !members.contains(&idx)
            {
                return Err(ApiError::bad_request(format!(
                    "patient {r} is not a member of the group"
                )));
            }
            chosen.push(idx);
        }
        req.patients = Some(chosen);
    } else {
        req.patients = group_members;
    }

    // Which types.
    let compartment_only = !matches!(level, Level::System);
    match requested_types {
        Some(list) => {
            for t in &list {
                caller.require_read(t)?;
            }
            let mut seen = HashSet::new();
            req.types = list
                .into_iter()
                .filter(|t| seen.insert(t.clone()))
                .collect();
        }
        None => {
            req.types = store
                .types()
                .filter(|t| caller.can_read(&t.name))
                .filter(|t| !compartment_only || !t.by_patient.is_empty())
                .map(|t| t.name.clone())
                .collect();
            if req.types.is_empty() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the access token's scopes allow none of the resource types on this server",
                ));
            }
        }
    }
    for t in req.filters.keys() {
        if !req.types.contains(t) {
            req.notes.push(format!(
                "_typeFilter for {t} has no effect: {t} is not among the exported types"
            ));
        }
    }
    Ok(req)
}

/// STU2 lets one `_typeFilter` value hold several queries separated by commas, but commas
/// also separate search values; a comma starts a new query only when `Type?` follows it.
fn split_type_filters(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in value.split(',') {
        let starts_query = part
            .split_once('?')
            .is_some_and(|(t, _)| elements::resource_type(t).is_some());
        match out.last_mut() {
            Some(last) if !starts_query => {
                last.push(',');
                last.push_str(part);
            }
            _ => out.push(part.to_owned()),
        }
    }
    out
}

fn parse_type_filter(q: &str, req: &mut ExportRequest, lenient: bool) -> Result<(), ApiError> {
    let Some((t, params)) = q.split_once('?') else {
        return Err(ApiError::bad_request(format!(
            "_typeFilter '{q}' is not of the form Type?param=value"
        )));
    };
    let Some(t) = elements::resource_type(t) else {
        return Err(ApiError::bad_request(format!(
            "_typeFilter '{q}': '{t}' is not an R4 resource type"
        )));
    };
    let mut criteria = Vec::new();
    for (k, v) in url::form_urlencoded::parse(params.as_bytes()) {
        if k.starts_with('_') && k != "_id" && k != "_lastUpdated" {
            return Err(ApiError::bad_request(format!(
                "_typeFilter '{q}': result parameter '{k}' is not allowed in a type filter"
            )));
        }
        match search::parse_criterion(t, &k, &v)? {
            Some(c) => criteria.push(c),
            None if lenient => {
                req.notes.push(format!(
                    "_typeFilter '{q}': {t} has no search parameter '{k}' here; that filter was ignored"
                ));
                return Ok(());
            }
            None => {
                let names: Vec<&str> = search::params_for(t).iter().map(|p| p.name).collect();
                return Err(ApiError::bad_request(format!(
                    "_typeFilter '{q}': {t} has no search parameter '{k}' here (supported: {})",
                    names.join(", ")
                )));
            }
        }
    }
    if criteria.is_empty() {
        return Err(ApiError::bad_request(format!(
            "_typeFilter '{q}' has no search parameters"
        )));
    }
    req.filters.entry(t.to_owned()).or_default().push(criteria);
    Ok(())
}

type Written = (Vec<u8>, HashMap<String, FileInfo>);

/// The file being written: type, name, encoder, resources, uncompressed bytes.
type OpenFile = (String, String, GzEncoder<BufWriter<File>>, u64, u64);

/// A download body.
type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send>>;

struct Output {
    dir: PathBuf,
    level: u32,
    limit: u64,
    base_url: String,
    /// Per type: files written so far and the open one.
    counters: HashMap<String, u32>,
    current: Option<OpenFile>,
    items: Vec<(String, String, u64)>,
    files: HashMap<String, FileInfo>,
    kind: &'static str,
}

impl Output {
    fn new(dir: PathBuf, level: u32, limit: u64, base_url: String, kind: &'static str) -> Self {
        Output {
            dir,
            level,
            limit,
            base_url,
            counters: HashMap::new(),
            current: None,
            items: Vec::new(),
            files: HashMap::new(),
            kind,
        }
    }

    fn write(&mut self, rtype: &str, line: &[u8]) -> std::io::Result<()> {
        let rotate = match &self.current {
            Some((t, _, _, count, _)) => t != rtype || *count >= self.limit,
            None => true,
        };
        if rotate {
            self.close()?;
            let n = self.counters.entry(rtype.to_owned()).or_insert(0);
            *n += 1;
            let name = match self.kind {
                "output" => format!("{n}.{rtype}.ndjson"),
                kind => format!("{kind}.{n}.{rtype}.ndjson"),
            };
            let file = File::create(self.dir.join(format!("{name}.gz")))?;
            let enc = GzEncoder::new(
                BufWriter::with_capacity(1 << 20, file),
                Compression::new(self.level),
            );
            self.current = Some((rtype.to_owned(), name, enc, 0, 0));
        }
        if let Some((_, _, enc, count, plain)) = self.current.as_mut() {
            enc.write_all(line)?;
            enc.write_all(b"\n")?;
            *count += 1;
            *plain += line.len() as u64 + 1;
        }
        Ok(())
    }

    fn close(&mut self) -> std::io::Result<()> {
        if let Some((rtype, name, enc, count, plain)) = self.current.take() {
            let mut w = enc.finish()?;
            w.flush()?;
            let path = self.dir.join(format!("{name}.gz"));
            let disk_bytes = std::fs::metadata(&path)?.len();
            self.items
                .push((rtype, format!("{}/{name}", self.base_url), count));
            self.files.insert(
                name,
                FileInfo {
                    path,
                    disk_bytes,
                    plain_bytes: plain,
                },
            );
        }
        Ok(())
    }

    fn manifest_items(&self) -> Vec<Value> {
        self.items
            .iter()
            .map(|(t, url, count)| json!({"type": t, "url": url, "count": count}))
            .collect()
    }
}

fn write_export(state: &Shared, job: &Job, req: &ExportRequest) -> Result<Written, String> {
    let store = &state.store;
    let files_url = format!("{}/bulkfiles/{}", state.base, job.id);
    let io = |e: std::io::Error| format!("writing export files: {e}");
    let mut out = Output::new(
        job.dir.clone(),
        state.config.gzip_level,
        state.config.resources_per_file,
        files_url.clone(),
        "output",
    );
    // Positions per type, decided up front so progress has a total.
    let mut plan: Vec<(&crate::store::TypeIndex, Vec<u32>)> = Vec::new();
    let patients: Option<HashSet<u32>> = req.patients.as_ref().map(|p| p.iter().copied().collect());
    for t in &req.types {
        let Some(ti) = store.type_index(t) else {
            continue;
        };
        let positions: Vec<u32> = match &patients {
            Some(set) => {
                let mut v: Vec<u32> = set
                    .iter()
                    .filter_map(|p| ti.by_patient.get(p))
                    .flatten()
                    .copied()
                    .collect();
                v.sort_unstable();
                v
            }
            None if matches!(req.level, Level::System) => (0..ti.entries.len() as u32).collect(),
            None => (0..ti.entries.len() as u32)
                .filter(|&p| ti.entries[p as usize].patient != NO_PATIENT)
                .collect(),
        };
        plan.push((ti, positions));
    }
    job.total.store(
        plan.iter().map(|(_, p)| p.len() as u64).sum::<u64>().max(1),
        Ordering::Relaxed,
    );
    let mut buf = Vec::new();
    let mut before = 0u64;
    for (ti, positions) in &plan {
        let filters = req.filters.get(&ti.name);
        for (i, &pos) in positions.iter().enumerate() {
            if i % 1024 == 0 {
                if job.cancel.load(Ordering::Relaxed) {
                    return Err("cancelled".into());
                }
                job.done.store(before + i as u64, Ordering::Relaxed);
            }
            let e = ti.entries[pos as usize];
            if e.last_updated != NO_TIME {
                if req.since.is_some_and(|s| e.last_updated < s.start) {
                    continue;
                }
                if req.until.is_some_and(|u| e.last_updated >= u.end) {
                    continue;
                }
            }
            store.read_into(&e, &mut buf).map_err(io)?;
            if let Some(alternatives) = filters {
                let v: Value = sonic_rs::from_slice(&buf)
                    .map_err(|e| format!("stored resource is not JSON: {e}"))?;
                let keep = alternatives
                    .iter()
                    .any(|all| all.iter().all(|c| c.matches(&v)));
                if !keep {
                    continue;
                }
            }
            match req.elements.as_ref().map(|els| els.apply(&ti.name, &buf)) {
                Some(Ok(Some(sub))) => out.write(&ti.name, &sub).map_err(io)?,
                Some(Err(e)) => return Err(format!("applying _elements: {e}")),
                _ => out.write(&ti.name, &buf).map_err(io)?,
            }
        }
        before += positions.len() as u64;
        job.done.store(before, Ordering::Relaxed);
    }
    out.close().map_err(io)?;

    // Deleted: only for _since exports, as the spec asks.
    let mut deleted = Output::new(
        job.dir.clone(),
        state.config.gzip_level,
        state.config.resources_per_file,
        files_url.clone(),
        "deleted",
    );
    if let Some(since) = req.since {
        for d in &store.deletions {
            if !req.types.contains(&d.resource_type) {
                continue;
            }
            if d.at.is_some_and(|at| at < since.start) {
                continue;
            }
            let b =
                stratus_fhir::bundle::deletion_bundle([(d.resource_type.as_str(), d.id.as_str())]);
            deleted
                .write("Bundle", &sonic_rs::to_vec(&b).unwrap_or_default())
                .map_err(io)?;
        }
    }
    deleted.close().map_err(io)?;

    let mut errors = Output::new(
        job.dir.clone(),
        state.config.gzip_level,
        state.config.resources_per_file,
        files_url,
        "error",
    );
    for note in &req.notes {
        let oo = stratus_fhir::bundle::operation_outcome("warning", "not-supported", note);
        errors
            .write(
                "OperationOutcome",
                &sonic_rs::to_vec(&oo).unwrap_or_default(),
            )
            .map_err(io)?;
    }
    errors.close().map_err(io)?;

    let manifest = json!({
        "transactionTime": job.transaction_time,
        "request": job.request,
        "requiresAccessToken": state.auth.is_some(),
        "output": out.manifest_items(),
        "deleted": deleted.manifest_items(),
        "error": errors.manifest_items(),
    });
    let mut files = out.files;
    files.extend(deleted.files);
    files.extend(errors.files);
    let manifest = sonic_rs::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    Ok((manifest, files))
}

fn job_for(state: &Shared, caller: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    let job = state.jobs.get(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "export {id} not found (finished and deleted, expired, or never started)"
        ))
    })?;
    if let (Some(owner), Some(asker)) = (&job.client, caller.client_id())
        && owner != asker
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("export {id} belongs to another client"),
        ));
    }
    Ok(job)
}

/// `GET [base]/bulkstatus/[job]`.
pub async fn status(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job_for(&state, &caller, &id)?;
    let poll = job.polls.fetch_add(1, Ordering::SeqCst);
    if poll < state.faults.config.transient_polls {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "transient",
            "injected fault: status temporarily unavailable; the export is fine, poll again",
        ));
    }
    let phase = job.phase.lock().unwrap_or_else(|p| p.into_inner());
    match &*phase {
        Phase::Running => {
            let total = job.total.load(Ordering::Relaxed).max(1);
            let pct = (job.done.load(Ordering::Relaxed) * 100 / total).min(99);
            let mut r = StatusCode::ACCEPTED.into_response();
            let h = r.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("{pct}% complete")) {
                h.insert("x-progress", v);
            }
            h.insert(header::RETRY_AFTER, HeaderValue::from(1));
            Ok(r)
        }
        Phase::Complete {
            manifest,
            expires_ms,
            ..
        } => {
            let mut r = (StatusCode::OK, manifest.clone()).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let expires = UNIX_EPOCH + Duration::from_millis((*expires_ms).max(0) as u64);
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(expires)) {
                h.insert(header::EXPIRES, v);
            }
            Ok(r)
        }
        Phase::Failed(msg) => Err(ApiError::internal(format!("the export failed: {msg}"))),
    }
}

/// `DELETE [base]/bulkstatus/[job]`: cancel a running export or release a finished one.
pub async fn cancel(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = job_for(&state, &caller, &id)?;
    job.cancel.store(true, Ordering::SeqCst);
    state.jobs.remove(&id);
    let running = matches!(
        *job.phase.lock().unwrap_or_else(|p| p.into_inner()),
        Phase::Running
    );
    if !running {
        let dir = job.dir.clone();
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir));
    }
    let oo = stratus_fhir::bundle::operation_outcome(
        "information",
        "informational",
        &format!("export {id} deleted"),
    );
    Ok(fhir_json(
        StatusCode::ACCEPTED,
        sonic_rs::to_vec(&oo).unwrap_or_default(),
    ))
}

/// `GET [base]/bulkfiles/[job]/[file]`.
pub async fn download(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = job_for(&state, &caller, &id)?;
    let (info, expires_ms) = match &*job.phase.lock().unwrap_or_else(|p| p.into_inner()) {
        Phase::Complete {
            files, expires_ms, ..
        } => (files.get(&name).cloned(), *expires_ms),
        _ => (None, 0),
    };
    let info =
        info.ok_or_else(|| ApiError::not_found(format!("export {id} has no file {name}")))?;
    if expires_ms <= date::now_ms() || state.faults.expire_download() {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            format!("{name} has expired; start a new export"),
        ));
    }
    let gzip_ok = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',').any(|e| {
                let mut parts = e.split(';');
                let coding = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
                (coding == "gzip" || coding == "*") && !refused
            })
        });
    let mut file = tokio::fs::File::open(&info.path).await?;
    let faults = &state.faults;
    let slow = faults.config.slow_bytes_per_sec;
    // Ranges are offered on the stored gzip bytes, which never change: a client whose
    // download broke asks for the rest instead of starting over.
    let range = if gzip_ok {
        match headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_range(v, info.disk_bytes))
        {
            None => None,
            Some(Some(r)) => Some(r),
            Some(None) => {
                let mut r = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "invalid",
                    format!(
                        "{name} is {} bytes; that range is outside it",
                        info.disk_bytes
                    ),
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", info.disk_bytes)) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        }
    } else {
        None
    };
    let (stream, length): (ByteStream, Option<u64>) = if gzip_ok {
        let (start, end) = range.unwrap_or((0, info.disk_bytes.saturating_sub(1)));
        if start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        let len = if info.disk_bytes == 0 {
            0
        } else {
            end + 1 - start
        };
        use tokio::io::AsyncReadExt;
        (
            Box::pin(ReaderStream::with_capacity(file.take(len), 256 * 1024)),
            Some(len),
        )
    } else {
        let mut dec = GzipDecoder::new(tokio::io::BufReader::with_capacity(256 * 1024, file));
        dec.multiple_members(true);
        (
            Box::pin(ReaderStream::with_capacity(dec, 256 * 1024)),
            Some(info.plain_bytes),
        )
    };
    // Cut halfway; a one-byte body cannot be cut short.
    let cut = faults
        .truncate_download()
        .then(|| length.unwrap_or(0) / 2)
        .filter(|c| *c > 0);
    let body = if cut.is_some() || slow.is_some() {
        Body::from_stream(FaultyStream::new(stream, cut, slow))
    } else {
        Body::from_stream(stream)
    };
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+ndjson"),
    );
    if gzip_ok {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    } else {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    }
    if let Some((start, end)) = range
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{}", info.disk_bytes))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Some(len) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Ok(r)
}

/// `bytes=N-` or `bytes=N-M` (one range) against a file of `len` bytes: the inclusive
/// byte span, or `None` if it is unsatisfiable. Other forms are ignored by the caller
/// answering the whole file, which HTTP allows.
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return Some((0, len.saturating_sub(1)));
    }
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = if b.trim().is_empty() {
        len.checked_sub(1)?
    } else {
        b.trim().parse::<u64>().ok()?.min(len.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}
