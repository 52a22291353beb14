//! Shared state, routes, and the access log.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use stratus_smart::scope::Scopes;
use stratus_smart::server::AuthServer;

use crate::config::ProxyConfig;
use crate::error::{Outcome, oauth_refusal};
use crate::rewrite::Rewriter;
use crate::{auth, forward};

pub struct AppState {
    pub config: ProxyConfig,
    /// The upstream FHIR base, no trailing slash.
    pub upstream: String,
    /// The proxy's FHIR base, `{origin}/fhir`.
    pub base: String,
    pub token_url: String,
    pub register_url: String,
    pub auth: AuthServer,
    pub http: reqwest::Client,
    pub rewriter: Rewriter,
    pub default_scope: Scopes,
    pub handed_out: HandedOut,
    /// `{state_dir}/clients.json`, when registrations are kept.
    pub clients_file: Option<PathBuf>,
    /// One writer of `clients.json` at a time, each writing a snapshot taken under the
    /// lock, so an older snapshot never lands after a newer one.
    pub save_lock: Mutex<()>,
}

pub type Shared = Arc<AppState>;

impl AppState {
    pub fn save_clients(&self) -> std::io::Result<()> {
        let Some(path) = &self.clients_file else {
            return Ok(());
        };
        let _guard = self.save_lock.lock().unwrap_or_else(|p| p.into_inner());
        auth::write_atomically(path, &self.auth.clients_json())
    }
}

/// How long a handed-out URL stays known; export files rarely live longer upstream.
const HANDED_OUT_TTL: Duration = Duration::from_secs(24 * 3600);
const HANDED_OUT_MAX: usize = 200_000;

/// Status and file URLs this proxy put into kick-off answers and manifests (as paths
/// below its base). Fetching them needs only a valid token, even where the path alone
/// would need more (an upstream that serves files as `Binary/{id}`): the export that
/// listed them already checked the scopes. Only status URLs may also be deleted that way
/// (cancelling the export); a file URL may name a resource the upstream would delete.
#[derive(Default)]
pub struct HandedOut {
    /// Path → (when, whether DELETE is the export's cancel).
    paths: Mutex<HashMap<String, (Instant, bool)>>,
}

impl HandedOut {
    /// Remembers file and manifest-page URLs (fetch only).
    pub fn add(&self, paths: impl IntoIterator<Item = String>) {
        self.insert(paths, false);
    }

    /// Remembers a kick-off's status URL (fetch and cancel).
    pub fn add_status(&self, path: String) {
        self.insert([path], true);
    }

    fn insert(&self, paths: impl IntoIterator<Item = String>, cancellable: bool) {
        let now = Instant::now();
        let mut map = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        for p in paths {
            if map.len() >= HANDED_OUT_MAX {
                map.retain(|_, (t, _)| now.duration_since(*t) < HANDED_OUT_TTL);
                if map.len() >= HANDED_OUT_MAX {
                    tracing::warn!(
                        "over {HANDED_OUT_MAX} export URLs handed out in a day; later ones need the scopes of their path"
                    );
                    return;
                }
            }
            let cancellable = cancellable || map.get(&p).is_some_and(|(_, c)| *c);
            map.insert(p, (now, cancellable));
        }
    }

    /// Whether `method` on `path` is one the export that handed it out already allowed.
    pub fn allows(&self, method: &Method, path: &str) -> bool {
        let map = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        let Some((when, cancellable)) = map.get(path) else {
            return false;
        };
        when.elapsed() < HANDED_OUT_TTL
            && match *method {
                Method::GET | Method::HEAD => true,
                Method::DELETE => *cancellable,
                _ => false,
            }
    }
}

/// The client a request was made for, for the access log.
#[derive(Clone, Debug)]
pub struct ClientId(pub String);

pub fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/auth/token",
            post(auth::token).fallback(oauth_method_not_allowed),
        )
        .route(
            "/auth/register",
            post(auth::register).fallback(oauth_method_not_allowed),
        )
        .route(
            "/.well-known/smart-configuration",
            get(auth::smart_configuration).fallback(method_not_allowed),
        )
        .route(
            "/fhir/.well-known/smart-configuration",
            get(auth::smart_configuration).fallback(method_not_allowed),
        )
        .route(
            "/fhir/metadata",
            get(forward::metadata).fallback(method_not_allowed),
        )
        .route("/fhir", any(forward::fhir))
        .route("/fhir/", any(forward::fhir))
        .route("/fhir/{*rest}", any(forward::fhir))
        .fallback(not_found)
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Outcome {
    Outcome::not_found(format!(
        "no such endpoint: {method} {} (FHIR requests go under /fhir)",
        uri.path()
    ))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Outcome {
    Outcome::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not-supported",
        format!("{method} is not supported on {}", uri.path()),
    )
}

async fn oauth_method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    oauth_refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        format!("{method} is not supported on {}; use POST", uri.path()),
    )
}

/// One line per request: method, path (no query: it can name patients), status, time to
/// the response head, client.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let client = resp
        .extensions()
        .get::<ClientId>()
        .map(|c| c.0.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "stratus::access",
        "{method} {path} {} {:.1}ms client={client}",
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

/// Tags a response with the client it was made for.
pub fn for_client(mut resp: Response, client: Option<&str>) -> Response {
    if let Some(c) = client {
        resp.extensions_mut().insert(ClientId(c.to_owned()));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_out_paths_are_remembered_exactly() {
        let h = HandedOut::default();
        h.add(["/Binary/1".to_owned()]);
        h.add_status("/$export-poll-status?_jobId=2".to_owned());
        assert!(h.allows(&Method::GET, "/Binary/1"));
        assert!(h.allows(&Method::HEAD, "/Binary/1"));
        assert!(!h.allows(&Method::DELETE, "/Binary/1"));
        assert!(!h.allows(&Method::PUT, "/Binary/1"));
        assert!(h.allows(&Method::GET, "/$export-poll-status?_jobId=2"));
        assert!(h.allows(&Method::DELETE, "/$export-poll-status?_jobId=2"));
        assert!(!h.allows(&Method::GET, "/Binary/2"));
        assert!(!h.allows(&Method::GET, "/$export-poll-status?_jobId=3"));
        // A status URL listed again as a manifest link stays cancellable.
        h.add(["/$export-poll-status?_jobId=2".to_owned()]);
        assert!(h.allows(&Method::DELETE, "/$export-poll-status?_jobId=2"));
    }
}
