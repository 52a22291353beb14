//! Table sinks: where the ETL's batches become tables. NDJSON in cumulus-etl's layout, and
//! (feature `delta`, on by default) Delta Lake on a local path or `s3://`, with the wide R4
//! Arrow schema, upserts guarded by `meta.lastUpdated`, deletes and optimize.

/// The Delta Lake sink: create, upsert by key, delete, optimize.
#[cfg(feature = "delta")]
pub mod delta;
/// Errors of this crate.
pub mod error;
/// Parquet files in the ndjson layout.
#[cfg(feature = "delta")]
pub mod parquet;
/// The wide Arrow schema of a FHIR resource type, from the R4 element table.
#[cfg(feature = "delta")]
pub mod schema;
/// The `Sink` trait and the NDJSON sink.
pub mod sink;

#[cfg(feature = "delta")]
pub use delta::DeltaSink;
pub use error::LakeError;
#[cfg(feature = "delta")]
pub use parquet::ParquetSink;
pub use sink::{NdjsonSink, Sink};

/// The Delta Lake crate this sink is built on, for readers (tests, tools) that need the same
/// version.
#[cfg(feature = "delta")]
pub use deltalake;
