//! `log.ndjson` in the bulk-data-client "Bulk Data Export Log Items" format, which
//! cumulus-etl reads for the group name (from the kickoff's `exportUrl`) and the
//! transaction time (from `status_complete`). Appended to, one flushed line per event, so a
//! resumed export adds to the same log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

pub struct EventLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
    export_id: Mutex<String>,
    started: Instant,
}

impl EventLog {
    /// Opens (appending) `log.ndjson` in `dir`; `None` as `dir` logs nowhere.
    pub fn open(dir: Option<&Path>) -> std::io::Result<EventLog> {
        let (path, file) = match dir {
            Some(d) => {
                let p = d.join("log.ndjson");
                let f = OpenOptions::new().create(true).append(true).open(&p)?;
                (p, Some(f))
            }
            None => (PathBuf::new(), None),
        };
        Ok(EventLog {
            path,
            file: Mutex::new(file),
            export_id: Mutex::new(String::new()),
            started: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The export id: the status URL, as cumulus-etl uses.
    pub fn set_export_id(&self, id: &str) {
        *self.export_id.lock().unwrap_or_else(|p| p.into_inner()) = id.to_owned();
    }

    pub fn elapsed_ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }

    pub fn event(&self, event_id: &str, detail: Value) {
        let mut line = json!({
            "exportId": *self.export_id.lock().unwrap_or_else(|p| p.into_inner()),
            "timestamp": stratus_fhir::date::format_instant(stratus_fhir::date::now_ms()),
            "eventId": event_id,
            "eventDetail": detail,
        });
        if event_id == "kickoff" {
            line["_client"] = json!("stratus");
            line["_clientVersion"] = json!(env!("CARGO_PKG_VERSION"));
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = guard.as_mut() {
            let mut text = line.to_string();
            text.push('\n');
            if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.flush()) {
                tracing::warn!("{}: cannot write the event log: {e}", self.path.display());
            }
        }
    }
}
