//! Everything under `/fhir`: the bearer and scope checks, then the request passed on to the
//! upstream and its answer passed back, both bodies streaming. Only JSON answers small
//! enough to hold are read whole, to rewrite their URLs (see [`crate::rewrite`]).

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use stratus_http::client::error_chain;
use stratus_smart::server::{BearerError, now_unix};

use crate::access::{self, Plan};
use crate::app::{Shared, for_client};
use crate::error::Outcome;
use crate::rewrite;

/// Connection-level headers (RFC 9110 §7.6.1): they describe one hop, not the message.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the answer needs beyond forwarding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    /// A `$export` kick-off: its status URL is remembered as handed out.
    Kickoff,
    /// The CapabilityStatement: the proxy's SMART endpoints go in.
    Metadata,
}

enum Outgoing {
    Empty,
    Bytes(Bytes),
    Stream(Body),
}

/// `GET /fhir/metadata`: public, as discovery must be, and told about the proxy's auth.
pub async fn metadata(State(st): State<Shared>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let query = parts.uri.query().map(str::to_owned);
    let target = with_query("/metadata", query.as_deref());
    forward(
        &st,
        parts.method,
        &parts.headers,
        Outgoing::Empty,
        &target,
        Kind::Metadata,
    )
    .await
}

fn with_query(path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    }
}

/// The refusal of a bearer check, as an OperationOutcome with the RFC 6750 challenge.
fn refusal(e: &BearerError) -> Outcome {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let code = match e {
        BearerError::Missing => "login",
        BearerError::Expired => "expired",
        BearerError::InsufficientScope { .. } => "forbidden",
        BearerError::Malformed | BearerError::Unknown => "security",
    };
    let description = e.to_string().replace(['"', '\\'], "'");
    let mut o = Outcome::new(status, code, e.to_string());
    o.authenticate = Some(match e {
        // No credentials, no error code (RFC 6750 §3.1).
        BearerError::Missing => "Bearer realm=\"stratus-proxy\"".to_owned(),
        BearerError::InsufficientScope { .. } => format!(
            "Bearer realm=\"stratus-proxy\", error=\"insufficient_scope\", error_description=\"{description}\""
        ),
        _ => format!(
            "Bearer realm=\"stratus-proxy\", error=\"invalid_token\", error_description=\"{description}\""
        ),
    });
    o
}

/// Everything under `/fhir` but discovery and metadata.
pub async fn fhir(State(st): State<Shared>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let suffix = path.strip_prefix("/fhir").unwrap_or(&path).to_owned();
    let segs = match access::segments(&suffix) {
        Ok(s) => s,
        Err(why) => return Outcome::invalid(why).into_response(),
    };
    let query = req.uri().query().map(str::to_owned);
    let pairs = access::pairs(query.as_deref().unwrap_or_default().as_bytes());
    let method = req.method().clone();

    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?"));
    let grant = match authorization {
        None if st.config.optional_auth => None,
        header => match st.auth.check_bearer(header, now_unix()) {
            Ok(g) => Some(g),
            Err(e) => return refusal(&e).into_response(),
        },
    };
    let client = grant.as_ref().map(|g| g.client_id.clone());

    let target = with_query(&suffix, query.as_deref());
    let plan = access::plan(&method, &segs, &pairs);
    let handed_out = st.handed_out.allows(&method, &target);
    let (parts, body) = req.into_parts();
    let outgoing = if plan.needs_body(&method) {
        match axum::body::to_bytes(body, st.config.max_body_bytes).await {
            Ok(b) => Outgoing::Bytes(b),
            Err(_) => {
                return for_client(
                    Outcome::too_long(st.config.max_body_bytes).into_response(),
                    client.as_deref(),
                );
            }
        }
    } else if has_body(&parts.headers) {
        Outgoing::Stream(body)
    } else {
        Outgoing::Empty
    };

    if let Some(g) = &grant
        && !handed_out
    {
        let body = match &outgoing {
            Outgoing::Bytes(b) => Some(b.as_ref()),
            _ => None,
        };
        let checks = match &plan {
            Plan::Checks(c) => c.clone(),
            Plan::Export => access::export_checks(&pairs, body),
            Plan::SearchForm(known) => {
                access::search_form_checks(known.clone(), &pairs, body.unwrap_or_default())
            }
        };
        if let Err(e) = access::check(g, &checks) {
            return for_client(refusal(&e).into_response(), client.as_deref());
        }
    }
    let kind = if plan == Plan::Export {
        Kind::Kickoff
    } else {
        Kind::Plain
    };
    let resp = forward(&st, method, &parts.headers, outgoing, &target, kind).await;
    for_client(resp, client.as_deref())
}

fn has_body(h: &HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The header names the `Connection` header lists, which are hop-by-hop too.
fn connection_listed(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn end_to_end(h: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let listed = connection_listed(h);
    h.iter().filter(move |(name, _)| {
        let n = name.as_str();
        !HOP_BY_HOP.contains(&n) && !listed.iter().any(|l| l == n)
    })
}

/// Whether the client takes gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            matches!(coding.as_str(), "gzip" | "x-gzip" | "*") && !refused
        })
}

/// The client's headers as the upstream should see them: without its credentials for the
/// proxy and the hop-by-hop ones. `Accept-Encoding` is narrowed to gzip or identity, the
/// codings the proxy can undo when it has to rewrite a JSON answer.
fn upstream_headers(h: &HeaderMap, streaming_body: bool) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in end_to_end(h) {
        let drop = name == header::AUTHORIZATION
            || name == header::HOST
            || name == header::EXPECT
            || name == header::ACCEPT_ENCODING
            // A buffered body gets its length from the client library.
            || (name == header::CONTENT_LENGTH && !streaming_body);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static(if accepts_gzip(h) { "gzip" } else { "identity" }),
    );
    out
}

/// The upstream's headers as the client should see them: URLs moved to the proxy.
fn client_headers(st: &Shared, h: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in end_to_end(h) {
        let value = if name == header::LOCATION || name == header::CONTENT_LOCATION {
            value
                .to_str()
                .ok()
                .and_then(|v| st.rewriter.url(v))
                .and_then(|v| HeaderValue::from_str(&v).ok())
                .unwrap_or_else(|| value.clone())
        } else {
            value.clone()
        };
        out.append(name.clone(), value);
    }
    out
}

async fn forward(
    st: &Shared,
    method: Method,
    headers: &HeaderMap,
    body: Outgoing,
    target: &str,
    kind: Kind,
) -> Response {
    let url = format!("{}{target}", st.upstream);
    let streaming = matches!(body, Outgoing::Stream(_));
    let mut rb = st
        .http
        .request(method.clone(), &url)
        .headers(upstream_headers(headers, streaming));
    rb = match body {
        Outgoing::Empty => rb,
        Outgoing::Bytes(b) => rb.body(b),
        Outgoing::Stream(b) => rb.body(reqwest::Body::wrap_stream(pump(
            b,
            st.config.max_body_bytes,
            st.config.upstream_timeout,
        ))),
    };
    let resp = match tokio::time::timeout(st.config.upstream_timeout, rb.send()).await {
        Err(_) => return upstream_timeout(st),
        Ok(Err(e)) if e.is_timeout() => return upstream_timeout(st),
        Ok(Err(e)) => {
            tracing::warn!("upstream {method} {url}: {}", error_chain(&e));
            return Outcome::new(
                StatusCode::BAD_GATEWAY,
                "transient",
                format!(
                    "the upstream FHIR server {} cannot be reached: {}",
                    st.upstream,
                    error_chain(&e)
                ),
            )
            .into_response();
        }
        Ok(Ok(r)) => r,
    };
    respond(st, &method, resp, kind).await
}

/// Passes the client's body on to the upstream as it arrives, and reads to its end whatever
/// the upstream did not take.
///
/// An upstream may answer (a 405, a 401) before the body is all sent. Left unread, the rest
/// makes the server side close the connection under a client still sending, and many clients
/// then report a broken pipe instead of the answer. So the rest is read and dropped, up to
/// `limit` bytes and for at most `patience`, the way nginx discards a refused body.
fn pump(
    body: Body,
    limit: usize,
    patience: std::time::Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, axum::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, axum::Error>>(2);
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        while let Some(item) = data.next().await {
            if let Err(refused) = tx.send(item).await {
                let mut dropped = refused.0.map_or(0, |b| b.len());
                let rest = async {
                    while let Some(Ok(b)) = data.next().await {
                        dropped += b.len();
                        if dropped > limit {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(patience, rest).await;
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

fn upstream_timeout(st: &Shared) -> Response {
    Outcome::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!(
            "the upstream FHIR server {} did not answer within {} s",
            st.upstream,
            st.config.upstream_timeout.as_secs()
        ),
    )
    .into_response()
}

fn is_json(h: &HeaderMap) -> bool {
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or_default().trim();
    media == "application/json" || media.ends_with("+json") || media == "application/json+fhir"
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    /// One the proxy cannot undo: the body passes as it is.
    Other,
}

fn coding(h: &HeaderMap) -> Coding {
    match h
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => Coding::Identity,
        Some("gzip" | "x-gzip") => Coding::Gzip,
        Some(_) => Coding::Other,
    }
}

fn with_parts(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// gunzip with a cap on the output, so a small compressed answer cannot blow up in memory.
fn gunzip(bytes: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut dec = flate2::read::MultiGzDecoder::new(bytes).take(cap as u64 + 1);
    dec.read_to_end(&mut out).ok()?;
    (out.len() <= cap).then_some(out)
}

async fn respond(st: &Shared, method: &Method, resp: reqwest::Response, kind: Kind) -> Response {
    let status = resp.status();
    let mut headers = client_headers(st, resp.headers());
    if kind == Kind::Kickoff
        && status == StatusCode::ACCEPTED
        && let Some(p) = headers
            .get(header::CONTENT_LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| st.rewriter.below_proxy(v))
    {
        st.handed_out.add_status(p.to_owned());
    }
    let cap = st.config.max_rewrite_bytes;
    let bodiless = *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let enc = coding(&headers);
    if bodiless || !is_json(&headers) || enc == Coding::Other {
        return with_parts(status, headers, Body::from_stream(resp.bytes_stream()));
    }
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        tracing::warn!("a JSON answer over {cap} bytes passes through without its URLs rewritten");
        return with_parts(status, headers, Body::from_stream(resp.bytes_stream()));
    }

    let mut stream = resp.bytes_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                return Outcome::new(
                    StatusCode::BAD_GATEWAY,
                    "transient",
                    format!("the upstream's answer broke off: {}", error_chain(&e)),
                )
                .into_response();
            }
        };
        total += chunk.len();
        chunks.push(chunk);
        if total > cap {
            tracing::warn!(
                "a JSON answer over {cap} bytes passes through without its URLs rewritten"
            );
            let head = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, reqwest::Error>));
            return with_parts(status, headers, Body::from_stream(head.chain(stream)));
        }
    }
    let raw: Bytes = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        chunks.concat().into()
    };
    let plain = match enc {
        Coding::Gzip => match gunzip(&raw, cap) {
            Some(p) => Bytes::from(p),
            None => return with_parts(status, headers, Body::from(raw)),
        },
        _ => raw.clone(),
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&plain) else {
        return with_parts(status, headers, Body::from(raw));
    };
    let out = st.rewriter.json(&mut value);
    let mut changed = out.changed;
    st.handed_out.add(out.handed_out);
    if kind == Kind::Metadata && status.is_success() {
        let register = st.config.registration.then_some(st.register_url.as_str());
        changed |= rewrite::add_oauth_uris(&mut value, &st.token_url, register);
    }
    if !changed {
        return with_parts(status, headers, Body::from(raw));
    }
    let body = match serde_json::to_vec(&value) {
        Ok(b) => b,
        Err(_) => return with_parts(status, headers, Body::from(raw)),
    };
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    // The body is another representation now: whatever range or digest the upstream
    // described no longer fits it.
    headers.remove(header::CONTENT_RANGE);
    headers.remove(HeaderName::from_static("digest"));
    headers.remove(HeaderName::from_static("content-md5"));
    with_parts(status, headers, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap_or(header::WARNING),
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("?")),
            );
        }
        h
    }

    #[test]
    fn gzip_is_accepted_unless_refused() {
        assert!(accepts_gzip(&headers(&[("accept-encoding", "gzip")])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, GZIP;q=0.5"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip; q=0.0"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "br")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_here() {
        let h = headers(&[
            ("authorization", "Bearer secret"),
            ("host", "proxy"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("prefer", "respond-async"),
            ("accept", "application/fhir+json"),
            ("content-type", "application/fhir+json"),
            ("content-length", "12"),
            ("range", "bytes=10-"),
            ("accept-encoding", "gzip, br"),
        ]);
        let out = upstream_headers(&h, false);
        for gone in [
            "authorization",
            "host",
            "connection",
            "x-private",
            "keep-alive",
            "te",
            "content-length",
        ] {
            assert!(!out.contains_key(gone), "{gone}");
        }
        assert_eq!(out["prefer"], "respond-async");
        assert_eq!(out["accept"], "application/fhir+json");
        assert_eq!(out["content-type"], "application/fhir+json");
        assert_eq!(out["range"], "bytes=10-");
        assert_eq!(out["accept-encoding"], "gzip");
        assert_eq!(upstream_headers(&h, true)["content-length"], "12");
        assert_eq!(
            upstream_headers(&HeaderMap::new(), false)["accept-encoding"],
            "identity"
        );
    }

    #[test]
    fn json_answers_are_recognised_but_not_ndjson() {
        for ct in [
            "application/json",
            "application/fhir+json; charset=utf-8",
            "Application/JSON",
            "application/json+fhir",
        ] {
            assert!(is_json(&headers(&[("content-type", ct)])), "{ct}");
        }
        for ct in [
            "application/fhir+ndjson",
            "application/ndjson",
            "text/plain",
        ] {
            assert!(!is_json(&headers(&[("content-type", ct)])), "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn gunzip_is_capped() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[b'{'; 1000]).unwrap_or_default();
        let gz = enc.finish().unwrap_or_default();
        assert_eq!(gunzip(&gz, 1000).map(|v| v.len()), Some(1000));
        assert_eq!(gunzip(&gz, 999), None);
        assert_eq!(gunzip(b"not gzip", 1000), None);
    }

    #[test]
    fn refusals_carry_fhir_codes_and_a_challenge() {
        let r = refusal(&BearerError::Missing);
        assert_eq!((r.status.as_u16(), r.code), (401, "login"));
        assert_eq!(
            r.authenticate.as_deref(),
            Some("Bearer realm=\"stratus-proxy\"")
        );
        let r = refusal(&BearerError::Unknown);
        assert_eq!((r.status.as_u16(), r.code), (401, "security"));
        assert!(r.authenticate.unwrap_or_default().contains("invalid_token"));
        let r = refusal(&BearerError::Expired);
        assert_eq!((r.status.as_u16(), r.code), (401, "expired"));
        let r = refusal(&BearerError::InsufficientScope {
            needed: "system/Observation.r (granted: \"x\")".into(),
        });
        assert_eq!((r.status.as_u16(), r.code), (403, "forbidden"));
        let a = r.authenticate.unwrap_or_default();
        assert!(a.contains("insufficient_scope"), "{a}");
        assert!(HeaderValue::from_str(&a).is_ok());
    }
}
