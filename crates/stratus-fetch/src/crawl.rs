//! The per-patient crawler. Every (patient, type) pair is one unit: one search per type
//! filter (`{Type}?patient={id}&...`), each followed through its `next` links. Units of all
//! types run together under the client's politeness budget (at most N requests in flight,
//! an optional rate cap, a pause for everyone on 429 `Retry-After`), rather than one type
//! after another as smart-fetch does. Finished units go to a [`ChunkStore`] per type, so an
//! interrupted crawl resumes per patient and type.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratus_fhir::sonic_rs::{self, JsonContainerTrait, JsonValueTrait, Value};
use stratus_fhir::writer::Compression;
use stratus_http::Client;

use crate::FetchError;
use crate::chunks::{ChunkStore, CommitPolicy};
use crate::since::Newest;

/// One type to crawl.
#[derive(Debug, Clone)]
pub struct TypeJob {
    pub resource_type: String,
    /// Search filters (query strings without `Type?`); several are ORed, results
    /// deduplicated by id. Empty: one unfiltered search.
    pub filters: Vec<String>,
    /// `(parameter, value)`: adds `&{parameter}=gt{value}`, except for new patients.
    pub since: Option<(String, String)>,
    /// The field whose newest value becomes the type's `done` time.
    pub time_field: Option<&'static str>,
}

/// How units find their resources.
#[derive(Debug, Clone)]
pub enum Keys {
    /// Patient ids: `{Type}?patient={id}`.
    Patients {
        ids: Vec<String>,
        /// Patients fetched without the since filter (new or merged).
        full_history: HashSet<String>,
    },
    /// Patient lookups (`Patient?identifier=system|value`, or `_id` when no system); a
    /// value that matches no patient, or several, is reported.
    Lookup {
        values: Vec<String>,
        system: Option<String>,
    },
}

impl Keys {
    fn list(&self) -> &[String] {
        match self {
            Keys::Patients { ids, .. } => ids,
            Keys::Lookup { values, .. } => values,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CrawlOptions {
    pub compression: Compression,
    pub policy: CommitPolicy,
    /// Concurrent units (each has at most one request out at a time). The client's
    /// in-flight budget is the real limit; more units than that keep it full.
    pub workers: usize,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct CrawlProgress {
    pub units_total: AtomicU64,
    pub units_done: AtomicU64,
    /// Types per patient in the current phase (units per patient).
    pub types: AtomicU64,
    pub resources: AtomicU64,
    pub errors: AtomicU64,
}

/// What the crawl of one type produced.
#[derive(Debug, Clone)]
pub struct TypeOutcome {
    pub resource_type: String,
    pub resources: u64,
    pub errors: u64,
    /// The value for `.metadata` `done`.
    pub done: String,
}

/// Lookups that did not find exactly one patient.
#[derive(Debug, Clone, Default)]
pub struct LookupReport {
    pub not_found: Vec<String>,
    pub several: Vec<String>,
}

struct Unit {
    job: usize,
    key: String,
}

struct UnitDone {
    job: usize,
    key: String,
    lines: Vec<Vec<u8>>,
    errors: Vec<Vec<u8>>,
    newest: Option<Newest>,
    matches: usize,
}

/// The folder under a work folder where unfinished crawl state lives.
pub fn state_dir(workdir: &Path) -> PathBuf {
    workdir.join(".crawl")
}

/// Crawls `jobs` for every key into `workdir/{Type}.ndjson[.gz]`, resuming from
/// `workdir/.crawl`. Returns per-type outcomes once every unit is done; on `stop`, commits
/// what is finished and returns [`FetchError::Interrupted`].
#[allow(clippy::too_many_arguments)]
pub async fn crawl(
    client: Arc<Client>,
    workdir: &Path,
    jobs: &[TypeJob],
    keys: &Keys,
    opts: &CrawlOptions,
    progress: Arc<CrawlProgress>,
    stop: Arc<AtomicBool>,
    report: &mut LookupReport,
) -> Result<Vec<TypeOutcome>, FetchError> {
    let state = state_dir(workdir);
    let mut stores = Vec::new();
    for j in jobs {
        stores.push(ChunkStore::open(
            &state.join(&j.resource_type),
            opts.compression,
            opts.policy,
        )?);
    }
    let key_list = keys.list().to_vec();
    let mut pending = Vec::new();
    for key in &key_list {
        for (ji, s) in stores.iter().enumerate() {
            if !s.is_done(key) {
                pending.push(Unit {
                    job: ji,
                    key: key.clone(),
                });
            }
        }
    }
    let already = (key_list.len() * jobs.len() - pending.len()) as u64;
    progress
        .units_total
        .store((key_list.len() * jobs.len()) as u64, Ordering::Relaxed);
    progress.units_done.store(already, Ordering::Relaxed);
    progress.types.store(jobs.len() as u64, Ordering::Relaxed);
    progress.resources.store(
        stores.iter().map(ChunkStore::resources).sum(),
        Ordering::Relaxed,
    );
    if already > 0 && !pending.is_empty() {
        tracing::info!(
            "resuming the crawl: {already} patient-type searches already done, {} to go",
            pending.len()
        );
    }

    let queue = Arc::new(Mutex::new(pending.into_iter()));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<UnitDone>(opts.workers.max(1) * 2);
    let jobs_arc: Arc<Vec<TypeJob>> = Arc::new(jobs.to_vec());
    let keys_arc = Arc::new(keys.clone());
    let mut workers = Vec::new();
    for _ in 0..opts.workers.max(1) {
        let (queue, tx, client, jobs, keys, stop) = (
            Arc::clone(&queue),
            tx.clone(),
            Arc::clone(&client),
            Arc::clone(&jobs_arc),
            Arc::clone(&keys_arc),
            Arc::clone(&stop),
        );
        workers.push(tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(unit) = next else { break };
                let done = run_unit(&client, &jobs[unit.job], &keys, unit).await;
                if tx.send(done).await.is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);

    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let now = stratus_fhir::date::now_ms();
    let lookup = matches!(keys, Keys::Lookup { .. });
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(d) = msg else { break };
                if lookup {
                    match d.matches {
                        0 => report.not_found.push(d.key.clone()),
                        1 => {}
                        _ => report.several.push(d.key.clone()),
                    }
                }
                progress.resources.fetch_add(d.lines.len() as u64, Ordering::Relaxed);
                progress.errors.fetch_add(d.errors.len() as u64, Ordering::Relaxed);
                let store = &mut stores[d.job];
                let newest = d.newest.filter(|n| n.ms <= now);
                tokio::task::block_in_place(|| store.add(&d.key, &d.lines, &d.errors, newest))?;
                progress.units_done.fetch_add(1, Ordering::Relaxed);
            }
            _ = tick.tick() => {
                for s in &mut stores {
                    tokio::task::block_in_place(|| s.commit_if_stale())?;
                }
            }
        }
    }
    for w in workers {
        let _ = w.await;
    }
    for s in &mut stores {
        s.commit()?;
    }
    let complete = stores.iter().all(|s| key_list.iter().all(|k| s.is_done(k)));
    if !complete {
        return Err(FetchError::Interrupted);
    }

    let mut out = Vec::new();
    for (j, s) in jobs.iter().zip(stores.iter_mut()) {
        let dest = workdir.join(format!("{}{}", j.resource_type, opts.compression.suffix()));
        tokio::task::block_in_place(|| s.assemble(&dest))?;
        out.push(TypeOutcome {
            resource_type: j.resource_type.clone(),
            resources: s.resources(),
            errors: s.error_count(),
            done: Newest::done_value(s.newest(), s.started_ms()),
        });
    }
    Ok(out)
}

/// Error chunks of every type crawled in `workdir` (for `error/OperationOutcome`).
pub fn error_chunks(
    workdir: &Path,
    types: &[String],
    compression: Compression,
) -> Result<Vec<PathBuf>, FetchError> {
    let state = state_dir(workdir);
    let mut out = Vec::new();
    for t in types {
        let dir = state.join(t);
        if dir.is_dir() {
            out.extend(
                ChunkStore::open(&dir, compression, CommitPolicy::default())?.error_chunks(),
            );
        }
    }
    Ok(out)
}

/// Encodes a search value for a URL: `|`, `:`, `/` and `,` stay as they are (smart-fetch
/// sends identifiers that way); `+` becomes `%2B` so time-zone offsets survive.
pub fn encode_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'|'
            | b':'
            | b'/'
            | b','
            | b'@'
            | b'!'
            | b'$'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b';' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The search URLs of one unit.
pub fn unit_urls(base: &str, job: &TypeJob, keys: &Keys, key: &str) -> Vec<String> {
    let (head, full) = match keys {
        Keys::Patients { full_history, .. } => (
            format!("{base}/{}?patient={}", job.resource_type, encode_value(key)),
            full_history.contains(key),
        ),
        Keys::Lookup { system, .. } => (
            match system {
                Some(s) => format!(
                    "{base}/Patient?identifier={}|{}",
                    encode_value(s),
                    encode_value(key)
                ),
                None => format!("{base}/Patient?_id={}", encode_value(key)),
            },
            false,
        ),
    };
    let since = match (&job.since, full) {
        (Some((p, v)), false) => format!("&{p}=gt{}", encode_value(v)),
        _ => String::new(),
    };
    let filters: Vec<&str> = if job.filters.is_empty() {
        vec![""]
    } else {
        job.filters.iter().map(String::as_str).collect()
    };
    filters
        .into_iter()
        .map(|f| {
            let f = f.replace('+', "%2B");
            let amp = if f.is_empty() { "" } else { "&" };
            format!("{head}{amp}{f}{since}")
        })
        .collect()
}

async fn run_unit(client: &Client, job: &TypeJob, keys: &Keys, unit: Unit) -> UnitDone {
    let urls = unit_urls(client.base(), job, keys, &unit.key);
    let dedup = urls.len() > 1;
    let mut seen = HashSet::new();
    let mut done = UnitDone {
        job: unit.job,
        key: unit.key,
        lines: Vec::new(),
        errors: Vec::new(),
        newest: None,
        matches: 0,
    };
    for url in urls {
        let mut next = Some(url);
        while let Some(url) = next.take() {
            let answer = match client.fetch(&url, "application/fhir+json").await {
                Ok(a) => a,
                Err(e) => {
                    done.errors.push(outcome(&format!(
                        "An error occurred when connecting to \"{url}\": {e}"
                    )));
                    break;
                }
            };
            let parsed: Option<Value> = sonic_rs::from_slice(&answer.body).ok();
            if !answer.status.is_success() {
                match parsed {
                    Some(v)
                        if v.get("resourceType").and_then(|t| t.as_str())
                            == Some("OperationOutcome") =>
                    {
                        done.errors.push(sonic_rs::to_vec(&v).unwrap_or_default());
                    }
                    _ => {
                        let text = String::from_utf8_lossy(&answer.body);
                        let text: String = text.chars().take(300).collect();
                        done.errors.push(outcome(&format!(
                            "An error occurred when connecting to \"{url}\": [{}] {}",
                            answer.status.as_u16(),
                            text.trim()
                        )));
                    }
                }
                break;
            }
            let Some(bundle) = parsed else { break };
            if bundle.get("resourceType").and_then(|t| t.as_str()) != Some("Bundle") {
                break;
            }
            if let Some(entries) = bundle.get("entry").and_then(|e| e.as_array()) {
                for entry in entries.iter() {
                    let Some(res) = entry.get("resource") else {
                        continue;
                    };
                    let rtype = res.get("resourceType").and_then(|t| t.as_str());
                    if rtype == Some("OperationOutcome") {
                        done.errors.push(sonic_rs::to_vec(res).unwrap_or_default());
                        continue;
                    }
                    if dedup
                        && let Some(id) = res.get("id").and_then(|i| i.as_str())
                        && !seen.insert(id.to_owned())
                    {
                        continue;
                    }
                    if let Some(field) = job.time_field
                        && let Some(text) = field_str(res, field)
                    {
                        Newest::offer_text(&mut done.newest, text, i64::MAX);
                    }
                    if let Ok(line) = sonic_rs::to_vec(res) {
                        done.lines.push(line);
                        done.matches += 1;
                    }
                }
            }
            next = bundle
                .get("link")
                .and_then(|l| l.as_array())
                .and_then(|links| {
                    links.iter().find_map(|l| {
                        (l.get("relation").and_then(|r| r.as_str()) == Some("next"))
                            .then(|| l.get("url").and_then(|u| u.as_str()))
                            .flatten()
                            .map(|u| client.resolve(u))
                    })
                });
        }
    }
    if let Keys::Lookup { system, .. } = keys
        && done.matches != 1
    {
        let what = match system {
            Some(s) => format!("identifier {s}|{}", done.key),
            None => format!("id {}", done.key),
        };
        let message = if done.matches == 0 {
            format!("No patient matches {what}")
        } else {
            format!("{} patients match {what}; all are kept", done.matches)
        };
        let v = stratus_fhir::bundle::operation_outcome("warning", "not-found", &message);
        done.errors.push(sonic_rs::to_vec(&v).unwrap_or_default());
    }
    done
}

fn field_str<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    let mut cur = v;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    cur.as_str()
}

/// The error record smart-fetch writes for a failed request.
fn outcome(message: &str) -> Vec<u8> {
    let v = stratus_fhir::bundle::operation_outcome("error", "exception", message);
    sonic_rs::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_filters_and_since() {
        let job = TypeJob {
            resource_type: "Observation".into(),
            filters: vec!["category=laboratory".into(), "category=vital-signs".into()],
            since: Some(("_lastUpdated".into(), "2024-01-01T00:00:00+05:00".into())),
            time_field: None,
        };
        let keys = Keys::Patients {
            ids: vec!["p1".into(), "p2".into()],
            full_history: HashSet::from(["p2".to_owned()]),
        };
        assert_eq!(
            unit_urls("http://x/fhir", &job, &keys, "p1"),
            [
                "http://x/fhir/Observation?patient=p1&category=laboratory&_lastUpdated=gt2024-01-01T00:00:00%2B05:00",
                "http://x/fhir/Observation?patient=p1&category=vital-signs&_lastUpdated=gt2024-01-01T00:00:00%2B05:00",
            ]
        );
        // A new patient's history is fetched in full.
        assert_eq!(
            unit_urls("http://x/fhir", &job, &keys, "p2")[0],
            "http://x/fhir/Observation?patient=p2&category=laboratory"
        );
        let lookup = Keys::Lookup {
            values: vec![],
            system: Some("http://h/mrn".into()),
        };
        let pj = TypeJob {
            resource_type: "Patient".into(),
            filters: vec![],
            since: None,
            time_field: None,
        };
        assert_eq!(
            unit_urls("http://x/fhir", &pj, &lookup, "A 1&2"),
            ["http://x/fhir/Patient?identifier=http://h/mrn|A%201%262"]
        );
    }
}
