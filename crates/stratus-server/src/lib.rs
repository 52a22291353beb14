//! `stratus serve`: a Bulk Data + FHIR REST server with SMART Backend Services and fault
//! injection, serving any folder of FHIR NDJSON.
//!
//! It is the test bed for every client in the project and a local stand-in for an EHR. The
//! data are copied once into plain NDJSON segments under a work folder and indexed
//! ([`store`]); every answer streams from those files, so memory does not grow with the data.

/// Shared state, routes, access log, fault and bearer layers.
pub mod app;
/// The token and registration endpoints.
pub mod auth;
/// What the server is told: data, network, clients, faults.
pub mod config;
/// Load, start-up and FHIR error types.
pub mod error;
/// `$export`: kick-off, jobs, status, cancel, downloads.
pub mod export;
/// Fault injection: seeded dice, rate buckets, cut and slowed downloads.
pub mod faults;
/// Read, search, Binary, CapabilityStatement, SMART discovery.
pub mod rest;
/// Search parameters and matching them against resources.
pub mod search;
/// The data on disk and its index.
pub mod store;
/// `_elements` subsetting.
pub mod subset;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthConfig, AuthServer};

pub use config::{ClientSpec, Faults, ServeConfig};
pub use error::{LoadError, ServeError};
pub use store::LoadSummary;

/// A running server. Dropping it stops the server and removes a temporary work folder.
pub struct Server {
    pub addr: SocketAddr,
    /// The FHIR base URL, e.g. `http://127.0.0.1:9444/fhir`.
    pub base_url: String,
    /// The token endpoint, when authorization is on.
    pub token_url: Option<String>,
    pub summary: LoadSummary,
    pub work_dir: PathBuf,
    service: Option<stratus_service::Service>,
    temp_work: bool,
}

impl Server {
    /// Blocks until the server stops (Ctrl-C / SIGTERM, or an error).
    pub fn wait(mut self) -> Result<(), ServeError> {
        let result = self.service.take().map_or(Ok(()), |s| s.wait());
        self.cleanup();
        result.map_err(ServeError::Runtime)
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> Result<(), ServeError> {
        let result = self.service.take().map_or(Ok(()), |s| s.stop());
        self.cleanup();
        result.map_err(ServeError::Runtime)
    }

    fn cleanup(&mut self) {
        if self.temp_work {
            let _ = std::fs::remove_dir_all(&self.work_dir);
            self.temp_work = false;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The service first: its thread still reads the work folder.
        drop(self.service.take());
        self.cleanup();
    }
}

const TEMP_PREFIX: &str = "stratus-serve-";

fn temp_work_dir() -> PathBuf {
    let temp = std::env::temp_dir();
    sweep_orphans(&temp);
    temp.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        stratus_smart::keys::random_hex(4)
    ))
}

/// Removes the temporary work folders of servers that were killed without a chance to clean
/// up (SIGKILL, a crash, a test harness's `kill`): each holds a copy of its data, and
/// hundreds of them once filled the disk of a CI machine. A folder is an orphan when the
/// process id in its name is no longer running; only Linux's `/proc` answers that cheaply,
/// so elsewhere nothing is swept.
fn sweep_orphans(temp: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !proc.join(pid.to_string()).exists() {
            tracing::debug!(folder = %entry.path().display(), "removing an orphaned work folder");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn read_jwks(path: &Path) -> Result<serde_json::Value, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|e| ServeError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| ServeError::Config(format!("{}: not a JWKS: {e}", path.display())))
}

/// Loads the data, binds the port and starts serving on a background thread. Returns once
/// the server accepts connections.
pub fn start(config: ServeConfig) -> Result<Server, ServeError> {
    config.faults.validate()?;
    let (work, temp_work) = match &config.work_dir {
        Some(w) => (w.clone(), false),
        None => (temp_work_dir(), true),
    };
    std::fs::create_dir_all(&work).map_err(|e| ServeError::Io {
        path: work.clone(),
        source: e,
    })?;
    let cleanup_on_error = |e: ServeError| {
        if temp_work {
            let _ = std::fs::remove_dir_all(&work);
        }
        e
    };
    let extras = store::Extras {
        group_files: config.groups.clone(),
        deletions_file: config.deletions.clone(),
    };
    let store =
        store::Store::load(&config.data, &work, &extras).map_err(|e| cleanup_on_error(e.into()))?;
    let summary = store.summary.clone();

    let listener = stratus_service::bind(&config.host, config.port).map_err(|e| {
        cleanup_on_error(ServeError::Bind {
            addr: format!("{}:{}", config.host, config.port),
            source: e,
        })
    })?;
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    let origin = config
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
    let base = format!("{origin}/fhir");
    let token_url = format!("{origin}/auth/token");

    let auth = if config.open {
        None
    } else {
        let mut ac = AuthConfig::new(token_url.clone());
        ac.expires_in = config.token_lifetime;
        ac.valid_for = config.faults.token_valid_secs.map(Duration::from_secs);
        let auth = AuthServer::new(ac);
        for c in &config.clients {
            let jwks = read_jwks(&c.jwks).map_err(cleanup_on_error)?;
            let scopes = match &c.scopes {
                Some(s) => Scopes::parse(s).map_err(|e| {
                    cleanup_on_error(ServeError::Config(format!("client {}: {e}", c.id)))
                })?,
                None => Scopes::all_read(),
            };
            auth.register(&c.id, &jwks, scopes).map_err(|e| {
                cleanup_on_error(ServeError::Config(format!(
                    "client {} ({}): {e}",
                    c.id,
                    c.jwks.display()
                )))
            })?;
        }
        Some(Arc::new(auth))
    };

    let open = config.open;
    let state = Arc::new(app::AppState {
        store: Arc::new(store),
        auth,
        base: base.clone(),
        origin,
        jobs: export::Jobs::default(),
        faults: faults::FaultState::new(config.faults.clone()),
        work: work.clone(),
        config,
    });
    let service = stratus_service::Service::start("stratus-serve", listener, move || {
        let sweeper_state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                sweeper_state.jobs.sweep(stratus_fhir::date::now_ms());
            }
        });
        app::router(state)
    })
    .map_err(|e| cleanup_on_error(ServeError::Runtime(e)))?;
    Ok(Server {
        addr,
        base_url: base,
        token_url: (!open).then_some(token_url),
        summary,
        work_dir: work,
        service: Some(service),
        temp_work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_folders_of_dead_servers_are_swept_and_live_ones_kept() {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let temp = tempfile::tempdir().unwrap();
        // Above Linux's largest pid_max, so never a running process.
        let dead = temp.path().join(format!("{TEMP_PREFIX}99999999-abcd"));
        let live = temp
            .path()
            .join(format!("{TEMP_PREFIX}{}-abcd", std::process::id()));
        let other = temp.path().join("stratus-serve-notapid");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("store")).unwrap();
        }
        sweep_orphans(temp.path());
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(other.exists());
    }
}
