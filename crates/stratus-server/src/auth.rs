//! The SMART Backend Services endpoints: token (client credentials with a signed JWT
//! assertion) and dynamic registration of a public JWKS. The checks themselves live in
//! `stratus_smart::server`; this module speaks HTTP for them.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use stratus_service::answer::{no_store_json, oauth_error, oauth_refusal};
use stratus_smart::endpoint;
use stratus_smart::scope::Scopes;

use crate::app::Shared;

async fn read_body(state: &Shared, body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| {
            oauth_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                format!("request body over {} bytes", state.config.max_body_bytes),
            )
        })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// `POST /auth/token`.
pub async fn token(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(auth) = state.auth.clone() else {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this server runs without authorization (--open): no token is needed",
        );
    };
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = match endpoint::token_form(&content_type(&headers), &bytes) {
        Ok(f) => f,
        Err(e) => return oauth_error(&e),
    };
    let now = stratus_smart::server::now_unix();
    match tokio::task::spawn_blocking(move || auth.token(&form, now)).await {
        Ok(Ok(t)) => {
            tracing::info!(target: "stratus::auth", "token issued, scope '{}'", t.scope);
            no_store_json(
                StatusCode::OK,
                &serde_json::to_value(&t).unwrap_or_default(),
            )
        }
        Ok(Err(e)) => oauth_error(&e),
        Err(e) => oauth_refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            e.to_string(),
        ),
    }
}

/// `POST /auth/register`: RFC 7591-style registration of a client by its public JWKS.
///
/// Takes JSON (`{"jwks": {...}, "scope": "system/*.rs"}`) or a form (`jwks=<JSON>`, the
/// bulk-data-server convention). `jwks_uri` is refused: the server would have to fetch keys
/// from the network, which a local test bed should not do.
pub async fn register(State(state): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(auth) = state.auth.clone() else {
        return oauth_refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this server runs without authorization (--open): nothing to register",
        );
    };
    if !state.config.registration {
        return oauth_refusal(
            StatusCode::FORBIDDEN,
            "access_denied",
            "registration is switched off on this server (--no-registration)",
        );
    }
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reg = match endpoint::registration(&content_type(&headers), &bytes) {
        Ok(r) => r,
        Err(e) => return oauth_error(&e),
    };
    if reg.jwks_uri.is_some() {
        return jwks_uri_refused();
    }
    let Some(jwks) = reg.jwks else {
        return metadata_error("the request has no jwks");
    };
    let scope = reg.scope;
    let allowed = match scope.as_deref().map(Scopes::parse) {
        None => Scopes::all_read(),
        Some(Ok(s)) => s,
        Some(Err(e)) => return metadata_error(e.to_string()),
    };
    match auth.register_new(&jwks, allowed.clone()) {
        Ok(client_id) => {
            tracing::info!(target: "stratus::auth", "registered client {client_id}");
            no_store_json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "client_id": client_id,
                    "client_id_issued_at": stratus_smart::server::now_unix(),
                    "token_endpoint_auth_method": "private_key_jwt",
                    "grant_types": ["client_credentials"],
                    "scope": allowed.to_string(),
                }),
            )
        }
        Err(e) => metadata_error(e.to_string()),
    }
}

fn jwks_uri_refused() -> Response {
    metadata_error(
        "registration by jwks_uri is not supported here; send the public JWKS itself as jwks",
    )
}

fn metadata_error(description: impl Into<String>) -> Response {
    oauth_error(&endpoint::metadata_error(description))
}
