use std::path::PathBuf;

/// What can stop an export, a crawl or a hydration.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fhir(#[from] stratus_fhir::FhirError),
    #[error(transparent)]
    Http(#[from] stratus_http::HttpError),
    #[error(transparent)]
    Bulk(#[from] stratus_bulk::BulkError),
    #[error("{path}: {message}")]
    Metadata { path: PathBuf, message: String },
    /// Bad options or a folder that does not fit them; the message says what to do.
    #[error("{0}")]
    Usage(String),
    /// An id file that cannot be read as one.
    #[error("{path}:{line}: {message}")]
    Input {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("interrupted; finished work is kept, run the same command again to continue")]
    Interrupted,
}

impl FetchError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> FetchError {
        FetchError::Io {
            path: path.into(),
            source,
        }
    }
}
