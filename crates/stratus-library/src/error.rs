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
    /// The query engine parked for good (see `crate::stall`); a table's query that does
    /// is started over once before this is the answer.
    #[error(
        "table {table}: no progress for {seconds} s (the SQL engine used no CPU), a known \
         DataFusion deadlock under a memory limit (apache/datafusion#24883); build again, \
         with a larger --memory-limit if it recurs"
    )]
    Stalled { table: String, seconds: u64 },
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

    /// A TOML file that does not parse or does not fit its format, as one line: where,
    /// then what (the toml crate's own message spans several lines with a source excerpt).
    pub fn toml(path: impl Into<PathBuf>, text: &str, e: &toml::de::Error) -> LibraryError {
        let at = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            }
            None => String::new(),
        };
        LibraryError::Manifest {
            path: path.into(),
            message: format!("{at}{}", e.message().trim_end()),
        }
    }

    pub fn table(table: &str, e: impl std::fmt::Display) -> LibraryError {
        LibraryError::Table {
            table: table.to_owned(),
            message: e.to_string(),
        }
    }
}
