//! What `stratus serve` is told: the data, the network, the clients, and the faults to inject.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::ServeError;

/// A client registered from the command line: `ID=public.jwks`.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub id: String,
    pub jwks: PathBuf,
    /// Scopes it may be granted; `None` means every `system/*` read scope.
    pub scopes: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub host: String,
    /// 0 picks a free port (printed at start).
    pub port: u16,
    /// Origin clients should use, if not `http://HOST:PORT` (behind a proxy, in a container).
    pub public_url: Option<String>,
    /// Where the store and export files go; a temporary folder (removed at exit) if `None`.
    pub work_dir: Option<PathBuf>,
    /// No SMART authorization at all.
    pub open: bool,
    pub clients: Vec<ClientSpec>,
    /// Whether `POST /auth/register` accepts new clients.
    pub registration: bool,
    pub groups: Vec<(String, PathBuf)>,
    pub deletions: Option<PathBuf>,
    /// Export files are split after this many resources.
    pub resources_per_file: u64,
    /// Export files (and their job) are deleted this long after the export completes.
    pub file_ttl: Duration,
    /// Search page size when the client sends no `_count`, and the most it may ask for.
    pub default_count: usize,
    pub max_count: usize,
    /// Largest request body accepted (POST kick-off, token, registration).
    pub max_body_bytes: usize,
    /// Exports running at once; more answer 429.
    pub max_running_exports: usize,
    /// `expires_in` of access tokens.
    pub token_lifetime: Duration,
    /// gzip level of export files (stored compressed, served as they are to gzip clients).
    pub gzip_level: u32,
    pub faults: Faults,
}

impl ServeConfig {
    /// Defaults for serving `data` on 127.0.0.1:9444.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        ServeConfig {
            data: data.into(),
            host: "127.0.0.1".into(),
            port: 9444,
            public_url: None,
            work_dir: None,
            open: false,
            clients: Vec::new(),
            registration: true,
            groups: Vec::new(),
            deletions: None,
            resources_per_file: 100_000,
            file_ttl: Duration::from_secs(3600),
            default_count: 50,
            max_count: 1000,
            max_body_bytes: 1 << 20,
            max_running_exports: 4,
            token_lifetime: Duration::from_secs(300),
            gzip_level: 1,
            faults: Faults::default(),
        }
    }
}

/// Faults for client tests. Every random choice comes from one generator seeded with
/// `seed`, so a test that sends the same requests in the same order sees the same faults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Faults {
    pub seed: u64,
    /// Extra delay before every answer, in ms: `[min, max]`, uniform.
    pub latency_ms: Option<[u64; 2]>,
    /// Share of requests answered 429 with `Retry-After`.
    pub rate_429: f64,
    /// Share of requests answered 500.
    pub rate_500: f64,
    /// Share of requests answered 503 with `Retry-After`.
    pub rate_503: f64,
    /// The `Retry-After` seconds sent with injected 429/503 answers.
    pub retry_after: Option<u64>,
    /// The first N status polls of every export answer 500 with an OperationOutcome of code
    /// `transient` (the job itself is fine).
    pub transient_polls: u32,
    /// Share of file downloads cut off halfway (the connection closes early).
    pub truncate_rate: f64,
    /// File downloads are throttled to this many bytes per second.
    pub slow_bytes_per_sec: Option<u64>,
    /// Share of file downloads answered 410 Gone, as if the file had expired.
    pub expire_rate: f64,
    /// Access tokens stop working after this many seconds, whatever `expires_in` said.
    pub token_valid_secs: Option<u64>,
    /// Requests per second allowed per client (by token, else by IP); more answer 429.
    pub rate_limit: Option<f64>,
}

impl Faults {
    /// Reads a TOML file of fault settings (the keys of this struct, kebab-case).
    pub fn from_file(path: &Path) -> Result<Faults, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let faults: Faults = toml::from_str(&text).map_err(|e| {
            let msg = e.to_string();
            ServeError::Config(format!(
                "{}: {}",
                path.display(),
                msg.lines().collect::<Vec<_>>().join(" ")
            ))
        })?;
        faults.validate()?;
        Ok(faults)
    }

    pub fn validate(&self) -> Result<(), ServeError> {
        for (name, v) in [
            ("rate-429", self.rate_429),
            ("rate-500", self.rate_500),
            ("rate-503", self.rate_503),
            ("truncate-rate", self.truncate_rate),
            ("expire-rate", self.expire_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ServeError::Config(format!(
                    "fault {name} = {v}: a share must be between 0 and 1"
                )));
            }
        }
        if self.rate_429 + self.rate_500 + self.rate_503 > 1.0 {
            return Err(ServeError::Config(
                "faults rate-429 + rate-500 + rate-503 add up to more than 1".into(),
            ));
        }
        if let Some([lo, hi]) = self.latency_ms
            && lo > hi
        {
            return Err(ServeError::Config(format!(
                "fault latency-ms [{lo}, {hi}]: the minimum is above the maximum"
            )));
        }
        if self.rate_limit.is_some_and(|r| r <= 0.0) {
            return Err(ServeError::Config("rate-limit must be above 0".into()));
        }
        if self.slow_bytes_per_sec == Some(0) {
            return Err(ServeError::Config(
                "slow-bytes-per-sec must be above 0".into(),
            ));
        }
        Ok(())
    }

    /// True if any fault is switched on.
    pub fn any(&self) -> bool {
        *self
            != Faults {
                seed: self.seed,
                ..Faults::default()
            }
    }
}
