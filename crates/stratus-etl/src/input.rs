//! What an input folder holds: the NDJSON files of each type (any layout the other tools
//! write: bulk, crawl, managed folders), the ids in its `deleted/` Bundles, and the export
//! group and time from its `log.ndjson`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::scan;

use crate::EtlError;

/// The export an input came from, as its log tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportInfo {
    pub group: Option<String>,
    pub time: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Default)]
pub struct Input {
    pub files: BTreeMap<String, Vec<PathBuf>>,
    /// Real ids to delete, by type.
    pub deleted: HashMap<String, Vec<String>>,
    pub log: ExportInfo,
}

impl Input {
    /// Scans `root`. A managed export folder (top-level `.metadata` of kind `managed`) is
    /// read at its top level only, where the links to the current files are: reading its
    /// work folders too would load superseded exports.
    pub fn open(root: &Path) -> Result<Input, EtlError> {
        if !root.exists() {
            return Err(EtlError::Usage(format!(
                "{}: the input folder does not exist",
                root.display()
            )));
        }
        let managed = std::fs::read_to_string(root.join(".metadata"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v.get("kind").and_then(Value::as_str) == Some("managed"));
        let mut input = Input::default();
        let found = if managed {
            scan::scan_top(root, ReaderOptions::default())?
        } else {
            scan::scan(root, ReaderOptions::default())?
        };
        let deleted_dir = root.join("deleted");
        for f in found {
            let Some(t) = f.resource_type else { continue };
            if t == "Bundle" && f.path.starts_with(&deleted_dir) {
                read_deleted(&f.path, &mut input.deleted)?;
                continue;
            }
            input.files.entry(t).or_default().push(f.path);
        }
        input.log = read_log(root);
        Ok(input)
    }
}

fn read_deleted(path: &Path, out: &mut HashMap<String, Vec<String>>) -> Result<(), EtlError> {
    let mut r = NdjsonReader::open(path, ReaderOptions::default())?;
    while let Some(line) = r.next_line()? {
        let Line::Data { bytes, .. } = line else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        if v.get("type").and_then(Value::as_str) != Some("transaction") {
            continue;
        }
        for e in v
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(req) = e.get("request") else {
                continue;
            };
            if req.get("method").and_then(Value::as_str) != Some("DELETE") {
                continue;
            }
            let Some(url) = req.get("url").and_then(Value::as_str) else {
                continue;
            };
            if url.matches('/').count() != 1 {
                continue;
            }
            if let Some((t, id)) = url.split_once('/') {
                out.entry(t.to_owned()).or_default().push(id.to_owned());
            }
        }
    }
    Ok(())
}

/// Group, time and URL from `log.ndjson` (or the one `log.*.ndjson`) at the input's top:
/// the last kickoff's export id, its `exportUrl`, and that export's `status_complete`.
/// Anything missing makes the whole log count as absent, as in cumulus-etl.
fn read_log(root: &Path) -> ExportInfo {
    let mut path = root.join("log.ndjson");
    if !path.exists() {
        let candidates: Vec<PathBuf> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("log.") && n.ends_with(".ndjson") && n.len() > 11
                })
            })
            .collect();
        match candidates.as_slice() {
            [one] => path = one.clone(),
            _ => return ExportInfo::default(),
        }
    }
    let Ok(text) = std::fs::read_to_string(&path) else {
        return ExportInfo::default();
    };
    let rows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let Some(id) = rows
        .iter()
        .rev()
        .find(|r| r.get("eventId").and_then(Value::as_str) == Some("kickoff"))
        .and_then(|r| r.get("exportId").cloned())
    else {
        return ExportInfo::default();
    };
    let mut info = ExportInfo::default();
    for r in rows.iter().filter(|r| r.get("exportId") == Some(&id)) {
        match r.get("eventId").and_then(Value::as_str) {
            Some("kickoff") => {
                let Some(url) = r.pointer("/eventDetail/exportUrl").and_then(Value::as_str) else {
                    return ExportInfo::default();
                };
                info.group = Some(group_of(url));
                info.url = Some(url.to_owned());
            }
            Some("status_complete") => {
                let Some(t) = r
                    .pointer("/eventDetail/transactionTime")
                    .and_then(Value::as_str)
                else {
                    return ExportInfo::default();
                };
                info.time = Some(t.to_owned());
            }
            _ => {}
        }
    }
    if info.group.is_none() || info.time.is_none() {
        return ExportInfo::default();
    }
    info
}

/// The group of an export URL: what follows `/Group/` once `/$export` and `/Patient` are
/// stripped; `""` for system and patient-level exports.
fn group_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let path = match path.find("://") {
        Some(i) => path[i + 3..].find('/').map_or("", |j| &path[i + 3 + j..]),
        None => path,
    };
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix("/$export").unwrap_or(path);
    let path = path.strip_suffix("/Patient").unwrap_or(path);
    let parts: Vec<&str> = path.splitn(3, "/Group/").collect();
    if parts.len() == 2 {
        parts[1].to_owned()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_from_urls() {
        assert_eq!(
            group_of("https://x/fhir/Group/my-group/$export?_type=Patient"),
            "my-group"
        );
        assert_eq!(group_of("https://x/fhir/$export"), "");
        assert_eq!(group_of("https://x/fhir/Patient/$export"), "");
    }

    #[test]
    fn the_last_kickoff_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("log.ndjson"),
            concat!(
                r#"{"exportId":"a","eventId":"kickoff","eventDetail":{"exportUrl":"http://x/fhir/Group/old/$export"}}"#, "\n",
                r#"{"exportId":"a","eventId":"status_complete","eventDetail":{"transactionTime":"2020-01-01T00:00:00Z"}}"#, "\n",
                r#"{"exportId":"fake-log","eventId":"kickoff","eventDetail":{"exportUrl":"http://x/fhir/Group/new/$export"}}"#, "\n",
                r#"{"exportId":"fake-log","eventId":"status_complete","eventDetail":{"transactionTime":"2024-05-01T00:00:00Z"}}"#, "\n",
            ),
        )
        .unwrap();
        let info = read_log(dir.path());
        assert_eq!(info.group.as_deref(), Some("new"));
        assert_eq!(info.time.as_deref(), Some("2024-05-01T00:00:00Z"));
    }
}
