//! Scaling a real-shaped NDJSON folder: `K` copies of every resource, each copy with new ids
//! and every reference rewritten to match, so 100 Synthea patients become 100 × K patients
//! whose references all still resolve.
//!
//! The id mapping is a pure function of `(copy, old id)`, so no table of ids is kept and any
//! input size streams. Copy 0 is the input unchanged, byte for byte. A copy's new ids are
//! UUIDs, like Synthea's; identifier values are rewritten too, so that an MRN search still
//! finds exactly one patient per copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rayon::prelude::*;
use stratus_fhir::reference::{self, Reference};
use stratus_fhir::scan::{self, NdjsonFile};
use stratus_fhir::sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use stratus_fhir::stats::BadLine;
use stratus_fhir::{Compression, Line, LineProblem, NdjsonReader, NdjsonWriter, ReaderOptions};

use crate::SynthError;
use crate::ids::stable_uuid;

/// How to multiply.
#[derive(Debug, Clone, Copy)]
pub struct MultiplyConfig {
    /// Total copies, the original included (1 = a validated copy of the input).
    pub copies: u32,
    pub compression: Compression,
    pub reader: ReaderOptions,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct MultiplySummary {
    /// Resources written per type.
    pub counts: BTreeMap<String, u64>,
    pub files: Vec<PathBuf>,
    /// Input lines skipped because they were not usable resources.
    pub bad_lines: u64,
    /// Input NDJSON files skipped because their type is unknown (`log.ndjson` and the like).
    pub skipped_files: Vec<PathBuf>,
}

/// One output file: a range of copies of one input file.
struct Unit<'a> {
    input: &'a NdjsonFile,
    resource_type: &'a str,
    copies: std::ops::Range<u32>,
    dest: PathBuf,
}

/// Bytes to read (input size × the number of times it is read) for a progress bar.
pub fn planned_input_bytes(from: &Path, config: &MultiplyConfig) -> Result<u64, SynthError> {
    let files = scan::scan(from, config.reader)?;
    let shards = shard_count(config.copies, files.len()) as u64;
    Ok(files.iter().map(|f| f.disk_bytes * shards).sum())
}

/// Splits the copies so that both cores stay busy even with one big input file, while
/// keeping output files large enough to be worth their overhead.
fn shard_count(copies: u32, files: usize) -> u32 {
    let threads = rayon::current_num_threads().max(1);
    let wanted = (4 * threads).div_ceil(files.max(1)) as u32;
    wanted.clamp(1, copies.max(1))
}

/// Multiplies every NDJSON file under `from` into `out`, keeping sub-folders (`deleted/`,
/// `error/`). `disk_bytes` grows as input is read; `on_bad_line` hears each skipped line.
pub fn multiply(
    from: &Path,
    out: &Path,
    config: &MultiplyConfig,
    disk_bytes: Arc<AtomicU64>,
    on_bad_line: &(dyn Fn(&BadLine) + Sync),
) -> Result<MultiplySummary, SynthError> {
    if config.copies == 0 {
        return Err(SynthError::Invalid("--copies must be at least 1".into()));
    }
    let files = scan::scan(from, config.reader)?;
    let mut summary = MultiplySummary::default();
    let shards = shard_count(config.copies, files.len());
    let per_shard = config.copies.div_ceil(shards);
    let mut numbers: BTreeMap<(PathBuf, String), usize> = BTreeMap::new();
    let mut units = Vec::new();
    for file in &files {
        let Some(resource_type) = file.resource_type.as_deref() else {
            summary.skipped_files.push(file.path.clone());
            continue;
        };
        let rel_dir = file
            .path
            .parent()
            .and_then(|p| p.strip_prefix(from).ok())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = out.join(&rel_dir);
        std::fs::create_dir_all(&dir).map_err(|error| SynthError::Io {
            path: dir.clone(),
            error,
        })?;
        let mut start = 0;
        while start < config.copies {
            let end = (start + per_shard).min(config.copies);
            let n = numbers
                .entry((rel_dir.clone(), resource_type.to_owned()))
                .or_insert(0);
            *n += 1;
            let name = format!("{resource_type}.{:03}{}", *n, config.compression.suffix());
            units.push(Unit {
                input: file,
                resource_type,
                copies: start..end,
                dest: dir.join(name),
            });
            start = end;
        }
    }
    if units.is_empty() {
        return Err(SynthError::Invalid(format!(
            "{}: no NDJSON files of a known resource type",
            from.display()
        )));
    }
    let results: Vec<Result<UnitOutcome, SynthError>> = units
        .par_iter()
        .map(|u| run_unit(u, config, disk_bytes.clone(), on_bad_line))
        .collect();
    for (unit, result) in units.iter().zip(results) {
        let outcome = result?;
        *summary
            .counts
            .entry(unit.resource_type.to_owned())
            .or_default() += outcome.written;
        // Every shard re-reads the same input; count its bad lines once.
        if unit.copies.start == 0 {
            summary.bad_lines += outcome.bad_lines;
        }
        summary.files.push(unit.dest.clone());
    }
    summary.files.sort();
    Ok(summary)
}

struct UnitOutcome {
    written: u64,
    bad_lines: u64,
}

fn run_unit(
    unit: &Unit<'_>,
    config: &MultiplyConfig,
    disk_bytes: Arc<AtomicU64>,
    on_bad_line: &(dyn Fn(&BadLine) + Sync),
) -> Result<UnitOutcome, SynthError> {
    let mut reader = NdjsonReader::open_counted(&unit.input.path, config.reader, disk_bytes)?;
    let mut writer = NdjsonWriter::create(&unit.dest, config.compression)?;
    let mut outcome = UnitOutcome {
        written: 0,
        bad_lines: 0,
    };
    let report = unit.copies.start == 0;
    let mut bad = |line: u64, problem: LineProblem| {
        outcome.bad_lines += 1;
        if report {
            on_bad_line(&BadLine {
                path: unit.input.path.clone(),
                line,
                problem,
            });
        }
    };
    let mut out_buf = Vec::new();
    while let Some(line) = reader.next_line()? {
        let (number, bytes) = match line {
            Line::TooLong { number } => {
                bad(
                    number,
                    LineProblem::TooLong {
                        limit: config.reader.max_line_bytes,
                    },
                );
                continue;
            }
            Line::Data { number, bytes } => (number, bytes),
        };
        let resource = match stratus_fhir::Resource::parse(bytes) {
            Ok(r) if r.resource_type() == unit.resource_type => r,
            Ok(r) => {
                bad(
                    number,
                    LineProblem::UnexpectedType {
                        expected: unit.resource_type.to_owned(),
                        found: r.resource_type().to_owned(),
                    },
                );
                continue;
            }
            Err(problem) => {
                bad(number, problem);
                continue;
            }
        };
        for copy in unit.copies.clone() {
            if copy == 0 {
                writer.write_line(bytes)?;
            } else {
                out_buf.clear();
                write_copy(resource.value(), copy, &mut out_buf)?;
                writer.write_line(&out_buf)?;
            }
            outcome.written += 1;
        }
    }
    writer.finish()?;
    Ok(outcome)
}

/// The id that `old` has in copy `copy` (≥ 1).
pub fn copy_id(old: &str, copy: u32) -> String {
    stable_uuid(&[b"stratus-multiply", &copy.to_le_bytes(), old.as_bytes()])
}

/// Where in a resource the writer is, for the fields whose meaning depends on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The resource's own top level: `id` is the resource id.
    Top,
    /// Inside the resource's `identifier` list: `value` is an identifier value.
    Identifier,
    Elsewhere,
}

/// Writes copy `copy` (≥ 1) of a resource as one JSON line: its id, its identifier values and
/// every reference to another resource rewritten, everything else as it was, in the input's
/// key order. Writing while walking avoids cloning the value (and keeps the order, which an
/// edited `sonic_rs` object would not).
pub fn write_copy(resource: &Value, copy: u32, out: &mut Vec<u8>) -> Result<(), SynthError> {
    write_node(resource, copy, Place::Top, out)
}

fn write_node(v: &Value, copy: u32, place: Place, out: &mut Vec<u8>) -> Result<(), SynthError> {
    if let Some(obj) = v.as_object() {
        out.push(b'{');
        for (i, (key, child)) in obj.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json(&key, out)?;
            out.push(b':');
            match replacement(place, key, child, copy) {
                Some(new) => write_json(&new, out)?,
                None => {
                    let next = if place == Place::Top && key == "identifier" {
                        Place::Identifier
                    } else {
                        Place::Elsewhere
                    };
                    write_node(child, copy, next, out)?;
                }
            }
        }
        out.push(b'}');
    } else if let Some(arr) = v.as_array() {
        out.push(b'[');
        for (i, item) in arr.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // A list keeps the place of its field: `identifier` is a list of Identifiers.
            write_node(item, copy, place, out)?;
        }
        out.push(b']');
    } else {
        write_json(v, out)?;
    }
    Ok(())
}

fn write_json<T: stratus_fhir::sonic_rs::Serialize + ?Sized>(
    v: &T,
    out: &mut Vec<u8>,
) -> Result<(), SynthError> {
    stratus_fhir::sonic_rs::to_writer(&mut *out, v)
        .map_err(|e| stratus_fhir::FhirError::Serialize(e.to_string()).into())
}

/// The new value of a string field, if this field holds an id, an identifier value or a
/// reference. `reference` and `fullUrl` are rewritten in every form that carries an id but
/// `#contained`; `url` only in its relative form (`Binary/123` on attachments, `Patient/1`
/// in DELETE requests), because absolute `url`s are extension and profile canonicals.
fn replacement(place: Place, key: &str, value: &Value, copy: u32) -> Option<String> {
    let s = value.as_str()?;
    match (place, key) {
        (Place::Top, "id") => Some(copy_id(s, copy)),
        (Place::Identifier, "value") => Some(if is_uuid(s) {
            copy_id(s, copy)
        } else {
            format!("{s}-c{copy}")
        }),
        (_, "reference" | "fullUrl") => match reference::parse(s) {
            r @ (Reference::Relative { id, .. }
            | Reference::Absolute { id, .. }
            | Reference::UrnUuid(id)) => r.with_id(&copy_id(id, copy)),
            _ => None,
        },
        (_, "url") => match reference::parse(s) {
            r @ Reference::Relative { id, .. } => r.with_id(&copy_id(id, copy)),
            _ => None,
        },
        _ => None,
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_fhir::sonic_rs::{self, json};

    fn rewrite_copy(v: &mut Value, copy: u32) {
        let mut out = Vec::new();
        write_copy(v, copy, &mut out).unwrap();
        *v = sonic_rs::from_slice(&out).unwrap();
    }

    #[test]
    fn keeps_key_order() {
        let line = br#"{"resourceType":"Patient","id":"p1","b":1,"a":{"z":2,"y":[{"x":"s"}]}}"#;
        let v: Value = sonic_rs::from_slice(line).unwrap();
        let mut out = Vec::new();
        write_copy(&v, 2, &mut out).unwrap();
        let expected = format!(
            r#"{{"resourceType":"Patient","id":"{}","b":1,"a":{{"z":2,"y":[{{"x":"s"}}]}}}}"#,
            copy_id("p1", 2)
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn rewrites_ids_and_references_consistently() {
        let mut patient = json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "mrn", "value": "12345"}],
            "extension": [{"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"}],
            "link": [{"other": {"reference": "Patient/p0"}, "type": "replaces"}]
        });
        let mut obs = json!({
            "resourceType": "Observation", "id": "o1",
            "subject": {"reference": "Patient/p1"},
            "contained": [{"resourceType": "Specimen", "id": "s"}],
            "specimen": {"reference": "#s"},
            "hasMember": [{"reference": "urn:uuid:o2"}],
            "performer": [{"reference": "http://ehr/fhir/Practitioner/d1"}]
        });
        let mut doc = json!({
            "resourceType": "DocumentReference", "id": "d",
            "content": [{"attachment": {"url": "Binary/b1"}}]
        });
        rewrite_copy(&mut patient, 3);
        rewrite_copy(&mut obs, 3);
        rewrite_copy(&mut doc, 3);
        let p1 = copy_id("p1", 3);
        assert_eq!(patient["id"].as_str(), Some(p1.as_str()));
        assert_eq!(
            obs["subject"]["reference"].as_str(),
            Some(format!("Patient/{p1}").as_str())
        );
        assert_eq!(patient["identifier"][0]["value"].as_str(), Some("12345-c3"));
        assert_eq!(
            patient["extension"][0]["url"].as_str(),
            Some("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race")
        );
        assert_eq!(
            patient["link"][0]["other"]["reference"].as_str(),
            Some(format!("Patient/{}", copy_id("p0", 3)).as_str())
        );
        assert_eq!(obs["contained"][0]["id"].as_str(), Some("s"));
        assert_eq!(obs["specimen"]["reference"].as_str(), Some("#s"));
        assert_eq!(
            obs["hasMember"][0]["reference"].as_str(),
            Some(format!("urn:uuid:{}", copy_id("o2", 3)).as_str())
        );
        assert_eq!(
            obs["performer"][0]["reference"].as_str(),
            Some(format!("http://ehr/fhir/Practitioner/{}", copy_id("d1", 3)).as_str())
        );
        assert_eq!(
            doc["content"][0]["attachment"]["url"].as_str(),
            Some(format!("Binary/{}", copy_id("b1", 3)).as_str())
        );
        assert_ne!(copy_id("p1", 3), copy_id("p1", 4));
        let _ = sonic_rs::to_string(&doc).unwrap();
    }

    #[test]
    fn multiplies_a_folder() {
        let from = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(from.path().join("deleted")).unwrap();
        std::fs::write(
            from.path().join("1.Patient.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"a\"}\nbad\n",
        )
        .unwrap();
        std::fs::write(
            from.path().join("deleted/del.ndjson"),
            "{\"resourceType\":\"Bundle\",\"id\":\"b\",\"entry\":[{\"request\":{\"method\":\"DELETE\",\"url\":\"Patient/a\"}}]}\n",
        )
        .unwrap();
        std::fs::write(
            from.path().join("log.ndjson"),
            "{\"eventId\":\"kickoff\"}\n",
        )
        .unwrap();
        let config = MultiplyConfig {
            copies: 5,
            compression: Compression::None,
            reader: ReaderOptions::default(),
        };
        let bad = std::sync::Mutex::new(0);
        let s = multiply(
            from.path(),
            out.path(),
            &config,
            Arc::new(AtomicU64::new(0)),
            &|_| *bad.lock().unwrap() += 1,
        )
        .unwrap();
        assert_eq!(s.counts["Patient"], 5);
        assert_eq!(s.counts["Bundle"], 5);
        assert_eq!(s.bad_lines, 1);
        assert_eq!(*bad.lock().unwrap(), 1);
        assert_eq!(s.skipped_files.len(), 1);
        let stats = stratus_fhir::stats::collect(
            out.path(),
            ReaderOptions::default(),
            Arc::new(AtomicU64::new(0)),
            &|b| panic!("{b}"),
        )
        .unwrap();
        assert_eq!(stats.by_type["Patient"].resources, 5);
        assert!(s.files.iter().all(|f| f.exists()));
        assert!(
            s.files
                .iter()
                .any(|f| f.starts_with(out.path().join("deleted")))
        );
    }
}
