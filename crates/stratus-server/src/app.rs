//! The HTTP application: shared state, routes, and the layers every request passes through
//! (access log, fault injection, SMART bearer check).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use stratus_smart::server::{AuthServer, BearerError, Grant};

use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::export::Jobs;
use crate::faults::FaultState;
use crate::store::Store;
use crate::{auth, export, rest};

pub struct AppState {
    pub store: Arc<Store>,
    /// `None` when serving with `--open`.
    pub auth: Option<Arc<AuthServer>>,
    pub config: ServeConfig,
    /// `http://host:port/fhir`, no trailing slash.
    pub base: String,
    /// `http://host:port`.
    pub origin: String,
    pub jobs: Jobs,
    pub faults: FaultState,
    pub work: PathBuf,
}

pub type Shared = Arc<AppState>;

/// Who is asking: the bearer token's grant, or nobody on an open server.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub grant: Option<Grant>,
}

impl Caller {
    pub fn client_id(&self) -> Option<&str> {
        self.grant.as_ref().map(|g| g.client_id.as_str())
    }

    /// 403 unless the token's scopes allow reading `rtype`.
    pub fn require_read(&self, rtype: &str) -> Result<(), ApiError> {
        match &self.grant {
            Some(g) if !g.scopes.can_read(rtype) => {
                Err(forbidden(&g.scopes.to_string(), rtype, "read"))
            }
            _ => Ok(()),
        }
    }

    /// 403 unless the token's scopes allow searching `rtype`.
    pub fn require_search(&self, rtype: &str) -> Result<(), ApiError> {
        match &self.grant {
            Some(g) if !g.scopes.can_search(rtype) => {
                Err(forbidden(&g.scopes.to_string(), rtype, "search"))
            }
            _ => Ok(()),
        }
    }

    pub fn can_read(&self, rtype: &str) -> bool {
        self.grant.as_ref().is_none_or(|g| g.scopes.can_read(rtype))
    }
}

fn forbidden(scopes: &str, rtype: &str, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("the access token's scopes ({scopes}) do not allow {what} of {rtype}"),
    )
}

pub fn router(state: Shared) -> Router {
    let fhir = Router::new()
        .route("/metadata", get(rest::metadata))
        .route(
            "/.well-known/smart-configuration",
            get(rest::smart_configuration),
        )
        .route(
            "/$export",
            get(export::kickoff_system).post(export::kickoff_system),
        )
        .route(
            "/Patient/$export",
            get(export::kickoff_patient).post(export::kickoff_patient),
        )
        .route(
            "/Group/{id}/$export",
            get(export::kickoff_group).post(export::kickoff_group),
        )
        .route(
            "/bulkstatus/{job}",
            get(export::status).delete(export::cancel),
        )
        .route("/bulkfiles/{job}/{file}", get(export::download))
        .route("/{rtype}", get(rest::search))
        .route("/{rtype}/_search", post(rest::search_post))
        .route("/{rtype}/{id}", get(rest::read))
        .fallback(not_found);
    Router::new()
        .nest("/fhir", fhir)
        .route("/auth/token", post(auth::token))
        .route("/auth/register", post(auth::register))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

/// One line per request: method, path and query, status, time to the response head, client.
async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    let client = resp
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.client_id().map(str::to_owned))
        .unwrap_or_else(|| "-".into());
    tracing::info!(
        target: "stratus::access",
        "{} {method} {uri} {} {:.1}ms client={client}",
        stratus_fhir::date::format_instant(stratus_fhir::date::now_ms()),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

/// Paths that never need a token and never get faults: discovery and registration, so a
/// client can always find out how to authenticate.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/fhir/metadata" | "/fhir/.well-known/smart-configuration" | "/auth/register"
    )
}

/// Faults first (a flaky gateway fails before auth is looked at), then the bearer check.
async fn guard(State(state): State<Shared>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !is_public(&path) {
        if let Some(delay) = state.faults.latency() {
            tokio::time::sleep(delay).await;
        }
        let key = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_owned();
        if let Some(e) = state.faults.rate_limited(&key) {
            return e.into_response();
        }
        if let Some(e) = state.faults.injected_error() {
            return e.into_response();
        }
    }
    let mut caller = Caller::default();
    if let Some(auth) = &state.auth
        && path.starts_with("/fhir/")
        && !is_public(&path)
    {
        let header = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match auth.check_bearer(header, stratus_smart::server::now_unix()) {
            Ok(grant) => caller.grant = Some(grant),
            Err(e) => return bearer_error(&e).into_response(),
        }
    }
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(caller);
    resp
}

fn bearer_error(e: &BearerError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let code = match e {
        BearerError::Expired => "expired",
        BearerError::InsufficientScope { .. } => "forbidden",
        _ => "login",
    };
    let mut err = ApiError::new(status, code, e.to_string());
    err.authenticate = Some(format!(
        "Bearer realm=\"stratus\", error=\"invalid_token\", error_description=\"{}\"",
        e.to_string().replace('"', "'")
    ));
    err
}

/// The address the server listens on, for messages.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
