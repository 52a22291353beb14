//! Token and registration answers, errors included, are never to be cached (RFC 6749
//! §5.1); every service that issues tokens answers them through here.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stratus_smart::server::OAuthError;

/// A JSON answer with `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn no_store_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

/// An OAuth error (`{"error", "error_description"}`) with its status, logged on the
/// `stratus::auth` target that the servers show by default.
pub fn oauth_error(e: &OAuthError) -> Response {
    tracing::info!(target: "stratus::auth", "refused: {}: {}", e.error, e.description);
    no_store_json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        &e.to_json(),
    )
}

/// An OAuth error made on the spot: `error` is one of RFC 6749's codes.
pub fn oauth_refusal(
    status: StatusCode,
    error: &'static str,
    description: impl Into<String>,
) -> Response {
    oauth_error(&OAuthError {
        status: status.as_u16(),
        error,
        description: description.into(),
    })
}
