//! The server's copy of the data: every resource of the data folder in plain NDJSON segment
//! files under the work folder, and a compact in-memory index over them.
//!
//! Input files are often gzipped, and gzip cannot seek; reads and searches need to fetch one
//! resource by position. So loading copies each input file once, decompressed, into a segment
//! and remembers where each resource starts. Resources are then read from disk when asked for
//! (`pread`), never held in memory: the index costs a few hundred bytes per resource
//! whatever the size of the resources (206 MiB resident for 880,000, see BENCHMARKS.md).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use stratus_fhir::date::DateRange;
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::reference::{self, Reference};
use stratus_fhir::scan;

use crate::error::LoadError;

/// No patient: the resource is outside every Patient compartment.
pub const NO_PATIENT: u32 = u32::MAX;
/// No `meta.lastUpdated`.
pub const NO_TIME: i64 = i64::MIN;

/// Where one resource lives, and the facts searches narrow by before reading it.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub offset: u64,
    pub segment: u32,
    pub len: u32,
    /// `meta.lastUpdated` in ms since the epoch, or [`NO_TIME`].
    pub last_updated: i64,
    /// Index into [`Store::patient_ids`] of the compartment patient, or [`NO_PATIENT`].
    pub patient: u32,
}

/// All resources of one type, in load order (files sorted by path, then line order).
#[derive(Debug, Default)]
pub struct TypeIndex {
    pub name: String,
    pub entries: Vec<Entry>,
    pub by_id: HashMap<Box<str>, u32>,
    /// Positions in `entries` per compartment patient, ascending.
    pub by_patient: HashMap<u32, Vec<u32>>,
    /// Positions in `entries` per identifier value (system ignored; checked on read).
    pub by_identifier: HashMap<Box<str>, Vec<u32>>,
}

/// A resource listed in the deletions file.
#[derive(Debug, Clone)]
pub struct Deletion {
    pub resource_type: String,
    pub id: String,
    /// When it was deleted (ms), if the file said; `None` means "report it for any `_since`".
    pub at: Option<i64>,
}

/// A cohort for Group-level export.
#[derive(Debug, Clone)]
pub struct Group {
    /// Member patients as indexes into [`Store::patient_ids`].
    pub members: Vec<u32>,
}

/// What loading found, for the start-up summary.
#[derive(Debug, Default, Clone)]
pub struct LoadSummary {
    pub files: usize,
    pub resources: u64,
    pub bytes: u64,
    pub bad_lines: u64,
    pub duplicates: u64,
    pub deleted: usize,
}

pub struct Store {
    segments: Vec<File>,
    types: Vec<TypeIndex>,
    type_pos: HashMap<String, usize>,
    patient_ids: Vec<Box<str>>,
    patient_pos: HashMap<Box<str>, u32>,
    pub groups: HashMap<String, Group>,
    pub deletions: Vec<Deletion>,
    deleted_keys: HashMap<(String, String), usize>,
    pub summary: LoadSummary,
}

/// Everything a group file or the command line adds to the data.
#[derive(Debug, Default, Clone)]
pub struct Extras {
    /// `(group id, file of patient ids)`.
    pub group_files: Vec<(String, PathBuf)>,
    pub deletions_file: Option<PathBuf>,
}

/// One resource as a loader thread saw it: type, id, entry, compartment patient, Patient
/// identifier values.
type Loaded = (String, Box<str>, Entry, Option<Box<str>>, Vec<Box<str>>);

struct FileLoad {
    segment_path: PathBuf,
    resources: Vec<Loaded>,
    groups: Vec<(String, Vec<Box<str>>)>,
    bytes: u64,
    bad_lines: u64,
}

impl Store {
    /// Reads every NDJSON file under `data` into segments under `work`.
    pub fn load(data: &Path, work: &Path, extras: &Extras) -> Result<Store, LoadError> {
        let deletions = match &extras.deletions_file {
            Some(p) => read_deletions(p)?,
            None => Vec::new(),
        };
        let mut deleted_keys = HashMap::new();
        for (i, d) in deletions.iter().enumerate() {
            deleted_keys.insert((d.resource_type.clone(), d.id.clone()), i);
        }
        let seg_dir = work.join("store");
        std::fs::create_dir_all(&seg_dir).map_err(|e| LoadError::io(&seg_dir, e))?;
        let files = scan::scan(data, ReaderOptions::default()).map_err(LoadError::Fhir)?;
        let files: Vec<_> = files
            .into_iter()
            .filter(|f| f.resource_type.is_some())
            .collect();
        if files.is_empty() {
            return Err(LoadError::NoData(data.to_path_buf()));
        }
        let loads: Vec<FileLoad> = files
            .par_iter()
            .enumerate()
            .map(|(i, f)| load_file(&f.path, &seg_dir.join(format!("{i:06}.ndjson")), i as u32))
            .collect::<Result<_, _>>()?;

        let mut store = Store {
            segments: Vec::with_capacity(loads.len()),
            types: Vec::new(),
            type_pos: HashMap::new(),
            patient_ids: Vec::new(),
            patient_pos: HashMap::new(),
            groups: HashMap::new(),
            deletions,
            deleted_keys,
            summary: LoadSummary {
                files: loads.len(),
                ..LoadSummary::default()
            },
        };
        let mut group_members: Vec<(String, Vec<Box<str>>)> = Vec::new();
        for load in loads {
            let file =
                File::open(&load.segment_path).map_err(|e| LoadError::io(&load.segment_path, e))?;
            store.segments.push(file);
            store.summary.bytes += load.bytes;
            store.summary.bad_lines += load.bad_lines;
            group_members.extend(load.groups);
            for (rtype, id, mut entry, patient, identifiers) in load.resources {
                if store
                    .deleted_keys
                    .contains_key(&(rtype.clone(), id.to_string()))
                {
                    continue;
                }
                entry.patient = match patient {
                    Some(p) => store.intern_patient(p),
                    None => NO_PATIENT,
                };
                let t = store.type_index_mut(&rtype);
                let pos = t.entries.len() as u32;
                if t.by_id.contains_key(&id) {
                    store.summary.duplicates += 1;
                    tracing::debug!("{rtype}/{id} appears more than once; serving the first");
                    continue;
                }
                t.by_id.insert(id, pos);
                if entry.patient != NO_PATIENT {
                    t.by_patient.entry(entry.patient).or_default().push(pos);
                }
                for value in identifiers {
                    t.by_identifier.entry(value).or_default().push(pos);
                }
                t.entries.push(entry);
                store.summary.resources += 1;
            }
        }
        store.summary.deleted = store.deletions.len();
        for (id, members) in group_members {
            let members = members
                .into_iter()
                .map(|m| store.intern_patient(m))
                .collect();
            store.groups.insert(id, Group { members });
        }
        for (gid, path) in &extras.group_files {
            store.add_group_file(gid, path, work)?;
        }
        Ok(store)
    }

    fn intern_patient(&mut self, id: Box<str>) -> u32 {
        if let Some(&i) = self.patient_pos.get(&id) {
            return i;
        }
        let i = self.patient_ids.len() as u32;
        self.patient_ids.push(id.clone());
        self.patient_pos.insert(id, i);
        i
    }

    fn type_index_mut(&mut self, name: &str) -> &mut TypeIndex {
        let pos = match self.type_pos.get(name) {
            Some(&p) => p,
            None => {
                self.types.push(TypeIndex {
                    name: name.to_owned(),
                    ..TypeIndex::default()
                });
                self.type_pos.insert(name.to_owned(), self.types.len() - 1);
                self.types.len() - 1
            }
        };
        &mut self.types[pos]
    }

    /// A Group made from a file of patient ids (one per line, `Patient/` prefix optional,
    /// `#` comments), added to the data as a Group resource so it can be read and exported.
    fn add_group_file(&mut self, gid: &str, path: &Path, work: &Path) -> Result<(), LoadError> {
        if !reference::is_valid_id(gid) {
            return Err(LoadError::BadGroupId(gid.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = line.strip_prefix("Patient/").unwrap_or(line);
            if !reference::is_valid_id(id) {
                return Err(LoadError::BadLine {
                    path: path.to_path_buf(),
                    line: n as u64 + 1,
                    reason: format!("'{line}' is not a patient id"),
                });
            }
            ids.push(id.to_owned());
        }
        let members: Vec<Value> = ids
            .iter()
            .map(|id| sonic_rs::json!({"entity": {"reference": format!("Patient/{id}")}}))
            .collect();
        let group = sonic_rs::json!({
            "resourceType": "Group",
            "id": gid,
            "type": "person",
            "actual": true,
            "quantity": ids.len(),
            "member": members,
        });
        let bytes = sonic_rs::to_vec(&group).map_err(|e| LoadError::Json(e.to_string()))?;
        let seg_path = work
            .join("store")
            .join(format!("group-{}.ndjson", self.segments.len()));
        std::fs::write(&seg_path, &bytes).map_err(|e| LoadError::io(&seg_path, e))?;
        let file = File::open(&seg_path).map_err(|e| LoadError::io(&seg_path, e))?;
        self.segments.push(file);
        let entry = Entry {
            offset: 0,
            segment: (self.segments.len() - 1) as u32,
            len: bytes.len() as u32,
            last_updated: NO_TIME,
            patient: NO_PATIENT,
        };
        let members = ids
            .into_iter()
            .map(|id| self.intern_patient(id.into()))
            .collect();
        let t = self.type_index_mut("Group");
        match t.by_id.get(gid) {
            Some(&pos) => t.entries[pos as usize] = entry,
            None => {
                t.by_id.insert(gid.into(), t.entries.len() as u32);
                t.entries.push(entry);
            }
        }
        self.groups.insert(gid.to_owned(), Group { members });
        Ok(())
    }

    /// The types that have at least one resource, in load order.
    pub fn types(&self) -> impl Iterator<Item = &TypeIndex> {
        self.types.iter().filter(|t| !t.entries.is_empty())
    }

    pub fn type_index(&self, name: &str) -> Option<&TypeIndex> {
        self.type_pos.get(name).map(|&p| &self.types[p])
    }

    pub fn patient_id(&self, idx: u32) -> Option<&str> {
        self.patient_ids.get(idx as usize).map(|s| &**s)
    }

    pub fn patient_index(&self, id: &str) -> Option<u32> {
        self.patient_pos.get(id).copied()
    }

    /// True if the Patient resource itself is in the data.
    pub fn has_patient(&self, id: &str) -> bool {
        self.type_index("Patient")
            .is_some_and(|t| t.by_id.contains_key(id))
    }

    /// The deletion recorded for `Type/id`, if any.
    pub fn deletion(&self, resource_type: &str, id: &str) -> Option<&Deletion> {
        self.deleted_keys
            .get(&(resource_type.to_owned(), id.to_owned()))
            .map(|&i| &self.deletions[i])
    }

    /// The raw JSON of one resource, read from its segment.
    pub fn read(&self, entry: &Entry) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; entry.len as usize];
        self.read_into(entry, &mut buf)?;
        Ok(buf)
    }

    /// Like [`Store::read`] into a caller's buffer (resized to fit).
    pub fn read_into(&self, entry: &Entry, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.resize(entry.len as usize, 0);
        let file = self
            .segments
            .get(entry.segment as usize)
            .ok_or_else(|| std::io::Error::other("segment index out of range"))?;
        file.read_exact_at(buf, entry.offset)
    }
}

fn load_file(path: &Path, seg_path: &Path, segment: u32) -> Result<FileLoad, LoadError> {
    let mut reader = NdjsonReader::open(path, ReaderOptions::default()).map_err(LoadError::Fhir)?;
    let out = File::create(seg_path).map_err(|e| LoadError::io(seg_path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut load = FileLoad {
        segment_path: seg_path.to_path_buf(),
        resources: Vec::new(),
        groups: Vec::new(),
        bytes: 0,
        bad_lines: 0,
    };
    let mut offset = 0u64;
    while let Some(line) = reader.next_line().map_err(LoadError::Fhir)? {
        let (number, bytes) = match line {
            Line::Data { number, bytes } => (number, bytes),
            Line::TooLong { number } => {
                tracing::warn!(
                    "{}:{number}: line over the size limit, skipped",
                    path.display()
                );
                load.bad_lines += 1;
                continue;
            }
        };
        let value: Value = match sonic_rs::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                let msg = e.to_string();
                let msg = msg.lines().next().unwrap_or_default();
                tracing::warn!("{}:{number}: invalid JSON: {msg}", path.display());
                load.bad_lines += 1;
                continue;
            }
        };
        let (Some(rtype), Some(id)) = (
            value.get("resourceType").and_then(|v| v.as_str()),
            value.get("id").and_then(|v| v.as_str()),
        ) else {
            tracing::warn!(
                "{}:{number}: no resourceType or id, skipped",
                path.display()
            );
            load.bad_lines += 1;
            continue;
        };
        if u32::try_from(bytes.len()).is_err() {
            load.bad_lines += 1;
            continue;
        }
        let last_updated = value
            .get("meta")
            .and_then(|m| m.get("lastUpdated"))
            .and_then(|v| v.as_str())
            .and_then(DateRange::parse)
            .map_or(NO_TIME, |r| r.start);
        let patient = compartment_patient(rtype, id, &value);
        let identifiers = if rtype == "Patient" {
            identifier_values(&value)
        } else {
            Vec::new()
        };
        if rtype == "Group" {
            load.groups.push((id.to_owned(), group_members(&value)));
        }
        out.write_all(bytes)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| LoadError::io(seg_path, e))?;
        let entry = Entry {
            offset,
            segment,
            len: bytes.len() as u32,
            last_updated,
            patient: NO_PATIENT,
        };
        offset += bytes.len() as u64 + 1;
        load.bytes += bytes.len() as u64 + 1;
        load.resources.push((
            rtype.to_owned(),
            id.into(),
            entry,
            patient.map(Into::into),
            identifiers,
        ));
    }
    out.flush().map_err(|e| LoadError::io(seg_path, e))?;
    Ok(load)
}

/// The patient whose compartment holds this resource: the Patient itself, else the patient
/// named by `subject`, `patient` or `beneficiary`, else the first Patient reference anywhere.
/// Groups are cohorts, not compartment members.
pub fn compartment_patient(rtype: &str, id: &str, value: &Value) -> Option<String> {
    match rtype {
        "Patient" => return Some(id.to_owned()),
        "Group" => return None,
        _ => {}
    }
    for field in ["subject", "patient", "beneficiary"] {
        if let Some(p) = value
            .get(field)
            .and_then(|r| r.get("reference"))
            .and_then(|r| r.as_str())
            .and_then(patient_of)
        {
            return Some(p);
        }
    }
    first_patient_reference(value)
}

fn patient_of(reference: &str) -> Option<String> {
    match reference::parse(reference) {
        Reference::Relative {
            resource_type: "Patient",
            id,
            ..
        }
        | Reference::Absolute {
            resource_type: "Patient",
            id,
            ..
        } => Some(id.to_owned()),
        _ => None,
    }
}

fn first_patient_reference(value: &Value) -> Option<String> {
    if let Some(obj) = value.as_object() {
        for (k, v) in obj.iter() {
            if k == "reference" {
                if let Some(p) = v.as_str().and_then(patient_of) {
                    return Some(p);
                }
            } else if let Some(p) = first_patient_reference(v) {
                return Some(p);
            }
        }
    } else if let Some(arr) = value.as_array() {
        for v in arr.iter() {
            if let Some(p) = first_patient_reference(v) {
                return Some(p);
            }
        }
    }
    None
}

fn identifier_values(value: &Value) -> Vec<Box<str>> {
    value
        .get("identifier")
        .and_then(|i| i.as_array())
        .map(|arr| {
            arr.iter()
                .filter_map(|i| i.get("value").and_then(|v| v.as_str()))
                .map(Into::into)
                .collect()
        })
        .unwrap_or_default()
}

fn group_members(value: &Value) -> Vec<Box<str>> {
    value
        .get("member")
        .and_then(|m| m.as_array())
        .map(|arr| {
            arr.iter()
                .filter_map(|m| {
                    m.get("entity")
                        .and_then(|e| e.get("reference"))
                        .and_then(|r| r.as_str())
                })
                .filter_map(patient_of)
                .map(Into::into)
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a deletions file: one `Type/id` per line, optionally followed by whitespace and the
/// instant it was deleted; or NDJSON deletion Bundles as Bulk Data `deleted` files hold them.
fn read_deletions(path: &Path) -> Result<Vec<Deletion>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        let bad = |reason: String| LoadError::BadLine {
            path: path.to_path_buf(),
            line: n as u64 + 1,
            reason,
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('{') {
            let v: Value =
                sonic_rs::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            let entries = stratus_fhir::bundle::deleted_entries(&v);
            if entries.is_empty() {
                return Err(bad(
                    "a JSON line must be a Bundle with DELETE entries".into()
                ));
            }
            let at = v
                .get("meta")
                .and_then(|m| m.get("lastUpdated"))
                .and_then(|t| t.as_str())
                .and_then(DateRange::parse)
                .map(|r| r.start);
            out.extend(entries.into_iter().map(|(t, id)| Deletion {
                resource_type: t,
                id,
                at,
            }));
            continue;
        }
        let mut parts = line.split_whitespace();
        let reference = parts.next().unwrap_or_default();
        let (t, id) = match reference::parse(reference) {
            Reference::Relative {
                resource_type, id, ..
            } => (resource_type, id),
            _ => return Err(bad(format!("'{reference}' is not a Type/id reference"))),
        };
        let at = match parts.next() {
            None => None,
            Some(s) => Some(
                DateRange::parse(s)
                    .ok_or_else(|| bad(format!("'{s}' is not a FHIR instant")))?
                    .start,
            ),
        };
        out.push(Deletion {
            resource_type: t.to_owned(),
            id: id.to_owned(),
            at,
        });
    }
    Ok(out)
}
