//! Do a folder's references resolve? Every relative `Type/id` reference (and `Binary/id`
//! attachment URL) must name a resource in the folder, and every `#id` a contained resource
//! of the same resource. Absolute URLs point outside the data set and are only counted.
//!
//! This holds every `Type/id` of the folder in memory (about 60 bytes each), so it is an
//! opt-in check, not part of every read.

use std::collections::HashSet;
use std::path::PathBuf;

use rayon::prelude::*;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use crate::error::FhirError;
use crate::reader::{Line, NdjsonReader, ReaderOptions};
use crate::reference::{self, Reference};
use crate::resource::Resource;
use crate::scan::NdjsonFile;

/// How many dangling references are kept for display; the rest are only counted.
pub const MAX_EXAMPLES: usize = 100;

/// A reference that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dangling {
    pub path: PathBuf,
    pub line: u64,
    pub reference: String,
}

impl std::fmt::Display for Dangling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: reference {} does not resolve",
            self.path.display(),
            self.line,
            self.reference
        )
    }
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct IntegrityReport {
    /// Relative and contained references checked.
    pub checked: u64,
    /// Absolute-URL references (not checked).
    pub external: u64,
    pub dangling: u64,
    /// The first [`MAX_EXAMPLES`] dangling references, in file order.
    pub examples: Vec<Dangling>,
}

/// Checks every reference in `files` (bad lines are skipped; `stats` reports them).
pub fn check(files: &[NdjsonFile], options: ReaderOptions) -> Result<IntegrityReport, FhirError> {
    let typed: Vec<&NdjsonFile> = files.iter().filter(|f| f.resource_type.is_some()).collect();
    let per_file_ids: Vec<Vec<String>> = typed
        .par_iter()
        .map(|f| {
            let mut ids = Vec::new();
            for_each_resource(f, options, |_, r| {
                ids.push(format!("{}/{}", r.resource_type(), r.id()))
            })?;
            Ok(ids)
        })
        .collect::<Result<_, FhirError>>()?;
    let known: HashSet<String> = per_file_ids.into_iter().flatten().collect();
    let reports: Vec<IntegrityReport> = typed
        .par_iter()
        .map(|f| {
            let mut report = IntegrityReport::default();
            for_each_resource(f, options, |line, r| {
                let contained = contained_ids(r.value());
                visit(r.value(), &mut |s, is_url| {
                    let ok = match reference::parse(s) {
                        Reference::Relative {
                            resource_type, id, ..
                        } => known.contains(&format!("{resource_type}/{id}")),
                        Reference::Contained(id) if !is_url => {
                            id.is_empty() || contained.contains(id)
                        }
                        Reference::Absolute { .. } if !is_url => {
                            report.external += 1;
                            return;
                        }
                        _ => return,
                    };
                    report.checked += 1;
                    if !ok {
                        report.dangling += 1;
                        if report.examples.len() < MAX_EXAMPLES {
                            report.examples.push(Dangling {
                                path: f.path.clone(),
                                line,
                                reference: s.to_owned(),
                            });
                        }
                    }
                });
            })?;
            Ok(report)
        })
        .collect::<Result<_, FhirError>>()?;
    let mut total = IntegrityReport::default();
    for r in reports {
        total.checked += r.checked;
        total.external += r.external;
        total.dangling += r.dangling;
        let room = MAX_EXAMPLES.saturating_sub(total.examples.len());
        total.examples.extend(r.examples.into_iter().take(room));
    }
    Ok(total)
}

fn for_each_resource(
    file: &NdjsonFile,
    options: ReaderOptions,
    mut f: impl FnMut(u64, &Resource),
) -> Result<(), FhirError> {
    let mut reader = NdjsonReader::open(&file.path, options)?;
    while let Some(line) = reader.next_line()? {
        if let Line::Data { number, bytes } = line
            && let Ok(r) = Resource::parse(bytes)
        {
            f(number, &r);
        }
    }
    Ok(())
}

fn contained_ids(resource: &Value) -> HashSet<&str> {
    resource
        .get("contained")
        .and_then(|c| c.as_array())
        .map(|arr| {
            arr.iter()
                .filter_map(|c| c.get("id").and_then(|i| i.as_str()))
                .collect()
        })
        .unwrap_or_default()
}

/// Calls `f(string, is_url)` for every `reference` string and every `url` string (the
/// latter are attachment and request URLs; only their relative form is a reference).
fn visit<'a>(value: &'a Value, f: &mut impl FnMut(&'a str, bool)) {
    if let Some(arr) = value.as_array() {
        for v in arr.iter() {
            visit(v, f);
        }
    } else if let Some(obj) = value.as_object() {
        for (k, v) in obj.iter() {
            match (k, v.as_str()) {
                ("reference", Some(s)) => f(s, false),
                ("url", Some(s)) => f(s, true),
                (_, None) => visit(v, f),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan;

    #[test]
    fn finds_dangling_references() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Patient.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("Observation.ndjson"),
            concat!(
                "{\"resourceType\":\"Observation\",\"id\":\"o\",\"subject\":{\"reference\":\"Patient/p\"},",
                "\"contained\":[{\"resourceType\":\"Specimen\",\"id\":\"s\"}],\"specimen\":{\"reference\":\"#s\"},",
                "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/x\"}],",
                "\"performer\":[{\"reference\":\"https://ehr/fhir/Practitioner/1\"}]}\n",
                "{\"resourceType\":\"Observation\",\"id\":\"o2\",\"subject\":{\"reference\":\"Patient/nope\"},",
                "\"derivedFrom\":[{\"reference\":\"#missing\"}]}\n",
            ),
        )
        .unwrap();
        let files = scan(dir.path(), ReaderOptions::default()).unwrap();
        let r = check(&files, ReaderOptions::default()).unwrap();
        assert_eq!((r.checked, r.external, r.dangling), (4, 1, 2));
        assert_eq!(r.examples[0].line, 2);
        assert_eq!(r.examples[0].reference, "Patient/nope");
    }
}
