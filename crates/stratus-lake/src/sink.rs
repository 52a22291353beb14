//! Where ETL batches go. A sink gets each table's batches (rows already de-identified and
//! deduplicated), deletions, and a call when a table is finished.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use stratus_fhir::writer::AtomicFile;

use crate::LakeError;

/// `Send` so that a task can write one batch while it scrubs the next.
pub trait Sink: Send {
    /// Writes one batch of JSON rows (one per line, no newline) to `table`.
    fn write_batch(&mut self, table: &str, rows: Vec<Vec<u8>>) -> Result<(), LakeError>;
    /// Makes sure `table` exists even when no row came.
    fn touch(&mut self, table: &str) -> Result<(), LakeError>;
    /// Removes rows by (fake) id.
    fn delete(&mut self, table: &str, ids: &[String]) -> Result<(), LakeError>;
    /// Called once a task is done with a table (Delta: optimize).
    fn finish_table(&mut self, _table: &str) -> Result<(), LakeError> {
        Ok(())
    }
    /// Writes a small file (job config, summaries) at `rel` under the output root, which
    /// may be a folder or an object store.
    fn put_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LakeError>;
    /// Reads such a file; `None` if there is none.
    fn get_file(&mut self, rel: &str) -> Result<Option<Vec<u8>>, LakeError>;
    /// The names directly under `rel` (folders or files).
    fn list(&mut self, rel: &str) -> Result<Vec<String>, LakeError>;
    /// How many batch files `table` has (file sinks; `None` where batches are not files).
    fn batches(&mut self, _table: &str) -> Option<usize> {
        None
    }
    /// Removes the batch files of `table` from index `keep` on: what an interrupted task
    /// wrote after the last finished one. Upserting sinks have nothing to undo.
    fn rollback(&mut self, _table: &str, _keep: usize) -> Result<(), LakeError> {
        Ok(())
    }
}

/// Deletes `<table>.NNN.<ext>` files with NNN ≥ `keep`.
pub fn remove_batches_from(
    root: &Path,
    table: &str,
    ext: &str,
    keep: usize,
) -> Result<(), LakeError> {
    let dir = root.join(table);
    let prefix = format!("{table}.");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let n = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(ext))
            .and_then(|r| r.strip_suffix('.'))
            .and_then(|r| r.parse::<usize>().ok());
        if n.is_some_and(|n| n >= keep) {
            std::fs::remove_file(e.path()).map_err(|err| LakeError::io(e.path(), err))?;
        }
    }
    Ok(())
}

/// The file operations of a sink whose output root is a local folder.
pub mod local {
    use super::*;

    pub fn put_file(root: &Path, rel: &str, bytes: &[u8]) -> Result<(), LakeError> {
        let path = root.join(rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| LakeError::io(d, e))?;
        }
        let mut f = AtomicFile::create(&path)?;
        f.write_all(bytes).map_err(|e| LakeError::io(&path, e))?;
        f.commit()?;
        Ok(())
    }

    pub fn get_file(root: &Path, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let path = root.join(rel);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LakeError::io(path, e)),
        }
    }

    pub fn list(root: &Path, rel: &str) -> Result<Vec<String>, LakeError> {
        let mut out: Vec<String> = std::fs::read_dir(root.join(rel))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// cumulus-etl's NDJSON layout: `OUTPUT/<table>/<table>.NNN.ndjson`, one file per batch;
/// deletions recorded in `<table>/<table>.meta`.
pub struct NdjsonSink {
    root: PathBuf,
    next: HashMap<String, usize>,
}

impl NdjsonSink {
    pub fn new(root: &Path) -> NdjsonSink {
        NdjsonSink {
            root: root.to_path_buf(),
            next: HashMap::new(),
        }
    }

    fn next_index(&mut self, table: &str) -> usize {
        if let Some(n) = self.next.get(table) {
            return *n;
        }
        let n = next_batch_index(&self.root, table, "ndjson");
        self.next.insert(table.to_owned(), n);
        n
    }
}

/// One past the highest `NNN` of the `<table>.NNN.<ext>` files under `root/<table>`.
pub fn next_batch_index(root: &Path, table: &str, ext: &str) -> usize {
    let prefix = format!("{table}.");
    std::fs::read_dir(root.join(table))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&prefix)?
                .strip_suffix(ext)?
                .strip_suffix('.')?
                .parse::<usize>()
                .ok()
        })
        .map(|n| n + 1)
        .max()
        .unwrap_or(0)
}

impl Sink for NdjsonSink {
    fn write_batch(&mut self, table: &str, rows: Vec<Vec<u8>>) -> Result<(), LakeError> {
        let n = self.next_index(table);
        let dir = self.root.join(table);
        std::fs::create_dir_all(&dir).map_err(|e| LakeError::io(&dir, e))?;
        let path = dir.join(format!("{table}.{n:03}.ndjson"));
        let mut f = AtomicFile::create(&path)?;
        for r in &rows {
            f.write_all(r)
                .and_then(|()| f.write_all(b"\n"))
                .map_err(|e| LakeError::io(&path, e))?;
        }
        f.commit()?;
        self.next.insert(table.to_owned(), n + 1);
        Ok(())
    }

    fn touch(&mut self, table: &str) -> Result<(), LakeError> {
        if self.next_index(table) == 0 {
            self.write_batch(table, Vec::new())?;
        }
        Ok(())
    }

    fn delete(&mut self, table: &str, ids: &[String]) -> Result<(), LakeError> {
        if ids.is_empty() {
            return Ok(());
        }
        let path = self.root.join(table).join(format!("{table}.meta"));
        let mut all: BTreeSet<String> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("deleted").cloned())
            .and_then(|d| serde_json::from_value(d).ok())
            .unwrap_or_default();
        all.extend(ids.iter().cloned());
        let text = serde_json::to_string_pretty(&serde_json::json!({"deleted": all}))
            .map_err(|e| LakeError::Usage(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LakeError::io(dir, e))?;
        }
        let mut f = AtomicFile::create(&path)?;
        f.write_all(text.as_bytes())
            .map_err(|e| LakeError::io(&path, e))?;
        f.commit()?;
        Ok(())
    }

    fn put_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LakeError> {
        local::put_file(&self.root, rel, bytes)
    }

    fn batches(&mut self, table: &str) -> Option<usize> {
        Some(self.next_index(table))
    }

    fn rollback(&mut self, table: &str, keep: usize) -> Result<(), LakeError> {
        remove_batches_from(&self.root, table, "ndjson", keep)?;
        self.next.insert(table.to_owned(), keep);
        Ok(())
    }

    fn get_file(&mut self, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        local::get_file(&self.root, rel)
    }

    fn list(&mut self, rel: &str) -> Result<Vec<String>, LakeError> {
        local::list(&self.root, rel)
    }
}
