//! How a crawl keeps finished work through a crash. Results are written per type into
//! numbered chunk files under `.crawl/{Type}/`; a chunk only ever holds patients whose
//! every page arrived. A chunk is closed (fsync, rename) and only then named in the
//! journal, with the patients it completes. A rerun keeps journaled chunks, deletes any
//! other file, and skips the journaled patients; so nothing finished is fetched twice and
//! nothing is written twice. When every patient of a type is journaled, the chunks are
//! concatenated into `{Type}.ndjson.gz` (gzip members concatenate into a valid gzip file).
//! smart-fetch, by contrast, restarts an unfinished type from scratch.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stratus_fhir::writer::{AtomicFile, Compression, NdjsonWriter};

use crate::FetchError;
use crate::since::Newest;

const JOURNAL: &str = "journal.ndjson";

/// When the open chunk is closed and journaled.
#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    pub max_keys: usize,
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            max_keys: 500,
            max_age: Duration::from_secs(2),
            max_bytes: 64 << 20,
        }
    }
}

struct Open {
    number: u32,
    data: Option<NdjsonWriter>,
    errors: Option<NdjsonWriter>,
    keys: Vec<String>,
    bytes: u64,
    newest: Option<Newest>,
    opened: Instant,
}

/// The chunks and journal of one type.
pub struct ChunkStore {
    dir: PathBuf,
    compression: Compression,
    policy: CommitPolicy,
    journal: File,
    done: HashSet<String>,
    /// Committed chunks in order: number, has data, has errors.
    chunks: Vec<(u32, bool, bool)>,
    next: u32,
    newest: Option<Newest>,
    resources: u64,
    errors: u64,
    started_ms: i64,
    open: Option<Open>,
}

impl ChunkStore {
    /// Opens (or starts) the store in `dir`, dropping anything a crash left uncommitted.
    pub fn open(
        dir: &Path,
        compression: Compression,
        policy: CommitPolicy,
    ) -> Result<ChunkStore, FetchError> {
        std::fs::create_dir_all(dir).map_err(|e| FetchError::io(dir, e))?;
        let jpath = dir.join(JOURNAL);
        let mut done = HashSet::new();
        let mut chunks = Vec::new();
        let mut newest: Option<Newest> = None;
        let mut resources = 0;
        let mut errors = 0;
        let mut started_ms = None;
        let mut valid_len = 0u64;
        if let Ok(f) = File::open(&jpath) {
            let mut r = BufReader::new(f);
            let mut line = String::new();
            loop {
                line.clear();
                let n = r
                    .read_line(&mut line)
                    .map_err(|e| FetchError::io(&jpath, e))?;
                if n == 0 || !line.ends_with('\n') {
                    break; // a line torn by a crash is not a commit
                }
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    break;
                };
                valid_len += n as u64;
                if let Some(s) = v.get("started").and_then(Value::as_i64) {
                    started_ms = Some(s);
                    continue;
                }
                let Some(number) = v.get("chunk").and_then(Value::as_u64) else {
                    continue;
                };
                let has = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
                chunks.push((number as u32, has("data"), has("errors")));
                for k in v
                    .get("keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(k) = k.as_str() {
                        done.insert(k.to_owned());
                    }
                }
                resources += v.get("resources").and_then(Value::as_u64).unwrap_or(0);
                errors += v.get("errorCount").and_then(Value::as_u64).unwrap_or(0);
                if let (Some(ms), Some(text)) = (
                    v.pointer("/newest/ms").and_then(Value::as_i64),
                    v.pointer("/newest/text").and_then(Value::as_str),
                ) && newest.as_ref().is_none_or(|n| ms > n.ms)
                {
                    newest = Some(Newest {
                        ms,
                        text: text.to_owned(),
                    });
                }
            }
        }
        // Drop what is not journaled: chunk files of a commit cut short, temp files.
        let keep: HashSet<String> = chunks
            .iter()
            .flat_map(|&(n, _, _)| {
                [
                    chunk_name(n, false, compression),
                    chunk_name(n, true, compression),
                ]
            })
            .chain([JOURNAL.to_owned()])
            .collect();
        for entry in std::fs::read_dir(dir).map_err(|e| FetchError::io(dir, e))? {
            let entry = entry.map_err(|e| FetchError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jpath)
            .map_err(|e| FetchError::io(&jpath, e))?;
        journal
            .set_len(valid_len)
            .map_err(|e| FetchError::io(&jpath, e))?;
        let next = chunks.iter().map(|c| c.0 + 1).max().unwrap_or(1);
        let mut store = ChunkStore {
            dir: dir.to_path_buf(),
            compression,
            policy,
            journal,
            done,
            chunks,
            next,
            newest,
            resources,
            errors,
            started_ms: started_ms.unwrap_or_else(stratus_fhir::date::now_ms),
            open: None,
        };
        if started_ms.is_none() {
            let line = json!({"started": store.started_ms});
            store.append_journal(&line)?;
        }
        Ok(store)
    }

    /// True if `key` (a patient id or MRN) is committed.
    pub fn is_done(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    /// When the crawl of this type first started (kept across reruns).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    pub fn newest(&self) -> Option<&Newest> {
        self.newest.as_ref()
    }

    /// Resources committed, all runs.
    pub fn resources(&self) -> u64 {
        self.resources
    }

    /// Adds the complete results of one key; commits the chunk when the policy says so.
    pub fn add(
        &mut self,
        key: &str,
        lines: &[Vec<u8>],
        errors: &[Vec<u8>],
        newest: Option<Newest>,
    ) -> Result<(), FetchError> {
        if self.open.is_none() {
            self.open = Some(Open {
                number: self.next,
                data: None,
                errors: None,
                keys: Vec::new(),
                bytes: 0,
                newest: None,
                opened: Instant::now(),
            });
            self.next += 1;
        }
        let (dir, compression) = (self.dir.clone(), self.compression);
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        if !lines.is_empty() {
            if open.data.is_none() {
                open.data = Some(NdjsonWriter::create(
                    dir.join(chunk_name(open.number, false, compression)),
                    compression,
                )?);
            }
            if let Some(w) = open.data.as_mut() {
                for l in lines {
                    w.write_line(l)?;
                    open.bytes += l.len() as u64;
                }
            }
        }
        if !errors.is_empty() {
            if open.errors.is_none() {
                open.errors = Some(NdjsonWriter::create(
                    dir.join(chunk_name(open.number, true, compression)),
                    compression,
                )?);
            }
            if let Some(w) = open.errors.as_mut() {
                for l in errors {
                    w.write_line(l)?;
                }
            }
        }
        if let Some(n) = newest
            && open.newest.as_ref().is_none_or(|o| n.ms > o.ms)
        {
            open.newest = Some(n);
        }
        open.keys.push(key.to_owned());
        let due = open.keys.len() >= self.policy.max_keys
            || open.bytes >= self.policy.max_bytes
            || open.opened.elapsed() >= self.policy.max_age;
        if due {
            self.commit()?;
        }
        Ok(())
    }

    /// Commits the open chunk if it is older than the policy allows (called on idle ticks).
    pub fn commit_if_stale(&mut self) -> Result<(), FetchError> {
        if self
            .open
            .as_ref()
            .is_some_and(|o| o.opened.elapsed() >= self.policy.max_age)
        {
            self.commit()?;
        }
        Ok(())
    }

    /// Closes the open chunk and journals it.
    pub fn commit(&mut self) -> Result<(), FetchError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let has_data = open.data.is_some();
        let has_errors = open.errors.is_some();
        // The writers count their lines; a chunk without a writer had none.
        let resources = open.data.as_ref().map_or(0, NdjsonWriter::lines);
        let error_count = open.errors.as_ref().map_or(0, NdjsonWriter::lines);
        if let Some(w) = open.data {
            w.finish()?;
        }
        if let Some(w) = open.errors {
            w.finish()?;
        }
        let newest = open
            .newest
            .as_ref()
            .map(|n| json!({"ms": n.ms, "text": n.text}));
        let line = json!({
            "chunk": open.number,
            "data": has_data,
            "errors": has_errors,
            "resources": resources,
            "errorCount": error_count,
            "newest": newest,
            "keys": open.keys,
        });
        self.append_journal(&line)?;
        self.chunks.push((open.number, has_data, has_errors));
        self.done.extend(open.keys);
        self.resources += resources;
        self.errors += error_count;
        if let Some(n) = open.newest
            && self.newest.as_ref().is_none_or(|o| n.ms > o.ms)
        {
            self.newest = Some(n);
        }
        Ok(())
    }

    fn append_journal(&mut self, line: &Value) -> Result<(), FetchError> {
        let jpath = self.dir.join(JOURNAL);
        let mut text = line.to_string();
        text.push('\n');
        self.journal
            .write_all(text.as_bytes())
            .and_then(|()| self.journal.sync_data())
            .map_err(|e| FetchError::io(jpath, e))
    }

    /// Writes the committed data chunks, in order, as one file at `dest` (atomically).
    /// Returns `false`, writing nothing, when no chunk holds data.
    pub fn assemble(&mut self, dest: &Path) -> Result<bool, FetchError> {
        self.commit()?;
        let parts: Vec<PathBuf> = self
            .chunks
            .iter()
            .filter(|c| c.1)
            .map(|c| self.dir.join(chunk_name(c.0, false, self.compression)))
            .collect();
        if parts.is_empty() {
            return Ok(false);
        }
        concat(&parts, dest)?;
        Ok(true)
    }

    /// The committed error chunks, in order.
    pub fn error_chunks(&self) -> Vec<PathBuf> {
        self.chunks
            .iter()
            .filter(|c| c.2)
            .map(|c| self.dir.join(chunk_name(c.0, true, self.compression)))
            .collect()
    }

    /// Error records committed, all runs.
    pub fn error_count(&self) -> u64 {
        self.errors
    }
}

/// Byte-concatenates files (gzip members, or NDJSON ending in newlines) into `dest`.
pub fn concat(parts: &[PathBuf], dest: &Path) -> Result<(), FetchError> {
    let mut out = AtomicFile::create(dest)?;
    for p in parts {
        let mut f = File::open(p).map_err(|e| FetchError::io(p, e))?;
        std::io::copy(&mut f, &mut out).map_err(|e| FetchError::io(dest, e))?;
    }
    out.commit()?;
    Ok(())
}

/// Appends `parts` to `dest` (which may not exist yet), atomically.
pub fn append(dest: &Path, parts: &[PathBuf]) -> Result<(), FetchError> {
    let mut all = Vec::with_capacity(parts.len() + 1);
    if dest.exists() {
        all.push(dest.to_path_buf());
    }
    all.extend_from_slice(parts);
    concat(&all, dest)
}

fn chunk_name(n: u32, errors: bool, c: Compression) -> String {
    format!(
        "{n:06}{}{}",
        if errors { ".errors" } else { "" },
        c.suffix()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};

    fn lines(path: &Path) -> Vec<String> {
        let mut r = NdjsonReader::open(path, ReaderOptions::default()).unwrap();
        let mut out = Vec::new();
        while let Some(Line::Data { bytes, .. }) = r.next_line().unwrap() {
            out.push(String::from_utf8(bytes.to_vec()).unwrap());
        }
        out
    }

    #[test]
    fn only_journaled_chunks_survive_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("Condition");
        let policy = CommitPolicy {
            max_keys: 2,
            ..CommitPolicy::default()
        };
        {
            let mut s = ChunkStore::open(&d, Compression::FAST_GZIP, policy).unwrap();
            s.add("a", &[b"{\"id\":\"1\"}".to_vec()], &[], None)
                .unwrap();
            s.add("b", &[b"{\"id\":\"2\"}".to_vec()], &[], None)
                .unwrap(); // commits a, b
            s.add("c", &[b"{\"id\":\"3\"}".to_vec()], &[], None)
                .unwrap();
            // Dropped without commit: c is lost, like a kill -9.
        }
        // A torn journal line, as a crash mid-write leaves it.
        let j = d.join(JOURNAL);
        let mut f = OpenOptions::new().append(true).open(&j).unwrap();
        f.write_all(b"{\"chunk\":9,\"keys\":[\"z\"").unwrap();
        drop(f);
        let mut s = ChunkStore::open(&d, Compression::FAST_GZIP, policy).unwrap();
        assert!(s.is_done("a") && s.is_done("b"));
        assert!(!s.is_done("c") && !s.is_done("z"));
        s.add(
            "c",
            &[b"{\"id\":\"3\"}".to_vec()],
            &[b"{\"x\":1}".to_vec()],
            None,
        )
        .unwrap();
        let out = dir.path().join("Condition.ndjson.gz");
        assert!(s.assemble(&out).unwrap());
        assert_eq!(
            lines(&out),
            [r#"{"id":"1"}"#, r#"{"id":"2"}"#, r#"{"id":"3"}"#]
        );
        assert_eq!(s.error_chunks().len(), 1);
        assert_eq!(s.resources(), 3);
    }
}
