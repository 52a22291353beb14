//! The ETL behind `stratus etl`: read an export folder, de-identify every resource, and write
//! cumulus-etl's tables (same names, rows, completion tables and job files), batch by batch,
//! in parallel, in bounded memory.

/// Errors of this crate.
pub mod error;
/// Input: the files of each type, the export log, deleted ids.
pub mod input;
/// The pipeline: tasks run in order, batches scrubbed in parallel and written.
pub mod pipeline;
/// The tasks and their order.
pub mod tasks;
/// Python's `isoformat()` spellings, which the completion tables store.
pub mod time;

pub use error::EtlError;

/// The table sinks live in `stratus-lake`.
pub use stratus_lake::{NdjsonSink, Sink};
