//! Synthetic populations (placeholder: being written).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stratus_fhir::Compression;

use crate::SynthError;

/// What to generate.
#[derive(Debug, Clone)]
pub struct PopulationConfig {
    pub patients: u64,
    pub seed: u64,
    pub compression: Compression,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Resources per type.
    pub counts: BTreeMap<String, u64>,
    /// Files written, sorted.
    pub files: Vec<PathBuf>,
    /// Uncompressed bytes written.
    pub bytes: u64,
}

/// Writes one `Type.ndjson[.gz]` per resource type into `out`.
pub fn generate(
    _config: &PopulationConfig,
    _out: &Path,
    _progress: &(dyn Fn(u64) + Sync),
) -> Result<Summary, SynthError> {
    Err(SynthError::Invalid("not yet".into()))
}
