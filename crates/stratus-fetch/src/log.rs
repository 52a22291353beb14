//! A crawl has no bulk export to log, yet cumulus-etl wants `log.ndjson` for the group name
//! (from the kickoff's `exportUrl`) and the transaction time (from `status_complete`). So a
//! crawl writes the same stand-in log smart-fetch writes: export id `fake-log`, a
//! `Group/{name}/$export` URL, the earliest `done` time, and zero counts.

use std::path::Path;

use serde_json::json;
use stratus_bulk::events::EventLog;

use crate::FetchError;
use crate::server::ServerInfo;

/// Appends the stand-in events to `dir/log.ndjson`.
pub fn write_fake(
    dir: &Path,
    fhir_url: &str,
    group_name: &str,
    transaction_time: &str,
    info: &ServerInfo,
) -> Result<(), FetchError> {
    let log = EventLog::open(Some(dir)).map_err(|e| FetchError::io(dir.join("log.ndjson"), e))?;
    log.set_export_id("fake-log");
    log.event(
        "kickoff",
        json!({
            "exportUrl": format!("{}/Group/{group_name}/$export", fhir_url.trim_end_matches('/')),
            "softwareName": info.field("/software/name"),
            "softwareVersion": info.field("/software/version"),
            "softwareReleaseDate": info.field("/software/releaseDate"),
            "fhirVersion": info.field("/fhirVersion"),
            "requestParameters": {},
            "errorCode": null,
            "errorBody": null,
            "responseHeaders": {},
        }),
    );
    log.event(
        "status_complete",
        json!({"transactionTime": transaction_time}),
    );
    log.event(
        "status_page_complete",
        json!({
            "transactionTime": transaction_time,
            "outputFileCount": 0,
            "deletedFileCount": 0,
            "errorFileCount": 0,
        }),
    );
    log.event(
        "manifest_complete",
        json!({
            "transactionTime": transaction_time,
            "totalOutputFileCount": 0,
            "totalDeletedFileCount": 0,
            "totalErrorFileCount": 0,
            "totalManifests": 1,
        }),
    );
    log.event(
        "export_complete",
        json!({"files": 0, "resources": 0, "bytes": 0, "attachments": null, "duration": 0}),
    );
    Ok(())
}

/// The group name of a crawl's log: the nickname, else the group, else the id file's
/// stem, else the output folder's name.
pub fn group_name(
    group_nickname: Option<&str>,
    group: Option<&str>,
    id_file: Option<&Path>,
    out: &Path,
) -> String {
    let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
    group_nickname
        .map(str::to_owned)
        .or_else(|| group.map(str::to_owned))
        .or_else(|| id_file.and_then(stem))
        .or_else(|| {
            std::path::absolute(out)
                .ok()
                .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "crawl".to_owned())
}
