//! FHIR REST for crawlers: read, search with paging, Binary, the CapabilityStatement and
//! SMART discovery.

use axum::body::Body;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sonic_rs::{JsonValueMutTrait, JsonValueTrait, Value, json};
use stratus_fhir::elements;

use crate::app::{Caller, Shared};
use crate::error::ApiError;
use crate::search::{self, Criterion, Kind, Value_};
use crate::store::{Entry, Store, TypeIndex};
use crate::subset::Elements;

const FHIR_JSON: &str = "application/fhir+json";

pub fn fhir_json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// True if the `Prefer` header asks for `handling=lenient`.
pub fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim() == "handling=lenient"))
}

fn known_type(rtype: &str) -> Result<&'static str, ApiError> {
    elements::resource_type(rtype)
        .ok_or_else(|| ApiError::not_found(format!("'{rtype}' is not an R4 resource type")))
}

/// `GET [base]/[type]/[id]`.
pub async fn read(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rtype = known_type(&rtype)?;
    caller.require_read(rtype)?;
    if let Some(d) = state.store.deletion(rtype, &id) {
        let when =
            d.at.map(|ms| format!(" at {}", stratus_fhir::date::format_instant(ms)))
                .unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::GONE,
            "deleted",
            format!("{rtype}/{id} was deleted{when}"),
        ));
    }
    let entry = state
        .store
        .type_index(rtype)
        .and_then(|t| t.by_id.get(id.as_str()).map(|&p| t.entries[p as usize]))
        .ok_or_else(|| ApiError::not_found(format!("{rtype}/{id} is not on this server")))?;
    let store = state.store.clone();
    let raw = tokio::task::spawn_blocking(move || store.read(&entry))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    if rtype == "Binary" && !wants_fhir_json(&headers) {
        return binary_bytes(&raw);
    }
    Ok(fhir_json(StatusCode::OK, raw))
}

/// A Binary read answers its raw bytes unless the client asks for FHIR JSON (FHIR R4
/// §3.1.0.4.1), which is what attachment downloaders rely on.
fn wants_fhir_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("fhir+json") || a.contains("application/json"))
}

fn binary_bytes(raw: &[u8]) -> Result<Response, ApiError> {
    let v: Value = sonic_rs::from_slice(raw)
        .map_err(|e| ApiError::internal(format!("stored Binary is not JSON: {e}")))?;
    let content_type = v
        .get("contentType")
        .and_then(|c| c.as_str())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let data = v.get("data").and_then(|d| d.as_str()).unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::internal(format!("Binary data is not base64: {e}")))?;
    let mut r = (StatusCode::OK, bytes).into_response();
    if let Ok(ct) = HeaderValue::from_str(&content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(r)
}

/// `GET [base]/[type]?params`.
pub async fn search(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    run_search(state, caller, rtype, pairs, &headers).await
}

/// `POST [base]/[type]/_search` with a form body.
pub async fn search_post(
    State(state): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    if body.len() > state.config.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-long",
            format!("request body over {} bytes", state.config.max_body_bytes),
        ));
    }
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    pairs.extend(url::form_urlencoded::parse(&body).into_owned());
    run_search(state, caller, rtype, pairs, &headers).await
}

struct Plan {
    criteria: Vec<Criterion>,
    count: usize,
    cursor: usize,
    elements: Option<Elements>,
    ignored: Vec<String>,
}

fn plan(
    state: &Shared,
    rtype: &str,
    pairs: &[(String, String)],
    lenient: bool,
) -> Result<Plan, ApiError> {
    let mut plan = Plan {
        criteria: Vec::new(),
        count: state.config.default_count,
        cursor: 0,
        elements: None,
        ignored: Vec::new(),
    };
    let mut element_values = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_count" => {
                let n: usize = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("_count '{v}' is not a whole number"))
                })?;
                plan.count = n.clamp(1, state.config.max_count);
            }
            "_cursor" => {
                plan.cursor = v.parse().map_err(|_| {
                    ApiError::bad_request(format!("_cursor '{v}' is not one this server made"))
                })?;
            }
            "_format" => {}
            "_elements" => element_values.push(v.as_str()),
            _ => match search::parse_criterion(rtype, k, v)? {
                Some(c) => plan.criteria.push(c),
                None if lenient => plan.ignored.push(k.clone()),
                None => {
                    let supported: Vec<&str> = search::params_for(rtype)
                        .iter()
                        .map(|p| p.name)
                        .chain(["_count", "_elements"])
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "unknown search parameter '{k}' for {rtype}; this server supports: {}",
                        supported.join(", ")
                    )));
                }
            },
        }
    }
    if !element_values.is_empty() {
        plan.elements = Some(Elements::parse(element_values)?);
    }
    Ok(plan)
}

async fn run_search(
    state: Shared,
    caller: Caller,
    rtype: String,
    pairs: Vec<(String, String)>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let rtype = known_type(&rtype)?;
    caller.require_search(rtype)?;
    let plan = plan(&state, rtype, &pairs, lenient(headers))?;
    let st = state.clone();
    let page =
        tokio::task::spawn_blocking(move || execute(&st.store, rtype, &plan).map(|p| (p, plan)))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    let (page, plan) = page;
    let self_url = page_url(&state.base, rtype, &pairs, None);
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = page.next {
        links.push(
            json!({"relation": "next", "url": page_url(&state.base, rtype, &pairs, Some(next))}),
        );
    }
    let mut out = Vec::with_capacity(page.bytes + 256 * page.entries.len() + 512);
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"searchset","link":"#);
    out.extend_from_slice(&sonic_rs::to_vec(&links).unwrap_or_default());
    out.extend_from_slice(br#","entry":["#);
    for (i, (id, raw)) in page.entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"fullUrl":"#);
        out.extend_from_slice(
            &sonic_rs::to_vec(&format!("{}/{rtype}/{id}", state.base)).unwrap_or_default(),
        );
        out.extend_from_slice(br#","resource":"#);
        out.extend_from_slice(raw);
        out.extend_from_slice(br#","search":{"mode":"match"}}"#);
    }
    if !plan.ignored.is_empty() {
        let oo = stratus_fhir::bundle::operation_outcome(
            "warning",
            "not-supported",
            &format!(
                "ignored unknown search parameters: {}",
                plan.ignored.join(", ")
            ),
        );
        if !page.entries.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"resource":"#);
        out.extend_from_slice(&sonic_rs::to_vec(&oo).unwrap_or_default());
        out.extend_from_slice(br#","search":{"mode":"outcome"}}"#);
    }
    out.extend_from_slice(b"]}");
    Ok(fhir_json(StatusCode::OK, out))
}

fn page_url(base: &str, rtype: &str, pairs: &[(String, String)], cursor: Option<usize>) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "_cursor") {
        ser.append_pair(k, v);
    }
    if let Some(c) = cursor {
        ser.append_pair("_cursor", &c.to_string());
    }
    let q = ser.finish();
    if q.is_empty() {
        format!("{base}/{rtype}")
    } else {
        format!("{base}/{rtype}?{q}")
    }
}

struct Page {
    entries: Vec<(String, Vec<u8>)>,
    bytes: usize,
    next: Option<usize>,
}

/// Positions in the type's entries worth reading, narrowed by the index where a criterion
/// allows it (`_id`, `patient`/`subject`, Patient `identifier`).
pub fn candidates(t: &TypeIndex, store: &Store, criteria: &[Criterion]) -> Vec<u32> {
    let mut best: Option<Vec<u32>> = None;
    let mut narrow = |list: Vec<u32>| {
        if best.as_ref().is_none_or(|b| list.len() < b.len()) {
            best = Some(list);
        }
    };
    for c in criteria {
        match (c.def.kind, c.def.name) {
            (Kind::Id, _) => {
                let mut v: Vec<u32> = c
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        Value_::Id(id) => t.by_id.get(id.as_str()).copied(),
                        _ => None,
                    })
                    .collect();
                v.sort_unstable();
                v.dedup();
                narrow(v);
            }
            (Kind::Reference, "patient" | "subject") => {
                let all_patients = c.values.iter().all(|v| {
                    matches!(v, Value_::Reference { resource_type, .. } if resource_type.as_deref().is_none_or(|r| r == "Patient"))
                });
                if all_patients {
                    let mut v: Vec<u32> = c
                        .values
                        .iter()
                        .filter_map(|v| match v {
                            Value_::Reference { id, .. } => store.patient_index(id),
                            _ => None,
                        })
                        .filter_map(|p| t.by_patient.get(&p))
                        .flatten()
                        .copied()
                        .collect();
                    v.sort_unstable();
                    v.dedup();
                    narrow(v);
                }
            }
            (Kind::Token, "identifier") if t.name == "Patient" => {
                let mut v: Vec<u32> = c
                    .values
                    .iter()
                    .filter_map(|v| match v {
                        Value_::Token {
                            code: Some(code), ..
                        } => t.by_identifier.get(code.as_str()),
                        _ => None,
                    })
                    .flatten()
                    .copied()
                    .collect();
                if c.values
                    .iter()
                    .all(|v| matches!(v, Value_::Token { code: Some(_), .. }))
                {
                    v.sort_unstable();
                    v.dedup();
                    narrow(v);
                }
            }
            _ => {}
        }
    }
    best.unwrap_or_else(|| (0..t.entries.len() as u32).collect())
}

/// Decides a criterion from the index alone when it can (`_lastUpdated`).
pub fn index_decides(c: &Criterion, e: &Entry) -> Option<bool> {
    (c.def.name == "_lastUpdated").then(|| {
        c.matches_time((e.last_updated != crate::store::NO_TIME).then_some(e.last_updated))
    })
}

fn execute(store: &Store, rtype: &str, plan: &Plan) -> Result<Page, ApiError> {
    let mut page = Page {
        entries: Vec::new(),
        bytes: 0,
        next: None,
    };
    let Some(t) = store.type_index(rtype) else {
        return Ok(page);
    };
    let cands = candidates(t, store, &plan.criteria);
    let needs_json = plan
        .criteria
        .iter()
        .any(|c| c.def.name != "_lastUpdated" && c.def.kind != Kind::Id)
        || plan.elements.is_some();
    let mut buf = Vec::new();
    for (i, &pos) in cands.iter().enumerate().skip(plan.cursor) {
        let e = t.entries[pos as usize];
        if plan
            .criteria
            .iter()
            .any(|c| index_decides(c, &e) == Some(false))
        {
            continue;
        }
        store.read_into(&e, &mut buf)?;
        if needs_json || plan.criteria.iter().any(|c| c.def.kind == Kind::Id) {
            let v: Value = sonic_rs::from_slice(&buf)
                .map_err(|e| ApiError::internal(format!("stored resource is not JSON: {e}")))?;
            if !plan
                .criteria
                .iter()
                .filter(|c| c.def.name != "_lastUpdated")
                .all(|c| c.matches(&v))
            {
                continue;
            }
        }
        if page.entries.len() == plan.count {
            page.next = Some(i);
            break;
        }
        let id = resource_id(&buf);
        let raw = match &plan.elements {
            Some(els) => els
                .apply(rtype, &buf)
                .map_err(|e| ApiError::internal(e.to_string()))?
                .unwrap_or_else(|| buf.clone()),
            None => buf.clone(),
        };
        page.bytes += raw.len();
        page.entries.push((id, raw));
    }
    Ok(page)
}

fn resource_id(raw: &[u8]) -> String {
    sonic_rs::get(raw, ["id"])
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET [base]/metadata`: the CapabilityStatement, listing exactly what works here.
pub async fn metadata(State(state): State<Shared>) -> Response {
    let mut resources = Vec::new();
    let mut names: Vec<&str> = state.store.types().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    for name in names {
        let params: Vec<Value> = search::params_for(name)
            .iter()
            .map(|p| {
                let mut v = json!({"name": p.name, "type": p.kind.fhir_name()});
                if !p.doc.is_empty() {
                    v.as_object_mut().map(|o| o.insert("documentation", p.doc));
                }
                v
            })
            .collect();
        resources.push(json!({
            "type": name,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": params,
        }));
    }
    let mut security = json!({"cors": false});
    if state.auth.is_some() {
        let mut uris =
            vec![json!({"url": "token", "valueUri": format!("{}/auth/token", state.origin)})];
        if state.config.registration {
            uris.push(
                json!({"url": "register", "valueUri": format!("{}/auth/register", state.origin)}),
            );
        }
        security = json!({
            "cors": false,
            "service": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }]}],
            "extension": [{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": uris
            }]
        });
    }
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": stratus_fhir::date::format_instant(stratus_fhir::date::now_ms()),
        "kind": "instance",
        "software": {"name": "Stratus", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "stratus serve", "url": state.base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": security,
            "resource": resources,
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
                {"name": "patient-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
                {"name": "group-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}
            ]
        }]
    });
    fhir_json(StatusCode::OK, sonic_rs::to_vec(&body).unwrap_or_default())
}

/// `GET [base]/.well-known/smart-configuration`.
pub async fn smart_configuration(State(state): State<Shared>) -> Result<Response, ApiError> {
    if state.auth.is_none() {
        return Err(ApiError::not_found(
            "this server runs without authorization (--open): no SMART configuration",
        ));
    }
    let mut body = json!({
        "token_endpoint": format!("{}/auth/token", state.origin),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": ["system/*.rs", "system/*.read"],
        "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"]
    });
    if state.config.registration {
        body.as_object_mut().map(|o| {
            o.insert(
                "registration_endpoint",
                format!("{}/auth/register", state.origin).as_str(),
            )
        });
    }
    let mut r = (StatusCode::OK, sonic_rs::to_vec(&body).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
