//! One job's work: pull the export with the bulk client into the job's folder, write the
//! OperationOutcome file, then hand the files to the store. Every step is saved first, so a
//! restart resumes the pull (the bulk client's own state file) or finishes the delivery,
//! and a job is marked complete only once its files are where the store says.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stratus_bulk::{BulkError, Options};
use stratus_http::auth::{Auth, SmartClient};
use stratus_http::{Client, HttpConfig};

use crate::job::{self, JobState, Status};
use crate::params::ExportType;
use crate::registry::Provider;
use crate::{Shared, Store};

/// Rounds of the bulk client a job gets when files fail: each resumes the last, so only
/// what is missing is fetched again.
const ROUNDS: u32 = 3;

/// Starts (or resumes) job `id` on the runtime.
pub(crate) fn spawn(shared: Arc<Shared>, id: String) {
    let s = shared.clone();
    let job_id = id.clone();
    let handle = tokio::spawn(async move {
        let result = run(&s, &job_id).await;
        finish(&s, &job_id, result);
    });
    if let Some(live) = shared.jobs().get_mut(&id) {
        live.task = Some(handle.abort_handle());
    }
}

fn snapshot(shared: &Shared, id: &str) -> Option<(JobState, Arc<stratus_bulk::Progress>)> {
    shared
        .jobs()
        .get(id)
        .map(|l| (l.state.clone(), l.progress.clone()))
}

fn update(shared: &Shared, id: &str, f: impl FnOnce(&mut JobState)) -> Result<(), String> {
    let mut jobs = shared.jobs();
    let Some(live) = jobs.get_mut(id) else {
        return Err("the job was cancelled".into());
    };
    f(&mut live.state);
    live.state
        .save(&shared.config.state_dir)
        .map_err(|e| e.to_string())
}

/// The bulk client for a provider, signing as the consumer with the client id that
/// provider gave it. A token endpoint it discovers must be on the provider's own origins:
/// a discovery document on a registered host must not be able to point the consumer's
/// signed assertion at another provider's token endpoint (one that lives elsewhere is
/// registered explicitly).
pub(crate) fn provider_client(
    shared: &Shared,
    provider: &Provider,
    base: &str,
) -> Result<Client, String> {
    let auth = match provider.token_endpoint.as_deref() {
        Some("none") => Auth::None,
        given => {
            let mut smart = SmartClient::new(
                provider.consumer_client_id.clone(),
                shared.key.clone(),
                None,
                given.map(str::to_owned),
            );
            smart.token_origins = origins(provider);
            Auth::Smart(Box::new(smart))
        }
    };
    Client::new(base, auth, HttpConfig::default()).map_err(|e| e.to_string())
}

/// The origins of a provider's registered bases: the only places its pull may fetch from.
fn origins(provider: &Provider) -> Vec<String> {
    let mut o: Vec<String> = provider
        .bases
        .iter()
        .filter_map(|b| stratus_http::client::origin(b))
        .collect();
    o.sort();
    o.dedup();
    o
}

fn options(shared: &Shared, st: &JobState, provider: &Provider, data: &Path) -> Options {
    let is_static = st.export_type == ExportType::Static;
    Options {
        allowed_origins: origins(provider),
        out: Some(data.to_path_buf()),
        parallel: shared.config.parallel,
        // A static manifest is no job of the provider's to delete; a dynamic export is
        // deleted on the provider once everything is down, as the Export IG asks.
        keep_on_server: is_static,
        // A static manifest is read like the status URL of a finished export.
        resume_url: is_static.then(|| st.export_url.clone()),
        ..Options::default()
    }
}

/// The bulk client's run, resumed up to [`ROUNDS`] times when files fail.
async fn pull(
    shared: &Shared,
    st: &JobState,
    provider: &Provider,
    opts: &Options,
    progress: Arc<stratus_bulk::Progress>,
) -> Result<stratus_bulk::Summary, String> {
    let client = provider_client(shared, provider, &st.provider_base)?;
    let mut round = 1;
    loop {
        match stratus_bulk::run(&client, &st.spec, opts, progress.clone()).await {
            Ok(s) => return Ok(s),
            Err(BulkError::Failed { count, first }) if round < ROUNDS => {
                tracing::warn!(
                    "import {}: {count} files failed (first: {first}); resuming the pull",
                    st.id
                );
                round += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(format!("the pull from the provider failed: {e}")),
        }
    }
}

/// The outcome file of a complete pull: what was imported, every validation problem, the
/// provider's own error messages, and the kick-off parameters ignored.
fn outcome_lines(st: &JobState, summary: &stratus_bulk::Summary) -> Vec<Value> {
    let mut lines = Vec::new();
    for (t, n) in &summary.resources_by_type {
        lines.push(job::outcome(
            "information",
            "informational",
            &format!("imported {n} {t} resources from {}", st.export_url),
        ));
    }
    for p in &summary.problems {
        lines.push(job::outcome("warning", "invalid", p));
    }
    for m in &summary.server_messages {
        lines.push(job::outcome(
            "error",
            "processing",
            &format!("the provider's export reported: {m}"),
        ));
    }
    for f in &summary.attachment_failures {
        lines.push(job::outcome("warning", "incomplete", f));
    }
    for name in &st.ignored {
        lines.push(job::outcome(
            "information",
            "not-supported",
            &format!("kick-off parameter '{name}' was ignored (Prefer: handling=lenient)"),
        ));
    }
    lines
}

async fn run(shared: &Shared, id: &str) -> Result<(), String> {
    let (st, progress) = snapshot(shared, id).ok_or("the job was cancelled")?;
    let state_dir = &shared.config.state_dir;
    let data = JobState::data_dir(state_dir, id);
    if st.status == Status::Running {
        let provider = shared
            .registry
            .provider(&st.client_id)
            .ok_or("the client that started this job is no longer registered")?;
        let opts = options(shared, &st, &provider, &data);
        let summary = match stratus_bulk::state::State::load(&data) {
            // Stopped after the pull was complete but before the job moved on: the files
            // are all here, and the bulk client would refuse to run the same export again.
            Ok(Some(done)) if done.complete => stratus_bulk::Summary {
                files: done.files.len() as u64,
                resources: done.files.values().map(|f| f.resources).sum(),
                ..Default::default()
            },
            _ => pull(shared, &st, &provider, &opts, progress.clone()).await?,
        };
        let lines = outcome_lines(&st, &summary);
        let n = job::write_outcomes(&JobState::outcome_path(state_dir, id), &lines)
            .map_err(|e| e.to_string())?;
        update(shared, id, |s| {
            s.status = Status::Delivering;
            s.outcomes = n;
            s.resources = summary.resources;
            s.files = summary.files;
            s.export_transaction_time =
                Some(summary.transaction_time.clone()).filter(|t| !t.is_empty());
        })?;
    }
    progress.set_phase("storing the files");
    deliver(&shared.config.store, id, &data).await?;
    update(shared, id, |s| {
        s.status = Status::Complete;
        s.completed_ms = Some(stratus_fhir::date::now_ms());
    })
}

fn finish(shared: &Shared, id: &str, result: Result<(), String>) {
    if !shared.jobs().contains_key(id) {
        // Cancelled meanwhile: its folder is gone and must not be made again.
        return;
    }
    match result {
        Ok(()) => tracing::info!("import {id} complete"),
        Err(e) => {
            tracing::warn!("import {id} failed: {e}");
            let state_dir = &shared.config.state_dir;
            let _ = job::write_outcomes(
                &JobState::outcome_path(state_dir, id),
                &[job::outcome("error", "processing", &e)],
            );
            let _ = std::fs::remove_dir_all(JobState::data_dir(state_dir, id));
            let _ = update(shared, id, |s| {
                s.status = Status::Failed;
                s.error = Some(e);
                s.outcomes = 1;
                s.completed_ms = Some(stratus_fhir::date::now_ms());
            });
        }
    }
    if let Some(live) = shared.jobs().get_mut(id) {
        live.task = None;
    }
}

/// Every file under `dir`, relative, sorted, with `manifest.json` last: it is the sign of a
/// complete export, so it must not arrive before the files it lists.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(rel) = p.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by_key(|p| (p == Path::new("manifest.json"), p.clone()));
    out
}

/// Moves the pulled files to the store. Safe to run again after a crash at any point.
async fn deliver(store: &Store, id: &str, data: &Path) -> Result<(), String> {
    // The bulk client's resume state is ours, not part of the import.
    let _ = std::fs::remove_file(stratus_bulk::state::State::path(data));
    match store {
        Store::Discard => {
            let _ = std::fs::remove_dir_all(data);
            Ok(())
        }
        Store::Folder(root) => {
            let (root, id, data) = (root.clone(), id.to_owned(), data.to_path_buf());
            tokio::task::spawn_blocking(move || deliver_to_folder(&root, &id, &data))
                .await
                .map_err(|e| e.to_string())?
        }
        Store::S3(url) => {
            if !data.exists() {
                return Ok(());
            }
            let up = stratus_bulk::upload::Uploader::for_url(&format!("{url}/{id}"))?;
            for rel in files_under(data) {
                up.put(&rel, &data.join(&rel)).await?;
            }
            let _ = std::fs::remove_dir_all(data);
            Ok(())
        }
    }
}

/// Moves (or, across file systems, copies) the job's files to `root/id`. The destination
/// only ever appears by a rename of a complete folder, so if it exists it is complete.
fn deliver_to_folder(root: &Path, id: &str, data: &Path) -> Result<(), String> {
    let dest = root.join(id);
    if dest.exists() {
        let _ = std::fs::remove_dir_all(data);
        return Ok(());
    }
    if !data.exists() {
        return Err(format!(
            "the files of job {id} are gone from {}",
            data.display()
        ));
    }
    if std::fs::rename(data, &dest).is_ok() {
        return Ok(());
    }
    // Another file system: copy into a temporary name, rename, then drop the source.
    let tmp = root.join(format!(".{id}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let copied = files_under(data).into_iter().try_for_each(|rel| {
        let to = tmp.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::copy(data.join(&rel), &to)
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", to.display()))
    });
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let _ = std::fs::remove_dir_all(data);
    Ok(())
}

/// Cancels a job: stops its task, asks the provider to delete a running dynamic export,
/// and removes the job's folder. Files already delivered to the store stay there.
pub(crate) async fn cancel(shared: &Shared, id: &str) {
    let Some(live) = shared.jobs().remove(id) else {
        return;
    };
    if let Some(task) = &live.task {
        task.abort();
    }
    let st = live.state;
    let state_dir = &shared.config.state_dir;
    if st.status == Status::Running
        && st.export_type == ExportType::Dynamic
        && let Some(provider) = shared.registry.provider(&st.client_id)
        && let Ok(client) = provider_client(shared, &provider, &st.provider_base)
    {
        let data = JobState::data_dir(state_dir, id);
        let opts = Options {
            cancel: true,
            ..options(shared, &st, &provider, &data)
        };
        let progress = Arc::new(stratus_bulk::Progress::default());
        match tokio::time::timeout(
            Duration::from_secs(15),
            stratus_bulk::run(&client, &st.spec, &opts, progress),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!("import {id}: the provider's export was cancelled"),
            Ok(Err(e)) => tracing::warn!("import {id}: cancelling the provider's export: {e}"),
            Err(_) => tracing::warn!("import {id}: the provider did not answer the cancel"),
        }
    }
    let dir = JobState::dir(state_dir, id);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::warn!("{}: {e}", dir.display());
    }
}

/// Forgets finished jobs older than the retention time.
pub(crate) fn sweep(shared: &Shared) {
    let ttl = shared.config.job_ttl.as_millis() as i64;
    let now = stratus_fhir::date::now_ms();
    let expired: Vec<String> = shared
        .jobs()
        .values()
        .filter(|l| l.state.completed_ms.is_some_and(|c| c + ttl < now))
        .map(|l| l.state.id.clone())
        .collect();
    for id in expired {
        shared.jobs().remove(&id);
        let _ = std::fs::remove_dir_all(JobState::dir(&shared.config.state_dir, &id));
        tracing::info!("import {id} expired");
    }
}

/// `X-Progress` text for a running job (under 100 characters, as the proposal asks).
pub(crate) fn progress_text(st: &JobState, p: &stratus_bulk::Progress) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    if st.status == Status::Delivering {
        return "storing the files".into();
    }
    let phase = p.phase_text();
    let total = p.files_total.load(Relaxed);
    let done = p.files_done.load(Relaxed);
    if phase == "downloading" && total > 0 {
        return format!(
            "downloading: {}% ({done}/{total} files)",
            done * 100 / total
        );
    }
    let server = p.server_percent.load(Relaxed);
    match phase.as_str() {
        "" | "kick-off" => "starting the provider's export".into(),
        "waiting for the server" if server > 0 => {
            format!("waiting for the provider's export ({server}%)")
        }
        "waiting for the server" => "waiting for the provider's export".into(),
        other => other.chars().take(90).collect(),
    }
}

/// The import manifest of a finished job.
pub(crate) fn manifest(shared: &Shared, st: &JobState) -> Value {
    let mut m = serde_json::json!({
        "transactionTime": stratus_fhir::date::format_instant(st.created_ms),
        "requiresAccessToken": true,
        "outcome": [{
            "type": "OperationOutcome",
            "url": format!("{}/job/{}/outcome.ndjson", shared.origin, st.id),
            "count": st.outcomes,
        }],
    });
    let mut ext = serde_json::Map::new();
    if let Some(t) = &st.export_transaction_time {
        ext.insert("exportTransactionTime".into(), Value::String(t.clone()));
    }
    ext.insert("resources".into(), st.resources.into());
    ext.insert("files".into(), st.files.into());
    match &shared.config.store {
        Store::Folder(root) => {
            ext.insert(
                "location".into(),
                Value::String(root.join(&st.id).display().to_string()),
            );
        }
        Store::S3(url) => {
            ext.insert("location".into(), Value::String(format!("{url}/{}", st.id)));
        }
        Store::Discard => {}
    }
    m["extension"] = Value::Object(ext);
    m
}
