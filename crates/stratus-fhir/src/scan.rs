//! Finding NDJSON files in a folder the way cumulus-etl does: recursively, following
//! symlinks (managed export folders are made of them), typing each file by its name when the
//! name says exactly one resource type and by its first line otherwise.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::FhirError;
use crate::names;
use crate::reader::{Line, NdjsonReader, ReaderOptions};
use crate::resource::Resource;

/// How a file's resource type was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeSource {
    /// The file name names exactly one resource type; the content was not read.
    FileName,
    /// Taken from the first resource in the file.
    Content,
}

/// One NDJSON file found by [`scan`].
#[derive(Debug, Clone)]
pub struct NdjsonFile {
    pub path: PathBuf,
    /// `None` when neither the name nor the first line says (a `log.ndjson`, an empty file).
    pub resource_type: Option<String>,
    pub type_source: Option<TypeSource>,
    /// Size on disk (compressed size for gzip files).
    pub disk_bytes: u64,
}

/// Lists the NDJSON files under `root` (or `root` itself if it is a file), sorted by path.
/// A folder or file reached twice through symlinks is listed once, under the first path in
/// sorted order, so nothing is counted twice.
pub fn scan(root: &Path, options: ReaderOptions) -> Result<Vec<NdjsonFile>, FhirError> {
    let meta = std::fs::metadata(root).map_err(|e| FhirError::io(root, e))?;
    let mut paths = Vec::new();
    if meta.is_file() {
        paths.push(root.to_path_buf());
    } else {
        let mut seen = HashSet::new();
        walk(root, &mut seen, &mut paths)?;
    }
    paths.sort();
    let mut seen_files = HashSet::new();
    paths.retain(|p| seen_files.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())));
    typed(paths, options)
}

/// Lists the NDJSON files directly in `dir` (symlinks followed, names starting with a dot
/// skipped), sorted by path. A managed export folder is read this way: its top level holds
/// links to the current files, and its work folders older ones that must not be read too
/// (with [`scan`], a work folder's file would also hide the link to it, being first).
pub fn scan_top(dir: &Path, options: ReaderOptions) -> Result<Vec<NdjsonFile>, FhirError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| FhirError::io(dir, e))? {
        let entry = entry.map_err(|e| FhirError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // metadata() follows symlinks: a dangling link is skipped.
        if !name.starts_with('.')
            && names::is_ndjson_name(&name)
            && std::fs::metadata(&path).is_ok_and(|m| m.is_file())
        {
            paths.push(path);
        }
    }
    paths.sort();
    typed(paths, options)
}

/// The files with their types and sizes.
fn typed(paths: Vec<PathBuf>, options: ReaderOptions) -> Result<Vec<NdjsonFile>, FhirError> {
    paths
        .into_iter()
        .map(|path| {
            let disk_bytes = std::fs::metadata(&path)
                .map_err(|e| FhirError::io(&path, e))?
                .len();
            let (resource_type, type_source) = detect_type(&path, options);
            Ok(NdjsonFile {
                path,
                resource_type,
                type_source,
                disk_bytes,
            })
        })
        .collect()
}

fn walk(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<(), FhirError> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| FhirError::io(dir, e))?;
    if !seen.insert(canonical) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .and_then(|rd| rd.collect::<Result<Vec<_>, _>>())
        .map_err(|e| FhirError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // metadata() follows symlinks; a dangling link is skipped rather than fatal.
        let Ok(meta) = std::fs::metadata(&path) else {
            tracing::warn!("skipping {}: broken link or unreadable", path.display());
            continue;
        };
        if meta.is_dir() {
            walk(&path, seen, out)?;
        } else if meta.is_file() && names::is_ndjson_name(&entry.file_name().to_string_lossy()) {
            out.push(path);
        }
    }
    Ok(())
}

/// A file's resource type: from its name when that names exactly one type, else from the
/// `resourceType` of its first line.
pub fn detect_type(path: &Path, options: ReaderOptions) -> (Option<String>, Option<TypeSource>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if let Some(t) = names::type_from_name(&name) {
        return (Some(t.to_owned()), Some(TypeSource::FileName));
    }
    match first_resource_type(path, options) {
        Some(t) => (Some(t), Some(TypeSource::Content)),
        None => (None, None),
    }
}

fn first_resource_type(path: &Path, options: ReaderOptions) -> Option<String> {
    let mut reader = NdjsonReader::open(path, options).ok()?;
    match reader.next_line().ok()?? {
        Line::Data { bytes, .. } => {
            let value: sonic_rs::Value = sonic_rs::from_slice(bytes).ok()?;
            Resource::from_value(value)
                .ok()
                .map(|r| r.resource_type().to_owned())
                .or_else(|| {
                    // A first line with a type but no id still says what the file holds.
                    sonic_rs::from_slice::<sonic_rs::Value>(bytes)
                        .ok()
                        .and_then(|v| {
                            use sonic_rs::JsonValueTrait;
                            v.get("resourceType")
                                .and_then(|t| t.as_str())
                                .map(str::to_owned)
                        })
                })
        }
        Line::TooLong { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_recursively_and_types_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("1.Patient.ndjson"), "").unwrap();
        std::fs::write(
            d.join("sub/obs.ndjson"),
            "\n{\"resourceType\":\"Observation\",\"id\":\"o\"}\n",
        )
        .unwrap();
        std::fs::write(d.join("log.ndjson"), "{\"eventId\":\"kickoff\"}\n").unwrap();
        std::fs::write(d.join("notes.txt"), "x").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
            std::os::unix::fs::symlink("sub/obs.ndjson", d.join("a.ndjson")).unwrap();
        }
        let files = scan(d, ReaderOptions::default()).unwrap();
        let got: Vec<(String, Option<String>)> = files
            .iter()
            .map(|f| {
                (
                    f.path.strip_prefix(d).unwrap().display().to_string(),
                    f.resource_type.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("1.Patient.ndjson".into(), Some("Patient".into())),
                ("a.ndjson".into(), Some("Observation".into())),
                ("log.ndjson".into(), None),
            ]
        );
    }
}
