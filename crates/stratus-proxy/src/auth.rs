//! The SMART Backend Services side of the proxy: discovery, registration (kept in
//! `clients.json`), and the token endpoint. The checks themselves are
//! `stratus_smart::server`'s, so a client that works against `stratus serve` works here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use stratus_smart::endpoint;
use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthServer, now_unix};

use crate::app::Shared;
use crate::error::{ProxyError, no_store_json, oauth_error, oauth_refusal};

/// A registration waits at most this long for a `jwks_uri`, whatever the upstream timeout.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /.well-known/smart-configuration` and `GET /fhir/.well-known/smart-configuration`:
/// clients look it up relative to the FHIR base, some at the origin.
pub async fn smart_configuration(State(st): State<Shared>) -> Response {
    let mut body = json!({
        "token_endpoint": st.token_url,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.rs", "system/*.read"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"]
    });
    if st.config.registration
        && let Some(o) = body.as_object_mut()
    {
        o.insert("registration_endpoint".into(), json!(st.register_url));
    }
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

async fn read_body(st: &Shared, body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, st.config.max_body_bytes)
        .await
        .map_err(|_| {
            oauth_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("request body over {} bytes", st.config.max_body_bytes),
            )
        })
}

/// `POST /auth/token`.
pub async fn token(State(st): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(&st, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = match endpoint::token_form(&content_type(&headers), &bytes) {
        Ok(f) => f,
        Err(e) => return oauth_error(&e),
    };
    let now = now_unix();
    // Signature checks (RSA especially) are CPU work; keep them off the async workers.
    let shared = st.clone();
    match tokio::task::spawn_blocking(move || shared.auth.token(&form, now)).await {
        Ok(Ok(t)) => {
            tracing::info!(target: "stratus::auth", "token issued, scope '{}'", t.scope);
            match serde_json::to_value(&t) {
                Ok(v) => no_store_json(StatusCode::OK, &v),
                Err(e) => oauth_refusal(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    e.to_string(),
                ),
            }
        }
        Ok(Err(e)) => oauth_error(&e),
        Err(e) => oauth_refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

fn metadata_error(description: impl Into<String>) -> Response {
    oauth_error(&endpoint::metadata_error(description))
}

/// `POST /auth/register`: RFC 7591-style registration by public JWKS, sent by value or
/// as a `jwks_uri` that is fetched once, now. Fetching it at every token request (as the
/// SMART prototypes did) would make the upstream's availability depend on a third host.
pub async fn register(State(st): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    if !st.config.registration {
        return oauth_refusal(
            StatusCode::FORBIDDEN,
            "access_denied",
            "registration is switched off on this proxy",
        );
    }
    let bytes = match read_body(&st, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reg = match endpoint::registration(&content_type(&headers), &bytes) {
        Ok(r) => r,
        Err(e) => return oauth_error(&e),
    };
    let jwks = match (reg.jwks, reg.jwks_uri) {
        (Some(j), _) => j,
        (None, Some(uri)) => match fetch_jwks(&st, &uri).await {
            Ok(j) => j,
            Err(why) => return metadata_error(format!("jwks_uri {uri}: {why}")),
        },
        (None, None) => return metadata_error("the request has neither jwks nor jwks_uri"),
    };
    // The configured scope is a ceiling: a registration may ask for less, never more
    // (else anyone could register itself write access to the open upstream).
    let allowed = match reg.scope.as_deref().map(Scopes::parse) {
        None => st.default_scope.clone(),
        Some(Ok(s)) => match st.default_scope.grant(&s) {
            Ok(g) => g,
            Err(e) => return metadata_error(e.to_string()),
        },
        Some(Err(e)) => return metadata_error(e.to_string()),
    };
    let client_id = match st.auth.register_new(&jwks, allowed.clone()) {
        Ok(id) => id,
        Err(e) => return metadata_error(e.to_string()),
    };
    let shared = st.clone();
    let saved = tokio::task::spawn_blocking(move || shared.save_clients()).await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(target: "stratus::auth", "saving the clients: {e}");
            return oauth_refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("the client could not be saved ({e}); register again later"),
            );
        }
        Err(e) => {
            return oauth_refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            );
        }
    }
    tracing::info!(target: "stratus::auth", "registered client {client_id}, scope '{allowed}'");
    no_store_json(
        StatusCode::CREATED,
        &json!({
            "client_id": client_id,
            "client_id_issued_at": now_unix(),
            "token_endpoint_auth_method": "private_key_jwt",
            "grant_types": ["client_credentials"],
            "scope": allowed.to_string(),
        }),
    )
}

/// Fetches a JWKS for a registration: http(s) only, no redirects (the client names the
/// final URL), a timeout and a size cap, since anyone who may register picks the URL.
async fn fetch_jwks(st: &Shared, uri: &str) -> Result<Value, String> {
    stratus_http::jwks::fetch(&st.http, uri, JWKS_TIMEOUT.min(st.config.upstream_timeout)).await
}

/// Where the registry is kept.
pub fn clients_file(state_dir: &Path) -> PathBuf {
    state_dir.join("clients.json")
}

/// Registers again every client saved in `path`, if it exists; returns how many.
pub fn load_clients(auth: &AuthServer, path: &Path) -> Result<usize, ProxyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(ProxyError::State {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let saved: Value = serde_json::from_str(&text).map_err(|e| ProxyError::SavedClients {
        path: path.to_path_buf(),
        message: format!("not JSON: {e}"),
    })?;
    auth.restore_clients(&saved)
        .map_err(|e| ProxyError::SavedClients {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Writes `clients` to `path` through a temporary file and a rename, so a crash mid-write
/// leaves the previous registry rather than half of one.
pub fn write_atomically(path: &Path, clients: &Value) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(clients).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stratus_smart::keys::{Alg, SigningKey};
    use stratus_smart::server::AuthConfig;

    #[test]
    fn the_registry_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = clients_file(dir.path());
        let auth = AuthServer::new(AuthConfig::new("http://p/auth/token"));
        assert_eq!(load_clients(&auth, &path).unwrap(), 0);
        let key = SigningKey::generate(Alg::Es384, 2048).unwrap();
        let id = auth
            .register_new(
                &key.public_jwks(),
                Scopes::parse("system/Patient.rs").unwrap(),
            )
            .unwrap();
        write_atomically(&path, &auth.clients_json()).unwrap();
        assert!(!path.with_extension("json.tmp").exists());

        let again = AuthServer::new(AuthConfig::new("http://p/auth/token"));
        assert_eq!(load_clients(&again, &path).unwrap(), 1);
        assert_eq!(again.clients_json()[&id]["scope"], "system/Patient.rs");

        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            load_clients(&again, &path),
            Err(ProxyError::SavedClients { .. })
        ));
    }
}
