//! Studies over the tables `stratus etl` writes, as cumulus-library builds them: a study is
//! a folder with a `manifest.toml`, SQL files and counts workflows; `core` and `discovery`
//! ship built in. SQL runs on embedded DataFusion over the lake (Delta Lake, local or
//! `s3://`, or the ETL's ndjson and Parquet layouts) and the study's tables are stored
//! beside the input; only aggregate tables can be exported.

/// Running a study's stages: statements, counts, the tables they make.
pub mod build;
/// Code-source tables (discovery): which codes each coded field holds, declared per field.
pub mod code_sources;
/// Code tables (`_dn_`): one row per coding of a field, declared rather than written out.
pub mod codes;
/// Fitting a table's rows to the schema a study reads, so a missing field is NULL.
pub mod conform;
/// The CUBE tables of a counts workflow, with small-cell suppression.
pub mod counts;
/// The distinct counts of a count cube, computed from integer-coded rows.
pub mod cube;
/// Errors of this crate.
pub mod error;
/// Aggregate tables out as CSV and Parquet, and the zip that may leave the site.
pub mod export;
/// Hash joins where one side is known to be small, in a session that sorts and merges.
pub mod joins;
/// The lake: which tables it holds, reading them into DataFusion, storing results.
pub mod lake;
/// SQL functions on a row's own lists (codings, references, their combinations): flat
/// tables in one pass instead of joins back by id.
pub mod lists;
/// A self-contained HTML page of a study's counts, with charts.
pub mod report;
/// A guard for a query that stops making progress (the engine's known deadlock).
pub mod stall;
/// Study manifests, built-in and from folders.
pub mod study;
/// SQL functions with the Athena semantics the studies expect (FHIR dates, ages).
pub mod udf;
/// A minimal zip writer (deflate) for the export archive.
mod zip;

pub use build::{BuildOptions, BuildSummary, build, clean};
pub use error::LibraryError;
pub use export::{ExportSummary, export};
pub use lake::Lake;
pub use report::{ReportSummary, report};
pub use study::Study;
