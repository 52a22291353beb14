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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
    temp_work: bool,
}

impl Server {
    /// Blocks until the server stops (Ctrl-C / SIGTERM, or an error).
    pub fn wait(mut self) -> Result<(), ServeError> {
        self.join()
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.join()
    }

    fn join(&mut self) -> Result<(), ServeError> {
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(ServeError::Runtime(std::io::Error::other(
                    "server thread panicked",
                )))
            }),
            None => Ok(()),
        };
        self.cleanup();
        result
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
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.cleanup();
    }
}

fn temp_work_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "stratus-serve-{}-{}",
        std::process::id(),
        stratus_smart::keys::random_hex(4)
    ))
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

    let listener =
        std::net::TcpListener::bind((config.host.as_str(), config.port)).map_err(|e| {
            cleanup_on_error(ServeError::Bind {
                addr: format!("{}:{}", config.host, config.port),
                source: e,
            })
        })?;
    let addr = listener.local_addr().map_err(ServeError::Runtime)?;
    listener
        .set_nonblocking(true)
        .map_err(ServeError::Runtime)?;
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
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), ServeError>>();
    let thread = std::thread::Builder::new()
        .name("stratus-serve".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("stratus-serve-worker")
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(ServeError::Runtime(e)));
                    return Ok(());
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(ServeError::Runtime(e)));
                        return Ok(());
                    }
                };
                let sweeper_state = state.clone();
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        tick.tick().await;
                        sweeper_state.jobs.sweep(stratus_fhir::date::now_ms());
                    }
                });
                let app = app::router(state);
                let _ = ready_tx.send(Ok(()));
                // Without TCP_NODELAY a response's last segment can wait for the client's
                // delayed ACK: tens of milliseconds per paged search on a kept-alive
                // connection.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        tokio::select! {
                            _ = rx => {}
                            _ = shutdown_signal() => {
                                tracing::info!("shutting down");
                            }
                        }
                    })
                    .await
                    .map_err(ServeError::Runtime)
            })
        })
        .map_err(ServeError::Runtime)?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(ServeError::Runtime(std::io::Error::other(
                "the server thread ended before it was ready",
            )));
        }
    }
    Ok(Server {
        addr,
        base_url: base,
        token_url: (!open).then_some(token_url),
        summary,
        work_dir: work,
        shutdown: Some(tx),
        thread: Some(thread),
        temp_work,
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
