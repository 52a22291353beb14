//! What disappeared and what is new. Most EHRs report no deletions, so after a full export
//! of a type the ids seen in earlier exports of that type (back to its last full export)
//! and missing now are written as `deleted/Bundle.{Type}.ndjson[.gz]`: one transaction
//! Bundle with one DELETE entry per line, which cumulus-etl applies. Patients that are new
//! since the last export, or that absorbed another record by a merge (`link` of type
//! `replaces`), are listed in `newPatients` so since-crawls fetch their whole history.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::Value;
use stratus_fhir::writer::{Compression, NdjsonWriter};

use crate::FetchError;
use crate::files;
use crate::metadata::Output;
use crate::workdir::Workdir;

/// Patient ids and the records each replaces (merges), from the Patient files of a folder.
pub fn patient_links(dir: &Path) -> Result<HashMap<String, BTreeSet<String>>, FetchError> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    files::for_each(&files::of_type(dir, "Patient")?, |v| {
        if v.get("resourceType").and_then(Value::as_str) != Some("Patient") {
            return;
        }
        let Some(id) = v.get("id").and_then(Value::as_str) else {
            return;
        };
        let replaced = out.entry(id.to_owned()).or_default();
        for link in v
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if link.get("type").and_then(Value::as_str) == Some("replaces")
                && let Some(r) = link.pointer("/other/reference").and_then(Value::as_str)
            {
                replaced.insert(r.to_owned());
            }
        }
    })?;
    Ok(out)
}

/// New patients: in `current` but not in the newest earlier folder that finished Patient
/// with the same filters, or whose `replaces` links gained an entry. Empty on the first
/// export (everything is fetched in full then anyway).
pub fn new_patients(
    earlier: &[(Workdir, Output)],
    patient_filters: &[String],
    current: &HashMap<String, BTreeSet<String>>,
) -> Result<BTreeSet<String>, FetchError> {
    let Some((w, _)) = earlier.iter().rev().find(|(_, m)| {
        m.done.contains_key("Patient")
            && m.filters_of("Patient")
                .is_some_and(|f| f == patient_filters)
    }) else {
        return Ok(BTreeSet::new());
    };
    let before = patient_links(&w.path)?;
    Ok(current
        .iter()
        .filter(|(id, links)| match before.get(*id) {
            None => true,
            Some(old) => !links.is_subset(old),
        })
        .map(|(id, _)| id.clone())
        .collect())
}

/// The `newPatients` of earlier folders back to the last one that exported `t`: patients
/// a since-crawl of `t` must fetch in full, since `t` has not been fetched for them yet.
pub fn pending_new_patients(earlier: &[(Workdir, Output)], t: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (_, m) in earlier.iter().rev() {
        if m.done.contains_key(t) {
            break;
        }
        out.extend(m.new_patients.iter().flatten().cloned());
    }
    out
}

/// Ids of `t` that earlier exports saw and the current folder does not: the union over
/// earlier folders with the same filters for `t`, newest first, back to and including the
/// last full export of `t`.
pub fn missing_ids(
    current_dir: &Path,
    earlier: &[(Workdir, Output)],
    t: &str,
    filters: &[String],
) -> Result<BTreeSet<String>, FetchError> {
    let mut past: HashSet<String> = HashSet::new();
    let mut any = false;
    for (w, m) in earlier.iter().rev() {
        let Some(f) = m.filters_of(t) else { continue };
        if f != filters || !m.done.contains_key(t) {
            continue;
        }
        any = true;
        past.extend(files::ids_in(&w.path, t)?);
        if m.full_for(t) {
            break;
        }
    }
    if !any {
        return Ok(BTreeSet::new());
    }
    let now = files::ids_in(current_dir, t)?;
    Ok(past.difference(&now).cloned().collect())
}

/// Writes `dir/deleted/Bundle.{t}.ndjson[.gz]` (replacing it); nothing when `ids` is empty.
pub fn write_deleted(
    dir: &Path,
    t: &str,
    ids: &BTreeSet<String>,
    compression: Compression,
) -> Result<(), FetchError> {
    let folder = dir.join("deleted");
    let dest = folder.join(format!("Bundle.{t}{}", compression.suffix()));
    if ids.is_empty() {
        let _ = std::fs::remove_file(&dest);
        return Ok(());
    }
    std::fs::create_dir_all(&folder).map_err(|e| FetchError::io(&folder, e))?;
    let mut w = NdjsonWriter::create(&dest, compression)?;
    for id in ids {
        w.write_value(&stratus_fhir::bundle::deletion_bundle([(t, id.as_str())]))?;
    }
    w.finish()?;
    Ok(())
}
