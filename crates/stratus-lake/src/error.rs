use std::path::PathBuf;

/// What a sink can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fhir(#[from] stratus_fhir::FhirError),
    #[error("{table}: {message}")]
    Table { table: String, message: String },
    #[error("{0}")]
    Usage(String),
}

impl LakeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LakeError {
        LakeError::Io {
            path: path.into(),
            source,
        }
    }
}
