//! `stratus export`: one managed export run. Picks or resumes the work folder, then crawls
//! or bulk-exports what is not done, finds new patients, hydrates, emulates deletions after
//! full exports, rebuilds the top-level symlinks and marks the folder complete. Every step
//! can be interrupted and the same command run again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use stratus_bulk::attachments::InlineOptions;
use stratus_bulk::{ExportSpec, Level};
use stratus_fhir::writer::Compression;
use stratus_http::Client;

use crate::FetchError;
use crate::chunks::{CommitPolicy, append};
use crate::crawl::{self, CrawlOptions, CrawlProgress, Keys, LookupReport, TypeJob, TypeOutcome};
use crate::deleted;
use crate::hydrate::{self, HydrateOptions, TaskReport};
use crate::metadata::{self, Managed, Output};
use crate::server::ServerInfo;
use crate::since::{self, SinceMode};
use crate::symlinks;
use crate::types;
use crate::workdir::{self, Context, Workdir};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Bulk,
    Crawl,
}

/// Everything one export run needs.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub out: PathBuf,
    pub group: Option<String>,
    pub group_nickname: Option<String>,
    /// Ids or MRNs (from `--id-list` / `--id-file`).
    pub cohort: Option<Vec<String>>,
    pub id_file: Option<PathBuf>,
    pub id_system: Option<String>,
    pub nickname: Option<String>,
    pub mode: Mode,
    /// A FHIR instant, or `auto`.
    pub since: Option<String>,
    /// `auto`, `updated` or `created`.
    pub since_mode: String,
    pub types: Vec<String>,
    pub type_filters: Vec<String>,
    pub default_filters: bool,
    pub hydration: Vec<&'static str>,
    pub compression: Compression,
    pub inline: InlineOptions,
    /// Units worked on at once by the crawler and hydration.
    pub workers: usize,
    pub policy: CommitPolicy,
    /// Bulk downloads at once.
    pub bulk_parallel: usize,
    /// Today, `YYYY-MM-DD` (local), the default nickname.
    pub today: String,
}

/// Live state for a progress display.
#[derive(Debug, Default)]
pub struct ExportProgress {
    pub phase: Mutex<String>,
    pub crawl: Arc<CrawlProgress>,
    pub bulk: Arc<stratus_bulk::Progress>,
}

impl ExportProgress {
    fn set(&self, phase: impl Into<String>) {
        let p = phase.into();
        tracing::info!("{p}");
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    pub workdir: PathBuf,
    pub mode: String,
    pub since_values: BTreeMap<String, String>,
    pub skipped_types: Vec<String>,
    pub outcomes: Vec<TypeOutcome>,
    pub lookups: LookupReport,
    pub new_patients: usize,
    pub deleted: BTreeMap<String, usize>,
    pub hydration: Vec<TaskReport>,
    pub links: usize,
    pub bulk_messages: Vec<String>,
    pub errors_file: Option<PathBuf>,
}

/// Runs one managed export.
pub async fn run(
    client: Arc<Client>,
    opts: &ExportOptions,
    progress: Arc<ExportProgress>,
    stop: Arc<AtomicBool>,
) -> Result<ExportReport, FetchError> {
    let root = &opts.out;
    std::fs::create_dir_all(root).map_err(|e| FetchError::io(root, e))?;
    check_managed(root, client.base(), opts.group.as_deref())?;
    let mut report = ExportReport::default();

    progress.set("reading the server's CapabilityStatement");
    let info = ServerInfo::fetch(&client).await;
    let mut wanted = types::parse_types(&opts.types).map_err(FetchError::Usage)?;
    wanted.retain(|t| {
        let ok = info.supports_type(t);
        if !ok {
            tracing::warn!("skipping {t}: the server does not support it");
            report.skipped_types.push((*t).to_owned());
        }
        ok
    });
    if wanted.is_empty() {
        return Err(FetchError::Usage("no resource type left to export".into()));
    }
    let filters = build_filters(
        &wanted,
        &opts.type_filters,
        opts.default_filters,
        info.is_epic(),
    )?;

    let mode = match opts.mode {
        Mode::Crawl => Mode::Crawl,
        Mode::Bulk => Mode::Bulk,
        // An id list only means something to a crawl (smart-fetch ignores it and runs a
        // system-wide bulk export, which is never what was meant).
        Mode::Auto if info.is_epic() || opts.cohort.is_some() => Mode::Crawl,
        Mode::Auto => Mode::Bulk,
    };
    if mode == Mode::Bulk && opts.cohort.is_some() {
        return Err(FetchError::Usage(
            "--id-list/--id-file select patients for a crawl; use --export-mode crawl (or --group for a bulk export)".into(),
        ));
    }
    report.mode = if mode == Mode::Crawl { "crawl" } else { "bulk" }.into();
    let since_mode = match &opts.since {
        Some(_) => Some(SinceMode::resolve(&opts.since_mode, &info)?),
        None => None,
    };
    let context = Context {
        filters: filters.clone(),
        since: opts.since.clone(),
        since_mode: since_mode.map(|m| m.as_str().to_owned()),
    };
    let work = workdir::choose(root, opts.nickname.as_deref(), &context, &opts.today)?;
    report.workdir = work.path.clone();
    let earlier: Vec<(Workdir, Output)> = workdir::list(root)?
        .into_iter()
        .filter(|w| w.number < work.number)
        .filter_map(|w| match w.metadata() {
            Ok(Some(m)) => Some(Ok((w, m))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?;

    // Since values per type.
    let mut since_values: BTreeMap<String, String> = BTreeMap::new();
    if let (Some(s), Some(m)) = (&opts.since, since_mode) {
        if s == "auto" {
            since_values = since::auto_values(&earlier, &wanted, &filters, m);
            if since_values.is_empty() {
                return Err(FetchError::Usage(
                    "could not detect a since value: no earlier export of these types with the same filters; run a full export first or give --since TIMESTAMP".into(),
                ));
            }
        } else {
            for t in &wanted {
                since_values.insert((*t).to_owned(), s.clone());
            }
        }
    }
    let mut meta = work.metadata()?.unwrap_or_else(|| Output {
        kind: "output".into(),
        ..Output::default()
    });
    meta.filters = filters.clone();
    meta.since = opts.since.clone();
    meta.since_mode = context.since_mode.clone();

    // Which types get a since parameter, and which one.
    let mut since_params: BTreeMap<String, (String, String)> = BTreeMap::new();
    if let Some(m) = since_mode {
        for t in &wanted {
            // The cohort lookup is never since-filtered: it must find every patient, or the
            // missing ones would look deleted (smart-fetch has that hazard).
            if mode == Mode::Crawl && *t == "Patient" && opts.cohort.is_some() {
                continue;
            }
            let Some(v) = since_values.get(*t) else {
                continue;
            };
            let param = match (mode, m) {
                (Mode::Bulk, SinceMode::Updated) => Some("_since"),
                _ => since::param_for(m, t, &info),
            };
            if let Some(p) = param {
                since_params.insert((*t).to_owned(), (p.to_owned(), v.clone()));
            }
        }
        meta.since_resources = Some(since_params.keys().cloned().collect());
    }
    report.since_values = since_params
        .iter()
        .map(|(t, (_, v))| (t.clone(), v.clone()))
        .collect();
    touch(&work, &mut meta)?;

    let compression = opts.compression;
    match mode {
        Mode::Crawl => {
            crawl_phase(
                &client,
                opts,
                &work,
                &mut meta,
                &earlier,
                &wanted,
                &filters,
                &since_params,
                since_mode,
                &info,
                &progress,
                &stop,
                &mut report,
            )
            .await?;
        }
        Mode::Bulk | Mode::Auto => {
            bulk_phase(
                &client,
                opts,
                &work,
                &mut meta,
                &wanted,
                &filters,
                &since_params,
                since_mode,
                &progress,
                &mut report,
            )
            .await?;
            let links = deleted::patient_links(&work.path)?;
            let pf = filters.get("Patient").cloned().unwrap_or_default();
            let new = deleted::new_patients(&earlier, &pf, &links)?;
            report.new_patients = new.len();
            meta.new_patients = (!new.is_empty()).then(|| new.into_iter().collect());
            touch(&work, &mut meta)?;
        }
    }

    if !opts.hydration.is_empty() {
        progress.set("hydrating");
        let hopts = HydrateOptions {
            groups: opts.hydration.clone(),
            compression,
            inline: opts.inline.clone(),
            workers: opts.workers,
        };
        report.hydration = hydrate::run(
            Arc::clone(&client),
            &work.path,
            &work.path,
            &hopts,
            Arc::clone(&stop),
            &|_| {},
        )
        .await?;
    }

    progress.set("looking for deleted resources");
    for t in &wanted {
        if !meta.full_for(t) {
            continue;
        }
        let f = filters.get(*t).cloned().unwrap_or_default();
        let gone = deleted::missing_ids(&work.path, &earlier, t, &f)?;
        if !gone.is_empty() {
            report.deleted.insert((*t).to_owned(), gone.len());
        }
        deleted::write_deleted(&work.path, t, &gone, compression)?;
    }

    progress.set("linking the current files");
    report.links = symlinks::reset_all(root)?;
    meta.complete = Some(true);
    touch(&work, &mut meta)?;
    Ok(report)
}

fn touch(work: &Workdir, meta: &mut Output) -> Result<(), FetchError> {
    meta.timestamp = Some(metadata::now());
    meta.version = Some(metadata::VERSION.to_owned());
    metadata::write(&work.path, meta)?;
    Ok(())
}

/// The managed folder belongs to one server and one group; a run for another is refused.
fn check_managed(root: &Path, fhir_url: &str, group: Option<&str>) -> Result<(), FetchError> {
    let url = fhir_url.trim_end_matches('/');
    match metadata::read::<Managed>(root)? {
        Some(m) => {
            if m.kind != "managed" {
                return Err(FetchError::Usage(format!(
                    "{} is a '{}' folder, not a managed export folder",
                    root.display(),
                    m.kind
                )));
            }
            if let Some(old) = &m.fhir_url
                && old.trim_end_matches('/') != url
            {
                return Err(FetchError::Usage(format!(
                    "{} holds exports from {old}, not {url}; use another folder",
                    root.display()
                )));
            }
            if m.group.as_deref() != group {
                return Err(FetchError::Usage(format!(
                    "{} holds exports of group {:?}, not {:?}; use another folder",
                    root.display(),
                    m.group,
                    group
                )));
            }
            Ok(())
        }
        None => {
            let m = Managed {
                kind: "managed".into(),
                fhir_url: Some(url.to_owned()),
                group: group.map(str::to_owned),
                timestamp: Some(metadata::now()),
                version: Some(metadata::VERSION.to_owned()),
                extra: Default::default(),
            };
            let mut v = serde_json::to_value(&m).map_err(|e| FetchError::Usage(e.to_string()))?;
            // smart-fetch writes "group": null explicitly.
            v["group"] = serde_json::json!(group);
            metadata::write(root, &v)?;
            Ok(())
        }
    }
}

/// Filters per type, sorted, with the default Observation categories.
pub fn build_filters(
    wanted: &[&'static str],
    type_filters: &[String],
    default_filters: bool,
    epic: bool,
) -> Result<BTreeMap<String, Vec<String>>, FetchError> {
    let mut out: BTreeMap<String, Vec<String>> = wanted
        .iter()
        .map(|t| ((*t).to_owned(), Vec::new()))
        .collect();
    for f in type_filters {
        let (t, q) = types::split_filter(f).map_err(FetchError::Usage)?;
        let Some(list) = out.get_mut(t) else {
            return Err(FetchError::Usage(format!(
                "type filter '{f}' is for {t}, which is not among the exported types"
            )));
        };
        list.push(q);
    }
    if default_filters
        && let Some(obs) = out.get_mut("Observation")
        && obs.is_empty()
    {
        obs.push(types::default_observation_filter(epic));
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup();
    }
    Ok(out)
}

/// What every crawl of one export shares.
struct Crawl<'a> {
    client: &'a Arc<Client>,
    work: &'a Workdir,
    copts: &'a CrawlOptions,
    progress: &'a Arc<ExportProgress>,
    stop: &'a Arc<AtomicBool>,
}

impl Crawl<'_> {
    /// Crawls `jobs` for `keys` and records each type's outcome and `done` time.
    async fn jobs(
        &self,
        jobs: &[TypeJob],
        keys: &Keys,
        meta: &mut Output,
        report: &mut ExportReport,
    ) -> Result<(), FetchError> {
        let outs = crawl::crawl(
            Arc::clone(self.client),
            &self.work.path,
            jobs,
            keys,
            self.copts,
            Arc::clone(&self.progress.crawl),
            Arc::clone(self.stop),
            &mut report.lookups,
        )
        .await?;
        for o in &outs {
            meta.done.insert(o.resource_type.clone(), o.done.clone());
        }
        report.outcomes.extend(outs);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
async fn crawl_phase(
    client: &Arc<Client>,
    opts: &ExportOptions,
    work: &Workdir,
    meta: &mut Output,
    earlier: &[(Workdir, Output)],
    wanted: &[&'static str],
    filters: &BTreeMap<String, Vec<String>>,
    since_params: &BTreeMap<String, (String, String)>,
    since_mode: Option<SinceMode>,
    info: &ServerInfo,
    progress: &Arc<ExportProgress>,
    stop: &Arc<AtomicBool>,
    report: &mut ExportReport,
) -> Result<(), FetchError> {
    let copts = CrawlOptions {
        compression: opts.compression,
        policy: opts.policy,
        workers: opts.workers,
    };
    let crawl = Crawl {
        client,
        work,
        copts: &copts,
        progress,
        stop,
    };
    let time_mode = since_mode.unwrap_or(SinceMode::Updated);
    let job_for = |t: &str| TypeJob {
        resource_type: t.to_owned(),
        filters: filters.get(t).cloned().unwrap_or_default(),
        since: since_params.get(t).cloned(),
        time_field: since::time_field(time_mode, t),
    };

    // 1. Patients: looked up from the id list, or a bulk export of Patient.
    let patient_wanted = wanted.contains(&"Patient");
    let patient_done = meta.done.contains_key("Patient");
    let mut patients_fetched_now = false;
    if let Some(values) = &opts.cohort
        && !patient_done
    {
        progress.set(format!("looking up {} patients", values.len()));
        let keys = Keys::Lookup {
            values: values.clone(),
            system: opts.id_system.clone(),
        };
        let job = job_for("Patient");
        crawl
            .jobs(std::slice::from_ref(&job), &keys, meta, report)
            .await?;
        patients_fetched_now = true;
        touch(work, meta)?;
    } else if patient_wanted && !patient_done {
        progress.set("exporting Patient with a bulk export");
        let type_filters = filters
            .get("Patient")
            .into_iter()
            .flatten()
            .map(|q| format!("Patient?{q}"))
            .collect();
        let since = since_params.get("Patient").map(|(_, v)| v.clone());
        let s = bulk_export(
            client,
            opts,
            work,
            vec!["Patient".into()],
            type_filters,
            since,
            progress,
        )
        .await?;
        meta.done
            .insert("Patient".into(), s.transaction_time.clone());
        patients_fetched_now = true;
        touch(work, meta)?;
    } else if patient_done {
        tracing::info!("Patient already done in {}", work.name());
    }

    // 2. The cohort: the Patients of this folder, else those the top level links to.
    let links = deleted::patient_links(&work.path)?;
    let links = if links.is_empty() {
        deleted::patient_links(&opts.out)?
    } else {
        links
    };
    if links.is_empty() {
        return Err(FetchError::Usage(format!(
            "no cohort patients found in {}: give --id-list or --id-file, or export Patient first",
            work.path.display()
        )));
    }
    let mut ids: Vec<String> = links.keys().cloned().collect();
    ids.sort();
    let mut new_now: BTreeSet<String> = meta.new_patients.iter().flatten().cloned().collect();
    if patients_fetched_now && meta.full_for("Patient") {
        new_now = deleted::new_patients(
            earlier,
            filters
                .get("Patient")
                .map(Vec::as_slice)
                .unwrap_or_default(),
            &links,
        )?;
        meta.new_patients = (!new_now.is_empty()).then(|| new_now.iter().cloned().collect());
        touch(work, meta)?;
    }
    report.new_patients = new_now.len();

    // 3. Every other type, all at once.
    let now = metadata::now();
    let mut jobs = Vec::new();
    let mut full_history: HashSet<String> = new_now.iter().cloned().collect();
    for t in wanted.iter().filter(|t| **t != "Patient") {
        if meta.done.contains_key(*t) {
            tracing::info!("skipping {t}: already done");
            continue;
        }
        if info.is_epic() && matches!(*t, "EpisodeOfCare" | "Specimen") {
            // Epic cannot search these by patient; hydration finds them by reference.
            meta.done.insert((*t).to_owned(), now.clone());
            continue;
        }
        if since_params.contains_key(*t) {
            full_history.extend(deleted::pending_new_patients(earlier, t));
        }
        jobs.push(job_for(t));
    }
    if !jobs.is_empty() {
        progress.set(format!(
            "crawling {} types for {} patients",
            jobs.len(),
            ids.len()
        ));
        let keys = Keys::Patients { ids, full_history };
        crawl.jobs(&jobs, &keys, meta, report).await?;
    }
    touch(work, meta)?;

    // 4. Errors of every crawled type into error/OperationOutcome, then drop the state.
    let all_types: Vec<String> = types::PATIENT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let chunks = crawl::error_chunks(&work.path, &all_types, opts.compression)?;
    if !chunks.is_empty() {
        let dir = work.path.join("error");
        std::fs::create_dir_all(&dir).map_err(|e| FetchError::io(&dir, e))?;
        let dest = dir.join(format!("OperationOutcome{}", opts.compression.suffix()));
        append(&dest, &chunks)?;
        report.errors_file = Some(dest);
    }
    let state = crawl::state_dir(&work.path);
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(|e| FetchError::io(&state, e))?;
    }

    // 5. The stand-in log cumulus-etl reads.
    let earliest = meta
        .done
        .values()
        .filter_map(|v| since::instant_ms(v).map(|ms| (ms, v.clone())))
        .min()
        .map(|(_, v)| v)
        .unwrap_or_else(metadata::now);
    let name = crate::log::group_name(
        opts.group_nickname.as_deref(),
        opts.group.as_deref(),
        opts.id_file.as_deref(),
        &opts.out,
    );
    crate::log::write_fake(&work.path, client.base(), &name, &earliest, info)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn bulk_phase(
    client: &Arc<Client>,
    opts: &ExportOptions,
    work: &Workdir,
    meta: &mut Output,
    wanted: &[&'static str],
    filters: &BTreeMap<String, Vec<String>>,
    since_params: &BTreeMap<String, (String, String)>,
    since_mode: Option<SinceMode>,
    progress: &Arc<ExportProgress>,
    report: &mut ExportReport,
) -> Result<(), FetchError> {
    let todo: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|t| !meta.done.contains_key(*t))
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let mut type_filters = Vec::new();
    for t in &todo {
        let created = match (since_mode, since_params.get(*t)) {
            (Some(SinceMode::Created), Some((p, v))) => Some(format!("{p}=gt{v}")),
            _ => None,
        };
        let fs = filters.get(*t).cloned().unwrap_or_default();
        match (fs.is_empty(), &created) {
            (true, None) => {}
            (true, Some(c)) => type_filters.push(format!("{t}?{c}")),
            (false, _) => {
                for f in fs {
                    type_filters.push(match &created {
                        Some(c) => format!("{t}?{f}&{c}"),
                        None => format!("{t}?{f}"),
                    });
                }
            }
        }
    }
    type_filters.sort();
    // Updated mode: one _since for all, the oldest of the per-type values, and none at
    // all if some type has never been exported.
    let since = match since_mode {
        Some(SinceMode::Updated) if todo.iter().all(|t| since_params.contains_key(*t)) => todo
            .iter()
            .filter_map(|t| since_params.get(*t).map(|(_, v)| v.clone()))
            .min_by_key(|v| since::instant_ms(v).unwrap_or(i64::MIN)),
        _ => None,
    };
    let mut types: Vec<String> = todo.iter().map(|t| (*t).to_owned()).collect();
    types.sort();
    progress.set(format!("bulk export of {} types", todo.len()));
    let s = bulk_export(client, opts, work, types, type_filters, since, progress).await?;
    for t in &todo {
        meta.done
            .insert((*t).to_owned(), s.transaction_time.clone());
    }
    meta.bulk_status = None;
    report.bulk_messages = s.server_messages.clone();
    report.bulk_messages.extend(s.problems.iter().cloned());
    for t in &todo {
        report.outcomes.push(TypeOutcome {
            resource_type: (*t).to_owned(),
            resources: s.resources_by_type.get(*t).copied().unwrap_or(0),
            errors: 0,
            done: s.transaction_time.clone(),
        });
    }
    touch(work, meta)?;
    Ok(())
}

/// One bulk export (system, or `--group`) into the work folder.
async fn bulk_export(
    client: &Arc<Client>,
    opts: &ExportOptions,
    work: &Workdir,
    types: Vec<String>,
    type_filters: Vec<String>,
    since: Option<String>,
    progress: &Arc<ExportProgress>,
) -> Result<stratus_bulk::Summary, FetchError> {
    let spec = ExportSpec {
        level: Some(match &opts.group {
            Some(g) => Level::Group(g.clone()),
            None => Level::System,
        }),
        types,
        type_filters,
        since,
        ..ExportSpec::default()
    };
    let bopts = stratus_bulk::Options {
        out: Some(work.path.clone()),
        parallel: opts.bulk_parallel,
        compression: opts.compression,
        ..stratus_bulk::Options::default()
    };
    Ok(stratus_bulk::run(client, &spec, &bopts, Arc::clone(&progress.bulk)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_vendor_rules() {
        let wanted = ["Patient", "Condition", "Observation"];
        let f = build_filters(
            &wanted,
            &["Condition?clinical-status=active".into()],
            true,
            true,
        )
        .unwrap();
        assert_eq!(f["Condition"], ["clinical-status=active"]);
        assert_eq!(
            f["Observation"],
            ["category=social-history,vital-signs,imaging,laboratory,survey,exam"]
        );
        let own = build_filters(&wanted, &["Observation?code=1".into()], true, false).unwrap();
        assert_eq!(
            own["Observation"],
            ["code=1"],
            "a user filter replaces the default"
        );
        let err = build_filters(&wanted, &["Encounter?x=1".into()], true, false).unwrap_err();
        assert!(err.to_string().contains("not among the exported types"));
    }
}
