//! Errors of the synth crate.

use std::path::PathBuf;

/// A failure that stops a synth run.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Reading or writing NDJSON failed.
    #[error(transparent)]
    Fhir(#[from] stratus_fhir::FhirError),
    /// The output folder could not be prepared.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The request makes no sense (zero patients, zero copies, input folder with no data).
    #[error("{0}")]
    Invalid(String),
}
