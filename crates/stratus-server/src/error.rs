//! Errors: loading the data, starting the server, and the FHIR errors answered to clients.

use std::path::{Path, PathBuf};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why the data folder could not be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Fhir(#[from] stratus_fhir::FhirError),
    #[error("{0}: no FHIR NDJSON files found (looked for *.ndjson, *.ndjson.gz, *.jsonl)")]
    NoData(PathBuf),
    #[error("{}:{line}: {reason}", path.display())]
    BadLine {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("'{0}' is not a valid FHIR id for a Group (letters, digits, '-' and '.', up to 64)")]
    BadGroupId(String),
    #[error("{0}")]
    Json(String),
}

impl LoadError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        LoadError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why `stratus serve` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("loading the data: {0}")]
    Load(#[from] LoadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Runtime(std::io::Error),
}

/// A FHIR error answer: an OperationOutcome with one issue, and extra headers.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// FHIR IssueType code: `invalid`, `not-found`, `security`, `transient`, ...
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` for 401s.
    pub authenticate: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            authenticate: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "exception", message)
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(format!("reading the data: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = stratus_fhir::bundle::operation_outcome("error", self.code, &self.message);
        let body = sonic_rs::to_string(&body).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        );
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if let Some(a) = self
            .authenticate
            .and_then(|a| HeaderValue::from_str(&a).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, a);
        }
        resp
    }
}
