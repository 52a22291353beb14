//! The `.metadata` JSON files: one of kind `managed` at the top of a managed folder (which
//! server and group it belongs to) and one of kind `output` in each work folder (what was
//! asked for and what is done). Same keys as smart-fetch, so either tool can resume the
//! other's folders; keys we do not know are kept as they are.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_fhir::writer::AtomicFile;

use crate::FetchError;

/// The version written into `.metadata`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const FILE: &str = ".metadata";

/// The top-level `.metadata` of a managed folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Managed {
    pub kind: String,
    #[serde(rename = "fhir-url", default, skip_serializing_if = "Option::is_none")]
    pub fhir_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `.metadata` of a work folder (kind `output`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Output {
    pub kind: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    /// Exported types and their filters (sorted), since parameters left out.
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(rename = "sinceMode", default, skip_serializing_if = "Option::is_none")]
    pub since_mode: Option<String>,
    #[serde(
        rename = "sinceResources",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub since_resources: Option<Vec<String>>,
    /// Finished types and their transaction times.
    #[serde(default)]
    pub done: BTreeMap<String, String>,
    #[serde(
        rename = "newPatients",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub new_patients: Option<Vec<String>>,
    #[serde(
        rename = "bulk-status",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub bulk_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Output {
    /// Filters of `t`, or `None` if `t` was not exported here.
    pub fn filters_of(&self, t: &str) -> Option<&[String]> {
        self.filters.get(t).map(Vec::as_slice)
    }

    /// True if `t` was exported here in full: no since filter on it.
    pub fn full_for(&self, t: &str) -> bool {
        self.filters.contains_key(t)
            && !self
                .since_resources
                .as_ref()
                .is_some_and(|s| s.iter().any(|x| x == t))
    }

    pub fn is_complete(&self) -> bool {
        self.complete == Some(true)
    }
}

/// Reads a `.metadata` file; `None` if there is none.
pub fn read<T: for<'de> Deserialize<'de>>(dir: &Path) -> Result<Option<T>, FetchError> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FetchError::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| FetchError::Metadata {
            path,
            message: format!("not a .metadata file: {e}"),
        })
}

/// Writes a `.metadata` file atomically (temp file, fsync, rename), indented.
pub fn write<T: Serialize>(dir: &Path, value: &T) -> Result<PathBuf, FetchError> {
    let path = dir.join(FILE);
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| FetchError::Metadata {
        path: path.clone(),
        message: e.to_string(),
    })?;
    text.push(b'\n');
    let mut f = AtomicFile::create(&path)?;
    f.write_all(&text).map_err(|e| FetchError::io(&path, e))?;
    Ok(f.commit()?)
}

/// Now, as the timestamps of `.metadata` and `done` are written.
pub fn now() -> String {
    stratus_fhir::date::format_instant(stratus_fhir::date::now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            r#"{"kind":"output","filters":{"Patient":[]},"since":null,"done":{"Patient":"2026-01-01T00:00:00+00:00"},"bulk-status":"http://x/status","future":1}"#,
        )
        .unwrap();
        let m: Output = read(dir.path()).unwrap().unwrap();
        assert_eq!(m.bulk_status.as_deref(), Some("http://x/status"));
        assert!(m.full_for("Patient"));
        write(dir.path(), &m).unwrap();
        let back: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(FILE)).unwrap()).unwrap();
        assert_eq!(back["future"], 1);
        assert_eq!(back["done"]["Patient"], "2026-01-01T00:00:00+00:00");
    }
}
