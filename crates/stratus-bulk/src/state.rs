//! The resume state: which server job this folder belongs to and which files are done.
//! Written atomically after the kick-off and after every file, so a crash or Ctrl-C at any
//! point leaves a state that the same command picks up.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::request::ExportSpec;

pub const FILE_NAME: &str = ".stratus-bulk.json";

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FileDone {
    pub dest: String,
    pub resources: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    pub fhir_url: String,
    pub spec: ExportSpec,
    pub status_url: String,
    pub kickoff_url: String,
    /// Files downloaded and validated, by server URL.
    pub files: BTreeMap<String, FileDone>,
    /// Names already handed out, so a resumed export never reuses one.
    pub names: BTreeMap<String, u32>,
    pub complete: bool,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    pub fn load(dir: &Path) -> Result<Option<State>, String> {
        let p = Self::path(dir);
        match std::fs::read_to_string(&p) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: not a Stratus bulk state file: {e}", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", p.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let p = Self::path(dir);
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let mut f = stratus_fhir::writer::AtomicFile::create(&p).map_err(|e| e.to_string())?;
        f.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        f.commit().map_err(|e| e.to_string())?;
        Ok(())
    }
}
