//! Error types: [`FhirError`] for failures that stop an operation, [`LineProblem`] for one
//! bad NDJSON line that a caller reports and skips.

use std::fmt;
use std::path::PathBuf;

/// A failure that stops the current file or operation.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// An I/O error, always with the path it happened on. The I/O error is part of the
    /// message rather than a `source`, so that a report chain does not print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A line that a caller chose to treat as fatal.
    #[error("{}:{line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: u64,
        problem: LineProblem,
    },
    /// JSON that could not be serialised (should not happen for values we built).
    #[error("could not serialise JSON: {0}")]
    Serialize(String),
}

impl FhirError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FhirError::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// Why one NDJSON line is not a usable FHIR resource. Reported as `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// Not valid JSON; the parser's message.
    InvalidJson(String),
    /// Valid JSON but not an object.
    NotAnObject,
    /// An object without a string `resourceType`.
    NoResourceType,
    /// A resource without a non-empty string `id`.
    NoId { resource_type: String },
    /// The line is longer than the configured limit; its length so far is given.
    TooLong { limit: usize },
    /// The line's `resourceType` is not the one the file should hold.
    UnexpectedType { expected: String, found: String },
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::InvalidJson(msg) => write!(f, "invalid JSON: {msg}"),
            LineProblem::NotAnObject => f.write_str("not a JSON object"),
            LineProblem::NoResourceType => f.write_str("no resourceType"),
            LineProblem::NoId { resource_type } => write!(f, "{resource_type} has no id"),
            LineProblem::TooLong { limit } => {
                write!(f, "line longer than the limit of {limit} bytes")
            }
            LineProblem::UnexpectedType { expected, found } => {
                write!(f, "expected a {expected} but found a {found}")
            }
        }
    }
}

impl std::error::Error for LineProblem {}
