use std::path::PathBuf;

/// What stops an ETL run. Bad input lines do not: they are reported and skipped.
#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fhir(#[from] stratus_fhir::FhirError),
    #[error(transparent)]
    Deid(#[from] stratus_deid::DeidError),
    #[error(transparent)]
    Lake(#[from] stratus_lake::LakeError),
    /// Bad options or folders; the message says what to do.
    #[error("{0}")]
    Usage(String),
    /// The output belongs to another PHI folder (cumulus-etl exits 41).
    #[error("{0}")]
    WrongPhi(String),
    /// Export group or time unknown (cumulus-etl exits 34).
    #[error("{0}")]
    Completion(String),
}

impl EtlError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> EtlError {
        EtlError::Io {
            path: path.into(),
            source,
        }
    }
}
