//! Bulk Data Import, "ping and pull": a data provider pings this consumer with
//! `POST /$import`, and the consumer pulls the export itself, as an ordinary Bulk Data
//! client of the provider (the `stratus-bulk` client, resumable and validating).
//!
//! The consumer server ([`start`]) keeps registrations and jobs on disk, so that a restart
//! loses nothing and resumes running pulls. The provider's side, the "mediator" that pings
//! and then watches the job, is [`mediator`].

/// The HTTP surface of the consumer: kick-off, status, cancel, outcome, auth, pages.
pub mod http;
/// An import job on disk, and its OperationOutcome file.
pub mod job;
/// The provider's side: kick-off, status, outcome counts, cancel.
pub mod mediator;
/// The pages for people: client registration and the key generator.
pub mod pages;
/// The `$import` Parameters body, both ways.
pub mod params;
/// Registered providers and their SMART clients.
pub mod registry;
/// Running one job: pull, write the outcome, deliver to the store.
pub mod worker;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratus_smart::keys::{Alg, SigningKey};
use stratus_smart::server::AuthConfig;

/// Where imported files end up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// `{folder}/{job id}/`.
    Folder(PathBuf),
    /// `s3://bucket/prefix` → `{prefix}/{job id}/`.
    S3(String),
    /// Pulled, validated and counted, then thrown away (a protocol test bed).
    Discard,
}

impl Store {
    /// `none`/`discard`, `s3://...`, or a folder.
    pub fn parse(s: &str) -> Store {
        match s {
            "none" | "discard" => Store::Discard,
            s if s.starts_with("s3://") => Store::S3(s.trim_end_matches('/').to_owned()),
            s => Store::Folder(PathBuf::from(s)),
        }
    }
}

/// How the consumer runs.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    pub store: Store,
    /// Registrations, jobs, the consumer's key and downloads in progress.
    pub state_dir: PathBuf,
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// The origin providers use, if not `http://HOST:PORT`.
    pub public_url: Option<String>,
    /// The key the consumer signs its token requests to providers with. Without one, an
    /// ES384 key is made on first start and kept in the state folder.
    pub key: Option<PathBuf>,
    pub token_lifetime: Duration,
    /// Jobs one provider may run at once; more are answered 429.
    pub max_jobs_per_client: usize,
    /// Jobs at once in all.
    pub max_jobs: usize,
    /// How long a finished job's status and outcome stay available.
    pub job_ttl: Duration,
    /// Whether `POST /auth/register` takes new providers.
    pub registration: bool,
    /// When set, a registration must carry it (`registration_secret`): whoever may
    /// register decides which hosts the consumer pulls from and signs assertions for.
    pub registration_secret: Option<String>,
    /// Downloads at once within one job.
    pub parallel: usize,
    pub max_body_bytes: usize,
}

impl ImportConfig {
    pub fn new(store: Store, state_dir: impl Into<PathBuf>) -> Self {
        ImportConfig {
            store,
            state_dir: state_dir.into(),
            host: "127.0.0.1".into(),
            port: 9445,
            public_url: None,
            key: None,
            token_lifetime: Duration::from_secs(300),
            max_jobs_per_client: 2,
            max_jobs: 8,
            job_ttl: Duration::from_secs(24 * 3600),
            registration: true,
            registration_secret: None,
            parallel: 4,
            max_body_bytes: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    State(String),
    #[error("{0}")]
    Registration(String),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the server: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Http(#[from] stratus_http::HttpError),
    #[error("{0}")]
    Protocol(String),
}

impl ImportError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ImportError {
        ImportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Writes a file whole or not at all: a temporary file beside it, then a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ImportError::io(dir, e))?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| ImportError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ImportError::io(path, e))
}

/// A job as the server holds it: the saved state, live progress, and its task.
pub(crate) struct Live {
    pub state: job::JobState,
    pub progress: Arc<stratus_bulk::Progress>,
    pub task: Option<tokio::task::AbortHandle>,
}

/// Everything the handlers and workers share.
pub(crate) struct Shared {
    pub config: ImportConfig,
    pub origin: String,
    pub registry: registry::Registry,
    pub key: SigningKey,
    pub jobs: Mutex<HashMap<String, Live>>,
}

impl Shared {
    pub fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.origin)
    }
}

/// The consumer's own key: the configured file, or the one kept in the state folder (made
/// on first start, readable by the owner only).
fn consumer_key(config: &ImportConfig) -> Result<SigningKey, ImportError> {
    if let Some(path) = &config.key {
        return SigningKey::load(path, None)
            .map_err(|e| ImportError::Config(format!("{}: {e}", path.display())));
    }
    let path = config.state_dir.join("consumer-key.jwks");
    if path.exists() {
        return SigningKey::load(&path, None)
            .map_err(|e| ImportError::Config(format!("{}: {e}", path.display())));
    }
    let key = SigningKey::generate(Alg::Es384, 2048)
        .map_err(|e| ImportError::Config(format!("cannot make a key: {e}")))?;
    write_atomic(&path, key.to_jwks().to_string().as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    tracing::info!("made the consumer's signing key {}", path.display());
    Ok(key)
}

/// A running consumer. Dropping it stops the server.
pub struct Consumer {
    pub addr: SocketAddr,
    /// The origin, e.g. `http://127.0.0.1:9445`; `$import` is at `{url}/$import`.
    pub url: String,
    /// Jobs found on disk at start, and how many of them were resumed.
    pub jobs_loaded: usize,
    pub jobs_resumed: usize,
    pub clients_loaded: usize,
    service: stratus_service::Service,
}

impl Consumer {
    /// Blocks until the server stops (Ctrl-C / SIGTERM, or an error).
    pub fn wait(self) -> Result<(), ImportError> {
        self.service.wait().map_err(ImportError::Runtime)
    }

    /// Stops the server (running jobs stop where they are and resume at the next start).
    pub fn stop(self) -> Result<(), ImportError> {
        self.service.stop().map_err(ImportError::Runtime)
    }
}

/// Opens the state folder, binds the port, resumes unfinished jobs and serves on a
/// background thread. Returns once the server accepts connections.
pub fn start(config: ImportConfig) -> Result<Consumer, ImportError> {
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| ImportError::io(&config.state_dir, e))?;
    if let Store::Folder(dir) = &config.store {
        std::fs::create_dir_all(dir).map_err(|e| ImportError::io(dir, e))?;
    }
    if let Store::S3(url) = &config.store {
        stratus_bulk::upload::Uploader::for_url(url).map_err(ImportError::Config)?;
    }
    let key = consumer_key(&config)?;
    let listener =
        stratus_service::bind(&config.host, config.port).map_err(|e| ImportError::Bind {
            addr: format!("{}:{}", config.host, config.port),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(ImportError::Runtime)?;
    let origin = config
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut auth = AuthConfig::new(format!("{origin}/auth/token"));
    auth.expires_in = config.token_lifetime;
    let registry = registry::Registry::open(&config.state_dir, auth)?;
    let clients_loaded = registry.len();
    let saved = job::JobState::load_all(&config.state_dir)?;
    let jobs_loaded = saved.len();
    let mut resume = Vec::new();
    let mut jobs = HashMap::new();
    for s in saved {
        if matches!(s.status, job::Status::Running | job::Status::Delivering) {
            resume.push(s.id.clone());
        }
        jobs.insert(
            s.id.clone(),
            Live {
                state: s,
                progress: Arc::new(stratus_bulk::Progress::default()),
                task: None,
            },
        );
    }
    let jobs_resumed = resume.len();
    let shared = Arc::new(Shared {
        config,
        origin: origin.clone(),
        registry,
        key,
        jobs: Mutex::new(jobs),
    });

    let service = stratus_service::Service::start("stratus-import", listener, move || {
        for id in resume {
            tracing::info!("resuming import job {id}");
            worker::spawn(shared.clone(), id);
        }
        let sweeper = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                worker::sweep(&sweeper);
            }
        });
        http::router(shared)
    })
    .map_err(ImportError::Runtime)?;
    Ok(Consumer {
        addr,
        url: origin,
        jobs_loaded,
        jobs_resumed,
        clients_loaded,
        service,
    })
}
