//! Hydration: after an export, fetch what its resources point to (Medications, result and
//! member Observations, Practitioners and their Roles, Locations, Organizations, Episodes of
//! Care, Specimens) and inline note attachments, so the ETL never needs to reach back to
//! the EHR. Same tasks, fields and output names as smart-fetch
//! (`{Type}.{referenced|results|members|searched}.ndjson.gz`). Idempotent: what the folder
//! already holds is never fetched again, so a rerun only does what is missing.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use serde_json::Value;
use stratus_bulk::attachments::{InlineOptions, inline_file};
use stratus_fhir::writer::{Compression, NdjsonWriter};
use stratus_http::Client;

use crate::FetchError;
use crate::chunks::append;
use crate::files;

/// A task that downloads the targets of reference fields.
#[derive(Debug, Clone)]
pub struct RefTask {
    pub group: &'static str,
    pub name: String,
    pub input: &'static str,
    pub output: &'static str,
    pub slug: &'static str,
    /// Dotted paths; arrays are walked wherever they occur.
    pub fields: Vec<&'static str>,
}

/// Task groups, in the order `hydrate` runs them.
pub const GROUPS: [&str; 8] = [
    "episodeofcare",
    "inline",
    "medication",
    "observation",
    "specimen",
    "practitioner",
    "location",
    "organization",
];

const PRACT: &[(&str, &str, &str)] = &[
    ("allergy", "AllergyIntolerance", "recorder,asserter"),
    ("cond", "Condition", "recorder,asserter"),
    ("dxr", "DiagnosticReport", "performer,resultsInterpreter"),
    ("doc", "DocumentReference", "subject,author,authenticator"),
    ("enc", "Encounter", "participant.individual"),
    ("epofcare", "EpisodeOfCare", "careManager"),
    ("imm", "Immunization", "performer.actor"),
    (
        "meddisp",
        "MedicationDispense",
        "performer.actor,receiver,substitution.responsibleParty",
    ),
    (
        "medreq",
        "MedicationRequest",
        "reportedReference,requester,performer,recorder",
    ),
    ("obs", "Observation", "performer"),
    ("pat", "Patient", "generalPractitioner"),
    (
        "procedure",
        "Procedure",
        "recorder,asserter,performer.actor",
    ),
    ("servreq", "ServiceRequest", "requester,performer"),
    ("spec", "Specimen", "collection.collector"),
];

const LOC: &[(&str, &str, &str)] = &[
    ("dev", "Device", "location"),
    ("dxr", "DiagnosticReport", "subject"),
    (
        "enc",
        "Encounter",
        "hospitalization.origin,hospitalization.destination,location.location",
    ),
    ("imm", "Immunization", "location"),
    ("meddisp", "MedicationDispense", "location,destination"),
    ("obs", "Observation", "subject"),
    ("practrole", "PractitionerRole", "location"),
    ("proc", "Procedure", "location"),
    ("servreq", "ServiceRequest", "subject,locationReference"),
    ("spec", "Specimen", "subject"),
    ("loc", "Location", "partOf"),
];

const ORG: &[(&str, &str, &str)] = &[
    ("dev", "Device", "owner"),
    ("dxr", "DiagnosticReport", "performer,resultsInterpreter"),
    ("doc", "DocumentReference", "author,authenticator,custodian"),
    (
        "enc",
        "Encounter",
        "hospitalization.origin,hospitalization.destination,serviceProvider",
    ),
    ("epofcare", "EpisodeOfCare", "managingOrganization"),
    (
        "imm",
        "Immunization",
        "manufacturer,performer.actor,protocolApplied.authority",
    ),
    ("loc", "Location", "managingOrganization"),
    ("meddisp", "MedicationDispense", "performer.actor"),
    (
        "medreq",
        "MedicationRequest",
        "reportedReference,requester,performer,dispenseRequest.performer",
    ),
    ("obs", "Observation", "performer"),
    (
        "pat",
        "Patient",
        "contact.organization,generalPractitioner,managingOrganization",
    ),
    ("pract", "Practitioner", "qualification.issuer"),
    ("practrole", "PractitionerRole", "organization"),
    ("proc", "Procedure", "performer.actor,performer.onBehalfOf"),
    ("servreq", "ServiceRequest", "requester,performer"),
    ("org", "Organization", "partOf"),
];

fn task(
    group: &'static str,
    name: String,
    input: &'static str,
    output: &'static str,
    slug: &'static str,
    fields: &'static str,
) -> RefTask {
    RefTask {
        group,
        name,
        input,
        output,
        slug,
        fields: fields.split(',').collect(),
    }
}

/// Every reference task, in run order within its group.
pub fn ref_tasks() -> Vec<RefTask> {
    let mut t = vec![
        task(
            "episodeofcare",
            "docref-epofcare".into(),
            "DocumentReference",
            "EpisodeOfCare",
            "referenced",
            "context.encounter",
        ),
        task(
            "episodeofcare",
            "enc-epofcare".into(),
            "Encounter",
            "EpisodeOfCare",
            "referenced",
            "episodeOfCare",
        ),
        task(
            "episodeofcare",
            "meddisp-epofcare".into(),
            "MedicationDispense",
            "EpisodeOfCare",
            "referenced",
            "context",
        ),
        task(
            "medication",
            "meddisp-med".into(),
            "MedicationDispense",
            "Medication",
            "referenced",
            "medicationReference",
        ),
        task(
            "medication",
            "medreq-med".into(),
            "MedicationRequest",
            "Medication",
            "referenced",
            "medicationReference",
        ),
        task(
            "observation",
            "dxr-results".into(),
            "DiagnosticReport",
            "Observation",
            "results",
            "result",
        ),
        task(
            "observation",
            "obs-members".into(),
            "Observation",
            "Observation",
            "members",
            "hasMember",
        ),
        task(
            "specimen",
            "dxr-spec".into(),
            "DiagnosticReport",
            "Specimen",
            "referenced",
            "specimen",
        ),
        task(
            "specimen",
            "obs-spec".into(),
            "Observation",
            "Specimen",
            "referenced",
            "specimen",
        ),
        task(
            "specimen",
            "servreq-spec".into(),
            "ServiceRequest",
            "Specimen",
            "referenced",
            "specimen",
        ),
    ];
    for &(n, input, fields) in PRACT {
        t.push(task(
            "practitioner",
            format!("{n}-pract"),
            input,
            "Practitioner",
            "referenced",
            fields,
        ));
        let role_fields = if n == "meddisp" {
            "performer.actor,substitution.responsibleParty"
        } else {
            fields
        };
        t.push(task(
            "practitioner",
            format!("{n}-practrole"),
            input,
            "PractitionerRole",
            "referenced",
            role_fields,
        ));
    }
    t.push(task(
        "practitioner",
        "practrole-pract".into(),
        "PractitionerRole",
        "Practitioner",
        "referenced",
        "practitioner",
    ));
    for &(n, input, fields) in LOC {
        t.push(task(
            "location",
            format!("{n}-loc"),
            input,
            "Location",
            "referenced",
            fields,
        ));
    }
    for &(n, input, fields) in ORG {
        t.push(task(
            "organization",
            format!("{n}-org"),
            input,
            "Organization",
            "referenced",
            fields,
        ));
    }
    t
}

/// The types whose export can produce files of type `t` (itself included).
pub fn source_types(t: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    if let Some(c) = crate::types::PATIENT_TYPES
        .iter()
        .chain(crate::types::HYDRATED_ONLY.iter())
        .find(|x| **x == t)
    {
        out.push(c);
    }
    for task in ref_tasks() {
        if task.output == t && !out.contains(&task.input) {
            out.push(task.input);
        }
    }
    if t == "PractitionerRole" && !out.contains(&"Practitioner") {
        out.push("Practitioner");
    }
    out
}

/// Parses `--hydration-tasks` / `--tasks`: group names, `all` or `none`.
pub fn parse_groups(values: &[String]) -> Result<Vec<&'static str>, String> {
    let mut wanted = BTreeSet::new();
    for v in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        match v {
            "" => {}
            "all" => wanted.extend(GROUPS),
            "none" => {}
            other => match GROUPS.iter().find(|g| g.eq_ignore_ascii_case(other)) {
                Some(g) => {
                    wanted.insert(*g);
                }
                None => {
                    return Err(format!(
                        "unknown hydration task '{other}'; choose from: {}, all, none",
                        GROUPS.join(", ")
                    ));
                }
            },
        }
    }
    if values.is_empty() {
        wanted.extend(GROUPS);
    }
    Ok(GROUPS
        .iter()
        .copied()
        .filter(|g| wanted.contains(g))
        .collect())
}

#[derive(Debug, Clone)]
pub struct HydrateOptions {
    pub groups: Vec<&'static str>,
    pub compression: Compression,
    pub inline: InlineOptions,
    /// Requests prepared at once (the client's in-flight budget is the real limit).
    pub workers: usize,
}

/// What one task did.
#[derive(Debug, Clone, Default)]
pub struct TaskReport {
    pub name: String,
    /// Resources of the input type examined.
    pub examined: u64,
    /// Targets already in the folder.
    pub already: u64,
    /// Targets fetched now.
    pub new: u64,
    /// Targets that could not be fetched (first messages kept).
    pub failed: u64,
    pub messages: Vec<String>,
}

/// Runs the chosen groups on `dir`, reading inputs from `source` (usually `dir`).
pub async fn run(
    client: Arc<Client>,
    dir: &Path,
    source: &Path,
    opts: &HydrateOptions,
    stop: Arc<AtomicBool>,
    on_task: &(dyn Fn(&TaskReport) + Sync),
) -> Result<Vec<TaskReport>, FetchError> {
    let tasks = ref_tasks();
    let mut reports = Vec::new();
    for group in &opts.groups {
        // PractitionerRoles name Practitioners whose Roles name more Practitioners: run the
        // group until it finds nothing new.
        let rounds = if *group == "practitioner" { 3 } else { 1 };
        for round in 0..rounds {
            let mut found = 0;
            if stop.load(Ordering::Relaxed) {
                return Err(FetchError::Interrupted);
            }
            if *group == "inline" {
                let r = inline(&client, dir, opts).await?;
                on_task(&r);
                reports.push(r);
                continue;
            }
            for t in tasks.iter().filter(|t| t.group == *group) {
                let src = if t.input == t.output { dir } else { source };
                let r = run_ref_task(&client, dir, src, t, opts).await?;
                found += r.new;
                if round == 0 || r.new > 0 {
                    on_task(&r);
                    reports.push(r);
                }
            }
            if *group == "practitioner" {
                let r = search_roles(&client, dir, opts).await?;
                found += r.new;
                if round == 0 || r.new > 0 {
                    on_task(&r);
                    reports.push(r);
                }
            }
            if found == 0 {
                break;
            }
        }
    }
    Ok(reports)
}

/// Collects relative references to `output` under the dotted `path`.
fn refs_at(v: &Value, path: &str, output: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(items) => {
            for i in items {
                refs_at(i, path, output, out);
            }
        }
        Value::Object(map) => match path.split_once('.') {
            Some((head, rest)) => {
                if let Some(next) = map.get(head) {
                    refs_at(next, rest, output, out);
                }
            }
            None => {
                if let Some(next) = map.get(path) {
                    reference_of(next, output, out);
                }
            }
        },
        _ => {}
    }
}

fn reference_of(v: &Value, output: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| reference_of(i, output, out)),
        Value::Object(m) => {
            if let Some(r) = m.get("reference").and_then(Value::as_str)
                && let Some((t, id)) = r.split_once('/')
                && t == output
                && !id.is_empty()
                && !id.contains('/')
            {
                out.insert(id.to_owned());
            }
        }
        _ => {}
    }
}

async fn run_ref_task(
    client: &Client,
    dir: &Path,
    source: &Path,
    task: &RefTask,
    opts: &HydrateOptions,
) -> Result<TaskReport, FetchError> {
    let mut report = TaskReport {
        name: task.name.clone(),
        ..TaskReport::default()
    };
    let inputs = files::of_type(source, task.input)?;
    if inputs.is_empty() {
        return Ok(report);
    }
    let mut wanted = BTreeSet::new();
    files::for_each(&inputs, |v| {
        if v.get("resourceType").and_then(Value::as_str) == Some(task.input) {
            report.examined += 1;
            for f in &task.fields {
                refs_at(v, f, task.output, &mut wanted);
            }
        }
    })?;
    let mut seen = files::ids_in(dir, task.output)?;
    let dest = dir.join(format!(
        "{}.{}{}",
        task.output,
        task.slug,
        opts.compression.suffix()
    ));
    let mut appender = Appender::new(&dest, opts.compression);
    let mut todo: Vec<String> = Vec::new();
    for id in wanted {
        if seen.contains(&id) {
            report.already += 1;
        } else {
            seen.insert(id.clone());
            todo.push(id);
        }
    }
    // Loop rather than recurse: a chain of hasMember links can be as long as it likes.
    while !todo.is_empty() {
        let mut results = futures_util::stream::iter(todo.drain(..).map(|id| {
            let url = format!("{}/{}/{id}", client.base(), task.output);
            async move { (id, client.fetch(&url, "application/fhir+json").await) }
        }))
        .buffer_unordered(opts.workers.max(1));
        let mut next = BTreeSet::new();
        while let Some((id, answer)) = results.next().await {
            let problem = match answer {
                Err(e) => Some(e.to_string()),
                Ok(a) if !a.status.is_success() => Some(format!(
                    "{}/{id}: HTTP {}: {}",
                    task.output,
                    a.status.as_u16(),
                    stratus_http::client::outcome_message(&String::from_utf8_lossy(&a.body))
                        .unwrap_or_default()
                )),
                Ok(a) => match serde_json::from_slice::<Value>(&a.body) {
                    Ok(v) if v.get("resourceType").and_then(Value::as_str) == Some(task.output) => {
                        if task.input == task.output {
                            for f in &task.fields {
                                refs_at(&v, f, task.output, &mut next);
                            }
                        }
                        let line =
                            serde_json::to_vec(&v).map_err(|e| FetchError::Usage(e.to_string()))?;
                        appender.write(&line)?;
                        report.new += 1;
                        None
                    }
                    Ok(v) => Some(format!(
                        "{}/{id}: the answer is a {}",
                        task.output,
                        v.get("resourceType")
                            .and_then(Value::as_str)
                            .unwrap_or("non-resource")
                    )),
                    Err(e) => Some(format!("{}/{id}: not JSON: {e}", task.output)),
                },
            };
            if let Some(p) = problem {
                report.failed += 1;
                if report.messages.len() < 5 {
                    report.messages.push(p);
                }
            }
        }
        drop(results);
        for id in next {
            if seen.insert(id.clone()) {
                todo.push(id);
            }
        }
    }
    appender.finish()?;
    Ok(report)
}

/// `PractitionerRole?practitioner={id}` for every Practitioner not yet searched: Epic only
/// exposes Roles by search.
async fn search_roles(
    client: &Client,
    dir: &Path,
    opts: &HydrateOptions,
) -> Result<TaskReport, FetchError> {
    let mut report = TaskReport {
        name: "pract-practrole".into(),
        ..TaskReport::default()
    };
    let practs = files::ids_in(dir, "Practitioner")?;
    if practs.is_empty() {
        return Ok(report);
    }
    report.examined = practs.len() as u64;
    let dest = dir.join(format!(
        "PractitionerRole.searched{}",
        opts.compression.suffix()
    ));
    let searched_files: Vec<PathBuf> = files::of_type(dir, "PractitionerRole")?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".searched."))
        })
        .collect();
    let mut searched = BTreeSet::new();
    let mut role_ids = HashSet::new();
    files::for_each(&searched_files, |v| {
        if let Some(id) = v.get("id").and_then(Value::as_str) {
            role_ids.insert(id.to_owned());
        }
        if let Some(v) = v.get("practitioner") {
            reference_of(v, "Practitioner", &mut searched);
        }
    })?;
    let todo: Vec<String> = practs
        .into_iter()
        .filter(|p| {
            let done = searched.contains(p);
            if done {
                report.already += 1;
            }
            !done
        })
        .collect();
    let mut appender = Appender::new(&dest, opts.compression);
    let mut results = futures_util::stream::iter(todo.into_iter().map(|id| async move {
        let mut found = Vec::new();
        let mut next = Some(format!(
            "{}/PractitionerRole?practitioner={}",
            client.base(),
            crate::crawl::encode_value(&id)
        ));
        while let Some(url) = next.take() {
            let a = client.fetch(&url, "application/fhir+json").await?;
            if !a.status.is_success() {
                return Err(FetchError::Usage(format!(
                    "{url}: HTTP {}",
                    a.status.as_u16()
                )));
            }
            let Ok(b) = serde_json::from_slice::<Value>(&a.body) else {
                break;
            };
            for e in b
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = e.get("resource")
                    && r.get("resourceType").and_then(Value::as_str) == Some("PractitionerRole")
                {
                    found.push(r.clone());
                }
            }
            next = stratus_http::client::next_link(&b).map(|u| client.resolve(u));
        }
        Ok::<_, FetchError>(found)
    }))
    .buffer_unordered(opts.workers.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(roles) => {
                for role in roles {
                    let id = role
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    if role_ids.insert(id) {
                        let line = serde_json::to_vec(&role)
                            .map_err(|e| FetchError::Usage(e.to_string()))?;
                        appender.write(&line)?;
                        report.new += 1;
                    }
                }
            }
            Err(e) => {
                report.failed += 1;
                if report.messages.len() < 5 {
                    report.messages.push(e.to_string());
                }
            }
        }
    }
    drop(results);
    appender.finish()?;
    Ok(report)
}

async fn inline(
    client: &Client,
    dir: &Path,
    opts: &HydrateOptions,
) -> Result<TaskReport, FetchError> {
    let mut report = TaskReport {
        name: "inline".into(),
        ..TaskReport::default()
    };
    for t in ["DocumentReference", "DiagnosticReport"] {
        for path in files::of_type(dir, t)? {
            // Only the folder's own files: a symlink points into another work folder.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let gz = path.to_string_lossy().ends_with(".gz");
            let compression = match (gz, opts.compression) {
                (false, _) => Compression::None,
                (true, Compression::None) => Compression::FAST_GZIP,
                (true, c) => c,
            };
            let r = inline_file(client, &path, compression, &opts.inline)
                .await
                .map_err(FetchError::Usage)?;
            report.examined += r.inlined + r.already + r.too_large + r.failed.len() as u64;
            report.new += r.inlined;
            report.already += r.already;
            report.failed += r.failed.len() as u64;
            report.messages.extend(r.failed.into_iter().take(5));
        }
    }
    Ok(report)
}

/// Appends lines to a file atomically: new lines go to a side file; at the end the old
/// file and the new lines become the file in one rename.
struct Appender {
    dest: PathBuf,
    compression: Compression,
    writer: Option<NdjsonWriter>,
    side: PathBuf,
}

impl Appender {
    fn new(dest: &Path, compression: Compression) -> Appender {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Appender {
            dest: dest.to_path_buf(),
            compression,
            writer: None,
            side: dest.with_file_name(format!(".{name}.new")),
        }
    }

    fn write(&mut self, line: &[u8]) -> Result<(), FetchError> {
        if self.writer.is_none() {
            self.writer = Some(NdjsonWriter::create(&self.side, self.compression)?);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write_line(line)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), FetchError> {
        let Some(w) = self.writer else { return Ok(()) };
        w.finish()?;
        append(&self.dest, std::slice::from_ref(&self.side))?;
        let _ = std::fs::remove_file(&self.side);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_through_arrays() {
        let v: Value = serde_json::json!({
            "resourceType": "Encounter",
            "participant": [{"individual": {"reference": "Practitioner/a"}},
                            {"individual": {"reference": "PractitionerRole/r"}}],
            "location": [{"location": {"reference": "Location/l1"}},
                         {"location": {"reference": "#contained"}},
                         {"location": {"reference": "http://elsewhere/Location/x"}}]
        });
        let mut out = BTreeSet::new();
        refs_at(&v, "participant.individual", "Practitioner", &mut out);
        refs_at(&v, "location.location", "Location", &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), ["a", "l1"]);
        assert!(source_types("Medication").contains(&"MedicationRequest"));
        assert_eq!(parse_groups(&["none".into()]).unwrap(), Vec::<&str>::new());
        assert!(parse_groups(&["bogus".into()]).is_err());
    }
}
