//! The NDJSON files of one folder (not its subfolders) by resource type, and the ids or
//! values they hold. The type comes from the file name when it names exactly one type,
//! else from the first line, as the other Cumulus tools decide it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::scan::scan_top;

use crate::FetchError;

/// NDJSON files directly in `dir` (symlinks followed), by type, names sorted.
pub fn by_type(dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, FetchError> {
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    if !dir.exists() {
        return Ok(out);
    }
    for f in scan_top(dir, ReaderOptions::default())? {
        if let Some(t) = f.resource_type {
            out.entry(t).or_default().push(f.path);
        }
    }
    Ok(out)
}

/// Files of type `t` directly in `dir`.
pub fn of_type(dir: &Path, t: &str) -> Result<Vec<PathBuf>, FetchError> {
    Ok(by_type(dir)?.remove(t).unwrap_or_default())
}

/// Calls `f` with every parsed resource of the files; lines that are not JSON objects are
/// skipped (a reader of someone else's folder must not stop on one bad line).
pub fn for_each(paths: &[PathBuf], mut f: impl FnMut(&Value)) -> Result<(), FetchError> {
    for p in paths {
        let mut r = NdjsonReader::open(p, ReaderOptions::default())?;
        while let Some(line) = r.next_line()? {
            if let Line::Data { bytes, .. } = line
                && let Ok(v) = serde_json::from_slice::<Value>(bytes)
            {
                f(&v);
            }
        }
    }
    Ok(())
}

/// The ids of every resource of type `t` in the files (other types are ignored).
pub fn ids(paths: &[PathBuf], t: &str) -> Result<HashSet<String>, FetchError> {
    let mut out = HashSet::new();
    for_each(paths, |v| {
        if v.get("resourceType").and_then(Value::as_str) == Some(t)
            && let Some(id) = v.get("id").and_then(Value::as_str)
        {
            out.insert(id.to_owned());
        }
    })?;
    Ok(out)
}

/// Ids of type `t` in the top level of `dir`.
pub fn ids_in(dir: &Path, t: &str) -> Result<HashSet<String>, FetchError> {
    ids(&of_type(dir, t)?, t)
}
