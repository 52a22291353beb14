//! An import job as it is kept on disk (`jobs/{id}/state.json`), so that a restarted
//! consumer knows every job and resumes the running ones, and the OperationOutcome file
//! it answers with at the end.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stratus_bulk::ExportSpec;

use crate::ImportError;
use crate::params::ExportType;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Pulling from the provider.
    Running,
    /// Everything downloaded and the outcome written; moving the files to the store. A
    /// restart in this state finishes the move instead of pulling again.
    Delivering,
    Complete,
    Failed,
}

/// One job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobState {
    pub id: String,
    /// The registered client that kicked it off: the only one that may see or cancel it.
    pub client_id: String,
    /// When the import was initiated: the import manifest's `transactionTime`.
    pub created_ms: i64,
    pub export_url: String,
    pub export_type: ExportType,
    /// The registered provider base the pull goes to.
    pub provider_base: String,
    pub spec: ExportSpec,
    pub status: Status,
    pub completed_ms: Option<i64>,
    /// Why the job failed.
    pub error: Option<String>,
    /// Lines of the outcome file.
    pub outcomes: u64,
    pub resources: u64,
    pub files: u64,
    /// The provider's export `transactionTime`, for a later `_since`.
    pub export_transaction_time: Option<String>,
    /// Kick-off parameters ignored under `Prefer: handling=lenient`.
    pub ignored: Vec<String>,
}

impl JobState {
    pub fn dir(state_dir: &Path, id: &str) -> PathBuf {
        state_dir.join("jobs").join(id)
    }

    /// Where the pull downloads to (the bulk client's own resumable folder).
    pub fn data_dir(state_dir: &Path, id: &str) -> PathBuf {
        Self::dir(state_dir, id).join("data")
    }

    pub fn outcome_path(state_dir: &Path, id: &str) -> PathBuf {
        Self::dir(state_dir, id).join("outcome.ndjson")
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), ImportError> {
        let dir = Self::dir(state_dir, &self.id);
        std::fs::create_dir_all(&dir).map_err(|e| ImportError::io(&dir, e))?;
        let text =
            serde_json::to_vec_pretty(self).map_err(|e| ImportError::State(e.to_string()))?;
        crate::write_atomic(&dir.join("state.json"), &text)
    }

    /// Every job in the state folder. A folder without a readable state is skipped with a
    /// warning: it is what a crash between `mkdir` and the first save leaves.
    pub fn load_all(state_dir: &Path) -> Result<Vec<JobState>, ImportError> {
        let jobs = state_dir.join("jobs");
        let entries = match std::fs::read_dir(&jobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ImportError::io(&jobs, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("state.json");
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<JobState>(&b).map_err(|e| e.to_string()))
            {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!("{}: skipped: {e}", path.display()),
            }
        }
        out.sort_by_key(|j| j.created_ms);
        Ok(out)
    }
}

/// One OperationOutcome line of the outcome file.
pub fn outcome(severity: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": text}],
    })
}

/// Writes the outcome file (temp file, then rename) and returns its line count.
pub fn write_outcomes(path: &Path, lines: &[Value]) -> Result<u64, ImportError> {
    let mut text = Vec::new();
    for l in lines {
        text.extend_from_slice(l.to_string().as_bytes());
        text.push(b'\n');
    }
    crate::write_atomic(path, &text)?;
    Ok(lines.len() as u64)
}
