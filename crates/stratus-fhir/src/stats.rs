//! Counting a folder of NDJSON the way the downstream tools will read it: per resource type,
//! with every unusable line reported as `file:line: reason` and the reading carrying on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rayon::prelude::*;

use crate::error::{FhirError, LineProblem};
use crate::reader::{Line, NdjsonReader, ReaderOptions};
use crate::resource::Resource;
use crate::scan::{self, NdjsonFile};

/// Totals for one resource type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStats {
    pub files: u64,
    pub resources: u64,
    /// Uncompressed bytes of the lines counted, newlines included.
    pub bytes: u64,
    /// Bytes on disk of the files holding this type.
    pub disk_bytes: u64,
}

/// One line that downstream tools would skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub path: PathBuf,
    pub line: u64,
    pub problem: LineProblem,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.problem)
    }
}

/// What [`collect`] found.
#[derive(Debug, Clone, Default)]
pub struct FolderStats {
    /// Resources by type. A line whose type differs from its file's is a bad line, as it is
    /// for cumulus-etl, which skips it.
    pub by_type: BTreeMap<String, TypeStats>,
    pub bad_lines: u64,
    /// NDJSON files whose type neither name nor content tells (`log.ndjson`, empty files);
    /// the Cumulus tools ignore them too.
    pub untyped_files: Vec<PathBuf>,
    /// Files that could not be read to the end (I/O error, corrupt gzip), with the reason.
    pub unreadable_files: Vec<(PathBuf, String)>,
}

impl FolderStats {
    /// All resources of all types.
    pub fn total_resources(&self) -> u64 {
        self.by_type.values().map(|t| t.resources).sum()
    }

    /// True if every line of every typed file was a usable resource.
    pub fn is_clean(&self) -> bool {
        self.bad_lines == 0 && self.unreadable_files.is_empty()
    }
}

/// Scans `root` and reads every NDJSON file, in parallel across files. `on_bad_line` hears
/// each bad line as it is found (in line order within a file); `disk_bytes` grows as files
/// are read, for progress.
pub fn collect(
    root: &Path,
    options: ReaderOptions,
    disk_bytes: Arc<AtomicU64>,
    on_bad_line: &(dyn Fn(&BadLine) + Sync),
) -> Result<FolderStats, FhirError> {
    let files = scan::scan(root, options)?;
    collect_files(&files, options, disk_bytes, on_bad_line)
}

/// [`collect`] over files already scanned (so a caller can size a progress bar first).
pub fn collect_files(
    files: &[NdjsonFile],
    options: ReaderOptions,
    disk_bytes: Arc<AtomicU64>,
    on_bad_line: &(dyn Fn(&BadLine) + Sync),
) -> Result<FolderStats, FhirError> {
    let per_file: Vec<FileOutcome> = files
        .par_iter()
        .map(|f| read_file(f, options, disk_bytes.clone(), on_bad_line))
        .collect();
    let mut out = FolderStats::default();
    for (file, outcome) in files.iter().zip(per_file) {
        let Some(t) = &file.resource_type else {
            out.untyped_files.push(file.path.clone());
            continue;
        };
        out.bad_lines += outcome.bad_lines;
        if let Some(err) = outcome.error {
            out.unreadable_files.push((file.path.clone(), err));
        }
        let entry = out.by_type.entry(t.clone()).or_default();
        entry.files += 1;
        entry.resources += outcome.resources;
        entry.bytes += outcome.bytes;
        entry.disk_bytes += file.disk_bytes;
    }
    Ok(out)
}

#[derive(Default)]
struct FileOutcome {
    resources: u64,
    bytes: u64,
    bad_lines: u64,
    error: Option<String>,
}

fn read_file(
    file: &NdjsonFile,
    options: ReaderOptions,
    disk_bytes: Arc<AtomicU64>,
    on_bad_line: &(dyn Fn(&BadLine) + Sync),
) -> FileOutcome {
    let mut outcome = FileOutcome::default();
    let Some(expected) = file.resource_type.as_deref() else {
        return outcome;
    };
    let mut reader = match NdjsonReader::open_counted(&file.path, options, disk_bytes) {
        Ok(r) => r,
        Err(e) => {
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let bad = |line: u64, problem: LineProblem, outcome: &mut FileOutcome| {
        outcome.bad_lines += 1;
        on_bad_line(&BadLine {
            path: file.path.clone(),
            line,
            problem,
        });
    };
    loop {
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                outcome.error = Some(e.to_string());
                break;
            }
        };
        match line {
            Line::TooLong { number } => bad(
                number,
                LineProblem::TooLong {
                    limit: options.max_line_bytes,
                },
                &mut outcome,
            ),
            Line::Data { number, bytes } => {
                let len = bytes.len() as u64 + 1;
                match Resource::parse(bytes) {
                    Ok(r) if r.resource_type() == expected => {
                        outcome.resources += 1;
                        outcome.bytes += len;
                    }
                    Ok(r) => {
                        let found = r.resource_type().to_owned();
                        bad(
                            number,
                            LineProblem::UnexpectedType {
                                expected: expected.to_owned(),
                                found,
                            },
                            &mut outcome,
                        );
                    }
                    Err(problem) => bad(number, problem, &mut outcome),
                }
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn counts_and_reports_without_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("Patient.ndjson"),
            concat!(
                "{\"resourceType\":\"Patient\",\"id\":\"a\"}\n",
                "not json\n",
                "{\"resourceType\":\"Patient\"}\n",
                "{\"resourceType\":\"Condition\",\"id\":\"c\"}\n",
                "\n",
                "{\"resourceType\":\"Patient\",\"id\":\"b\"}\n",
            ),
        )
        .unwrap();
        let bad = Mutex::new(Vec::new());
        let stats = collect(
            d,
            ReaderOptions::default(),
            Arc::new(AtomicU64::new(0)),
            &|b: &BadLine| bad.lock().unwrap().push(b.to_string()),
        )
        .unwrap();
        assert_eq!(stats.by_type["Patient"].resources, 2);
        assert_eq!(stats.by_type["Patient"].files, 1);
        assert_eq!(stats.bad_lines, 3);
        let bad = bad.into_inner().unwrap();
        let names: Vec<String> = bad
            .iter()
            .map(|l| l.rsplit('/').next().unwrap().to_owned())
            .collect();
        assert!(
            names[0].starts_with("Patient.ndjson:2: invalid JSON"),
            "{names:?}"
        );
        assert_eq!(names[1], "Patient.ndjson:3: Patient has no id");
        assert_eq!(
            names[2],
            "Patient.ndjson:4: expected a Patient but found a Condition"
        );
    }
}
