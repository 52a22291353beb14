//! The consumer's HTTP surface. Every job endpoint (status, cancel, outcome) needs a token
//! of the client that kicked the job off: a job URL alone grants nothing, unlike the
//! prototype consumer, where anyone holding the URL could read or cancel the job.

// The helpers return the refusal a handler sends as it is; they run once per request, so
// boxing it would buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use stratus_service::answer::{no_store_json, oauth_error, oauth_refusal};
use stratus_smart::endpoint;
use stratus_smart::keys::{Alg, SigningKey};
use stratus_smart::server::{OAuthError, now_unix};

use crate::job::{JobState, Status};
use crate::params::{self, ExportType};
use crate::registry::Provider;
use crate::{Live, Shared, worker};

type SharedState = Arc<Shared>;

pub(crate) fn router(state: SharedState) -> Router {
    Router::new()
        .route("/", get(crate::pages::register_page))
        .route("/keys", get(crate::pages::keys_page))
        .route("/generator", get(generator))
        .route("/jwks", get(jwks))
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .route("/metadata", get(metadata))
        .route("/auth/register", post(register))
        .route("/auth/token", post(token))
        .route("/$import", post(kickoff))
        .route("/job/{id}", get(status).delete(cancel))
        .route("/job/{id}/outcome.ndjson", get(outcome_file))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    tracing::info!(target: "stratus::access", "{method} {uri} {}", resp.status().as_u16());
    resp
}

/// An OperationOutcome answer with a real IssueType code (the prototype put the HTTP status
/// number there).
pub(crate) fn outcome(status: StatusCode, severity: &str, code: &str, text: &str) -> Response {
    let body = crate::job::outcome(severity, code, text);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    r
}

fn error(status: StatusCode, code: &str, text: &str) -> Response {
    outcome(status, "error", code, text)
}

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("no such endpoint: {method} {}", uri.path()),
    )
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn read_body(s: &Shared, body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, s.config.max_body_bytes)
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-long",
                &format!("request body over {} bytes", s.config.max_body_bytes),
            )
        })
}

/// The client id behind the request's bearer token, or the 401 to answer.
fn caller(s: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match s.registry.auth.check_bearer(auth, now_unix()) {
        Ok(g) => Ok(g.client_id),
        Err(e) => {
            let mut r = error(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
                "security",
                &format!("{e} (token endpoint: {})", s.token_url()),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(r)
        }
    }
}

async fn smart_configuration(State(s): State<SharedState>) -> Response {
    no_store_json(
        StatusCode::OK,
        &json!({
            "issuer": s.origin,
            "token_endpoint": s.token_url(),
            "registration_endpoint": format!("{}/auth/register", s.origin),
            "jwks_uri": format!("{}/jwks", s.origin),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "scopes_supported": ["system/*.*", "system/*.rs", "system/*.read"],
            "capabilities": ["client-confidential-asymmetric"],
        }),
    )
}

async fn metadata(State(s): State<SharedState>) -> Response {
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": stratus_fhir::date::format_instant(stratus_fhir::date::now_ms()),
        "kind": "instance",
        "software": {"name": "stratus import server", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Bulk Data Import (ping and pull) consumer", "url": s.origin},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [
                        {"url": "token", "valueUri": s.token_url()},
                        {"url": "register", "valueUri": format!("{}/auth/register", s.origin)},
                    ],
                }],
            },
            "operation": [{"name": "import", "definition": "https://github.com/smart-on-fhir/bulk-import/blob/master/import-pnp.md"}],
        }],
    });
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    r
}

/// The consumer's public key, to register with providers.
async fn jwks(State(s): State<SharedState>) -> Response {
    no_store_json(StatusCode::OK, &s.key.public_jwks())
}

#[derive(serde::Deserialize)]
struct GenQuery {
    alg: Option<String>,
}

/// `GET /generator?alg=ES384|RS384`: a new key pair, made here and not kept, for trying the
/// consumer out. Real keys belong on the provider's side (`stratus keys generate`).
async fn generator(Query(q): Query<GenQuery>) -> Response {
    let alg = match q.alg.as_deref().unwrap_or("ES384") {
        "ES384" => Alg::Es384,
        "RS384" => Alg::Rs384,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "not-supported",
                &format!(
                    "alg '{other}' is not offered: SMART Backend Services uses ES384 or RS384"
                ),
            );
        }
    };
    let made = tokio::task::spawn_blocking(move || {
        let key = SigningKey::generate(alg, 2048)?;
        let pem = key.to_pkcs8_pem()?;
        Ok::<_, stratus_smart::keys::KeyError>((key, pem))
    })
    .await;
    match made {
        Ok(Ok((key, pem))) => no_store_json(
            StatusCode::OK,
            &json!({
                "alg": alg.as_str(),
                "jwks": key.public_jwks(),
                "publicAsJWK": key.public_jwk(),
                "privateAsJWK": key.private_jwk(),
                "privateJwks": key.to_jwks(),
                "privateAsPEM": pem,
            }),
        ),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
    }
}

/// Fetches a JWKS named by URL at registration time (not on every token request, as the
/// prototype did): a provider rotates keys by registering again.
async fn fetch_jwks(url: &str) -> Result<Value, OAuthError> {
    let fail = |why: String| endpoint::metadata_error(format!("jwks_uri {url}: {why}"));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| fail(e.to_string()))?;
    stratus_http::jwks::fetch(&http, url, Duration::from_secs(10))
        .await
        .map_err(fail)
}

/// A text field or a list of them; a text is split on whitespace and commas, so a form's
/// textarea with one base per line works.
fn texts(v: Option<&Value>) -> Vec<String> {
    let split = |s: &str| -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == ',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match v {
        Some(Value::String(s)) => split(s),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).flat_map(split).collect(),
        _ => Vec::new(),
    }
}

/// `POST /auth/register`: a provider registers its public keys (by value or URL), the
/// client id this consumer holds at that provider, and the FHIR base URLs it will ask the
/// consumer to pull from. Answers the provider's new client id here.
async fn register(State(s): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    if !s.config.registration {
        return oauth_refusal(
            StatusCode::FORBIDDEN,
            "access_denied",
            "registration is switched off on this consumer",
        );
    }
    let bytes = match read_body(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reg = match endpoint::registration(&header_text(&headers, header::CONTENT_TYPE), &bytes) {
        Ok(r) => r,
        Err(e) => return oauth_error(&e),
    };
    if let Some(secret) = &s.config.registration_secret {
        let given = reg
            .fields
            .get("registration_secret")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // Compared in full whatever the first difference, so timing tells nothing.
        let same = given.len() == secret.len()
            && given
                .bytes()
                .zip(secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return oauth_refusal(
                StatusCode::FORBIDDEN,
                "access_denied",
                "this consumer needs its registration secret to register a provider",
            );
        }
    }
    let jwks = match (&reg.jwks, &reg.jwks_uri) {
        (Some(j), _) => j.clone(),
        (None, Some(u)) => match fetch_jwks(u).await {
            Ok(j) => j,
            Err(e) => return oauth_error(&e),
        },
        (None, None) => {
            return oauth_error(&endpoint::metadata_error(
                "send the provider's public keys as jwks (a JWKS) or jwks_uri (its URL)",
            ));
        }
    };
    let consumer_client_id = texts(reg.fields.get("consumer_client_id"))
        .into_iter()
        .next();
    let Some(consumer_client_id) = consumer_client_id else {
        return oauth_error(&endpoint::metadata_error(
            "consumer_client_id is required: the client id your server gave this consumer, \
             which it uses to pull your exports",
        ));
    };
    let mut bases = texts(reg.fields.get("provider_base_url"));
    bases.extend(texts(reg.fields.get("aud")));
    bases.extend(texts(reg.fields.get("provider_base_urls")));
    if bases.is_empty() {
        return oauth_error(&endpoint::metadata_error(
            "provider_base_url is required: the FHIR base URL(s) this consumer may pull from",
        ));
    }
    for b in &bases {
        match url::Url::parse(b) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return oauth_error(&endpoint::metadata_error(format!(
                    "provider_base_url '{b}' is not an http(s) URL"
                )));
            }
        }
    }
    let token_endpoint = texts(reg.fields.get("token_endpoint")).into_iter().next();
    if let Some(t) = &token_endpoint
        && t != "none"
        && url::Url::parse(t).is_err()
    {
        return oauth_error(&endpoint::metadata_error(format!(
            "token_endpoint '{t}' is not a URL (leave it out to discover it, or say none)"
        )));
    }
    let provider = Provider {
        consumer_client_id,
        bases: bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_owned())
            .collect(),
        token_endpoint,
        jwks_uri: reg.jwks_uri.clone(),
        registered_at: now_unix(),
    };
    let s2 = s.clone();
    let p2 = provider.clone();
    let done = tokio::task::spawn_blocking(move || s2.registry.register(&jwks, p2)).await;
    match done {
        Ok(Ok(client_id)) => {
            tracing::info!(target: "stratus::auth", "registered provider client {client_id} for {}", provider.bases.join(" "));
            no_store_json(
                StatusCode::CREATED,
                &json!({
                    "client_id": client_id,
                    "client_id_issued_at": provider.registered_at,
                    "token_endpoint": s.token_url(),
                    "token_endpoint_auth_method": "private_key_jwt",
                    "grant_types": ["client_credentials"],
                    "consumer_client_id": provider.consumer_client_id,
                    "provider_base_urls": provider.bases,
                    "import_url": format!("{}/$import", s.origin),
                }),
            )
        }
        Ok(Err(e)) => oauth_error(&endpoint::metadata_error(e.to_string())),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
    }
}

async fn token(State(s): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    let bytes = match read_body(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let form = match endpoint::token_form(&header_text(&headers, header::CONTENT_TYPE), &bytes) {
        Ok(f) => f,
        Err(e) => return oauth_error(&e),
    };
    let s2 = s.clone();
    match tokio::task::spawn_blocking(move || s2.registry.auth.token(&form, now_unix())).await {
        Ok(Ok(t)) => no_store_json(
            StatusCode::OK,
            &serde_json::to_value(&t).unwrap_or_default(),
        ),
        Ok(Err(e)) => oauth_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &e.to_string(),
        ),
    }
}

/// `POST /$import`: checks everything it can before answering, then answers 202 at once;
/// the pull runs in the background and its failures are reported by the status endpoint.
async fn kickoff(State(s): State<SharedState>, headers: HeaderMap, body: Body) -> Response {
    let client_id = match caller(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let prefer = header_text(&headers, header::HeaderName::from_static("prefer"));
    if !prefer.is_empty() && !prefer.contains("respond-async") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "Prefer must ask for respond-async: an import is always asynchronous",
        );
    }
    let lenient = prefer.contains("handling=lenient");
    let bytes = match read_body(&s, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("the body is not JSON: {e}"),
            );
        }
    };
    let req = match params::parse(&body, lenient) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid", &e.0),
    };
    let Some(provider) = s.registry.provider(&client_id) else {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this client is not registered as a data provider here",
        );
    };
    let Some(base) = provider.base_for(&req.export_url).map(str::to_owned) else {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!(
                "exportUrl {} is not under a FHIR base registered for this client ({}); \
                 register the base first",
                req.export_url,
                provider.bases.join(", ")
            ),
        );
    };
    let mut spec = req.spec.clone();
    let provider_base = match req.export_type {
        ExportType::Static => base,
        ExportType::Dynamic => {
            if req.export_url.contains('?') {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "exportUrl has a query: send export parameters as Parameters entries, \
                     which the consumer passes on",
                );
            }
            let Some((kick_base, level)) = params::split_kickoff(&req.export_url) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!(
                        "a dynamic exportUrl must be a $export kick-off URL ([base]/$export, \
                         [base]/Patient/$export or [base]/Group/[id]/$export), not {}",
                        req.export_url
                    ),
                );
            };
            spec.level = Some(level);
            kick_base
        }
    };
    let now = stratus_fhir::date::now_ms();
    let id = stratus_smart::keys::random_hex(8);
    {
        let mut jobs = s.jobs();
        let running = |l: &&Live| matches!(l.state.status, Status::Running | Status::Delivering);
        let mine = jobs
            .values()
            .filter(running)
            .filter(|l| l.state.client_id == client_id)
            .count();
        let all = jobs.values().filter(running).count();
        if mine >= s.config.max_jobs_per_client || all >= s.config.max_jobs {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                &format!(
                    "{} imports are running ({} of them yours); try again later",
                    all, mine
                ),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            return r;
        }
        let st = JobState {
            id: id.clone(),
            client_id: client_id.clone(),
            created_ms: now,
            export_url: req.export_url.clone(),
            export_type: req.export_type,
            provider_base,
            spec,
            status: Status::Running,
            completed_ms: None,
            error: None,
            outcomes: 0,
            resources: 0,
            files: 0,
            export_transaction_time: None,
            ignored: req.ignored.clone(),
        };
        if let Err(e) = st.save(&s.config.state_dir) {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                &e.to_string(),
            );
        }
        jobs.insert(
            id.clone(),
            Live {
                state: st,
                progress: Arc::new(stratus_bulk::Progress::default()),
                task: None,
            },
        );
    }
    tracing::info!(
        "import {id} from client {client_id}: {} {}",
        req.export_type.as_str(),
        req.export_url
    );
    worker::spawn(s.clone(), id.clone());
    let location = format!("{}/job/{id}", s.origin);
    let mut text = format!("import job {id} started; poll {location}");
    if !req.ignored.is_empty() {
        text.push_str(&format!(
            " (ignored parameters: {})",
            req.ignored.join(", ")
        ));
    }
    let mut r = outcome(StatusCode::ACCEPTED, "information", "informational", &text);
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    r
}

/// The job if the caller owns it. Another client's job answers exactly as a missing one
/// does, so job ids cannot be probed.
fn owned_job(s: &Shared, headers: &HeaderMap, id: &str) -> Result<JobState, Response> {
    let client_id = caller(s, headers)?;
    match s.jobs().get(id) {
        Some(l) if l.state.client_id == client_id => Ok(l.state.clone()),
        _ => Err(error(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("no import job {id} for this client (finished jobs expire)"),
        )),
    }
}

fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

async fn status(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let st = match owned_job(&s, &headers, &id) {
        Ok(st) => st,
        Err(r) => return r,
    };
    let expires = st.completed_ms.map(|c| {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(c.max(0) as u64) + s.config.job_ttl;
        httpdate::fmt_http_date(at)
    });
    let mut r = match st.status {
        Status::Running | Status::Delivering => {
            let text = match s.jobs().get(&id) {
                Some(l) => worker::progress_text(&st, &l.progress),
                None => "in progress".into(),
            };
            let mut r = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&text) {
                r.headers_mut()
                    .insert(header::HeaderName::from_static("x-progress"), v);
            }
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            r
        }
        Status::Complete => no_store_json(StatusCode::OK, &worker::manifest(&s, &st)),
        Status::Failed => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "processing",
            &format!(
                "the import failed: {}",
                st.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
    };
    if let Some(e) = expires
        && let Ok(v) = HeaderValue::from_str(&e)
    {
        r.headers_mut().insert(header::EXPIRES, v);
    }
    no_store(r)
}

async fn cancel(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let st = match owned_job(&s, &headers, &id) {
        Ok(st) => st,
        Err(r) => return r,
    };
    worker::cancel(&s, &id).await;
    let text = match st.status {
        Status::Running | Status::Delivering => {
            format!("import job {id} was cancelled and its partial files removed")
        }
        _ => format!("import job {id} was removed; files already stored stay where they are"),
    };
    outcome(StatusCode::ACCEPTED, "information", "informational", &text)
}

async fn outcome_file(
    State(s): State<SharedState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let st = match owned_job(&s, &headers, &id) {
        Ok(st) => st,
        Err(r) => return r,
    };
    if !matches!(st.status, Status::Complete | Status::Failed) {
        return error(
            StatusCode::NOT_FOUND,
            "not-found",
            "the outcome is written when the import ends",
        );
    }
    let path = JobState::outcome_path(&s.config.state_dir, &id);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+ndjson"),
            );
            r
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            &format!("the outcome file cannot be read: {e}"),
        ),
    }
}
