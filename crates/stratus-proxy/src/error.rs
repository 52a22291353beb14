//! Why the proxy could not start, and the errors it answers to clients: FHIR
//! OperationOutcomes on `/fhir`, OAuth JSON on `/auth`.

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why `stratus proxy` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    State {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the saved clients cannot be restored: {message}", path.display())]
    SavedClients { path: PathBuf, message: String },
    #[error("cannot set up the HTTP client for the upstream: {0}")]
    Client(String),
    #[error("proxy error: {0}")]
    Runtime(std::io::Error),
}

/// A FHIR error answer: an OperationOutcome with one issue, plus the headers some
/// statuses need.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: StatusCode,
    /// FHIR IssueType code (`security`, `forbidden`, `not-found`, `transient`...): clients
    /// branch on it, so it is never just the HTTP status again.
    pub code: &'static str,
    pub message: String,
    /// `WWW-Authenticate`, for 401 and 403 answers to bearer requests.
    pub authenticate: Option<String>,
}

impl Outcome {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            status,
            code,
            message: message.into(),
            authenticate: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Outcome::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Outcome::new(StatusCode::NOT_FOUND, "not-found", message)
    }

    pub fn too_long(limit: usize) -> Self {
        Outcome::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-long",
            format!("the request body is over {limit} bytes"),
        )
    }
}

impl IntoResponse for Outcome {
    fn into_response(self) -> Response {
        let body = json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.code, "diagnostics": self.message}]
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        );
        if let Some(a) = self
            .authenticate
            .and_then(|a| HeaderValue::from_str(&a).ok())
        {
            h.insert(header::WWW_AUTHENTICATE, a);
        }
        resp
    }
}

pub use stratus_service::answer::{no_store_json, oauth_error, oauth_refusal};
