//! The Bulk Data export client behind `stratus bulk`: kick-off, polling, parallel
//! validated downloads into the layout cumulus-etl and smart-fetch read, the
//! bulk-data-client `log.ndjson`, and a state file that makes any interrupted export
//! resumable by running the same command again.

/// Inlining DocumentReference and DiagnosticReport attachments.
pub mod attachments;
/// Downloading and validating one file.
pub mod download;
/// The `log.ndjson` event log.
pub mod events;
/// The export: kick-off, poll, download, manifest.
pub mod export;
/// What to export: level and kick-off parameters.
pub mod request;
/// `s3://` destinations (SigV4 PUT Object).
pub mod s3;
/// The resume state file.
pub mod state;
/// Sending finished files to an `http(s)://` or `s3://` destination.
pub mod upload;

pub use export::{BulkError, Options, Progress, Summary, run};
pub use request::{ExportSpec, Level};

/// Runs a future to completion on a fresh multi-threaded runtime: the CLI's way in, so that
/// it needs no async code of its own.
pub fn block_on<F: std::future::Future>(f: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}
