use std::path::PathBuf;

/// What can go wrong building or exporting a study. Each names the study, table, file or
/// statement at fault, so the one-line message is enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("table {table}: {message}")]
    Table { table: String, message: String },
    #[error("{study}/{file}: {message}")]
    Statement {
        study: String,
        file: String,
        message: String,
    },
}

impl LibraryError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LibraryError {
        LibraryError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn table(table: &str, e: impl std::fmt::Display) -> LibraryError {
        LibraryError::Table {
            table: table.to_owned(),
            message: e.to_string(),
        }
    }
}
