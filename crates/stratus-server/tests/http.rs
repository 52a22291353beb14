//! The server over real HTTP on 127.0.0.1: Bulk Data exports, REST search and read, SMART
//! Backend Services with real signed assertions, and the injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use stratus_server::{ClientSpec, Faults, ServeConfig, Server};
use stratus_smart::keys::{Alg, SigningKey};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

fn open_config(data: &Path) -> ServeConfig {
    let mut c = ServeConfig::new(data);
    c.port = 0;
    c.open = true;
    c
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn json_of(r: Response) -> Value {
    let status = r.status();
    let text = r.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
}

fn outcome_text(v: &Value) -> String {
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v["issue"][0]["diagnostics"].as_str().unwrap().to_owned()
}

/// Kicks off, polls to completion, returns the manifest.
fn export(c: &Client, url: &str, token: Option<&str>) -> Value {
    let mut req = c
        .get(url)
        .header("Accept", "application/fhir+json")
        .header("Prefer", "respond-async");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "{}", r.text().unwrap());
    let loc = r.headers()["content-location"].to_str().unwrap().to_owned();
    poll(c, &loc, token)
}

fn poll(c: &Client, loc: &str, token: Option<&str>) -> Value {
    for _ in 0..600 {
        let mut req = c.get(loc).header("Accept", "application/json");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        match r.status() {
            StatusCode::ACCEPTED => {
                assert!(r.headers().contains_key("x-progress"));
                std::thread::sleep(Duration::from_millis(50));
            }
            StatusCode::OK => {
                assert!(r.headers().contains_key("expires"));
                let mut m = json_of(r);
                m["_location"] = json!(loc);
                return m;
            }
            s => panic!("status {s}: {}", r.text().unwrap()),
        }
    }
    panic!("export never finished");
}

/// Downloads a file (gzip accepted, decoded by reqwest) and returns its lines.
fn lines(c: &Client, url: &str, token: Option<&str>) -> Vec<Value> {
    let mut req = c.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/fhir+ndjson");
    r.text()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn total(manifest: &Value, kind: &str) -> u64 {
    manifest[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn system_export_covers_every_resource_and_files_match_counts() {
    let mut cfg = open_config(&synthea());
    cfg.resources_per_file = 5000;
    let s = stratus_server::start(cfg).unwrap();
    let c = client();
    // The Synthea sample repeats 249 Organizations and 249 Practitioners under the same
    // ids; a server holds one resource per id.
    assert_eq!(s.summary.duplicates, 498);
    let m = export(&c, &format!("{}/$export", s.base_url), None);
    assert_eq!(total(&m, "output"), 38_970 - 498);
    assert_eq!(m["requiresAccessToken"], false);
    assert!(m["transactionTime"].as_str().unwrap().ends_with('Z'));
    assert!(m["request"].as_str().unwrap().ends_with("/fhir/$export"));
    assert_eq!(m["error"], json!([]));
    // Observation (16k) is split at 5000 per file.
    let obs: Vec<&Value> = m["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "Observation")
        .collect();
    assert!(obs.len() >= 4, "{obs:?}");
    for o in &obs {
        let got = lines(&c, o["url"].as_str().unwrap(), None);
        assert_eq!(got.len() as u64, o["count"].as_u64().unwrap());
        assert!(got.iter().all(|r| r["resourceType"] == "Observation"));
    }
    // Without gzip the same bytes come decompressed, with a length.
    let url = obs[0]["url"].as_str().unwrap();
    let plain = Client::builder().no_gzip().build().unwrap();
    let r = plain
        .get(url)
        .header("Accept-Encoding", "identity")
        .send()
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    let len: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = r.bytes().unwrap();
    assert_eq!(body.len(), len);
    assert_eq!(body.iter().filter(|b| **b == b'\n').count(), 5000);
    let r = plain
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(r)
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 5000);

    // DELETE releases it; the status URL then answers 404.
    let loc = m["_location"].as_str().unwrap();
    assert_eq!(c.delete(loc).send().unwrap().status(), StatusCode::ACCEPTED);
    let r = c.get(loc).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(outcome_text(&json_of(r)).contains("not found"));
    s.stop().unwrap();
}

#[test]
fn type_filter_elements_and_patient_level_exports() {
    let s = stratus_server::start(open_config(&synthea())).unwrap();
    let c = client();
    let m = export(
        &c,
        &format!(
            "{}/Patient/$export?_type=Observation,Condition&_typeFilter={}&_elements=Observation.value,Observation.category",
            s.base_url,
            urlencode("Observation?category=laboratory")
        ),
        None,
    );
    let mut labs = 0;
    for o in m["output"].as_array().unwrap() {
        for r in lines(&c, o["url"].as_str().unwrap(), None) {
            if r["resourceType"] == "Observation" {
                labs += 1;
                assert_eq!(r["category"][0]["coding"][0]["code"], "laboratory");
                assert!(r.get("encounter").is_none(), "subsetted: {r}");
                assert!(
                    r.get("code").is_some() && r.get("status").is_some(),
                    "required kept"
                );
                assert_eq!(r["meta"]["tag"][0]["code"], "SUBSETTED");
            } else {
                assert_eq!(r["resourceType"], "Condition");
                assert!(r.get("meta").is_none(), "Conditions are left whole");
            }
        }
    }
    assert!(labs > 1000, "{labs}");

    // POST Parameters with patient: only that patient's compartment.
    let pid = first_patient_id(&c, &s);
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Patient,Encounter"},
        {"name": "patient", "valueReference": {"reference": format!("Patient/{pid}")}}
    ]});
    let r = c
        .post(format!("{}/Patient/$export", s.base_url))
        .header("Content-Type", "application/fhir+json")
        .header("Prefer", "respond-async")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["content-location"].to_str().unwrap().to_owned();
    let m = poll(&c, &loc, None);
    for o in m["output"].as_array().unwrap() {
        for r in lines(&c, o["url"].as_str().unwrap(), None) {
            if r["resourceType"] == "Patient" {
                assert_eq!(r["id"], pid.as_str());
            } else {
                assert_eq!(r["subject"]["reference"], format!("Patient/{pid}"));
            }
        }
    }
    assert!(total(&m, "output") > 1);
}

fn first_patient_id(c: &Client, s: &Server) -> String {
    let b = json_of(
        c.get(format!("{}/Patient?_count=1", s.base_url))
            .send()
            .unwrap(),
    );
    b["entry"][0]["resource"]["id"].as_str().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn bad_kickoffs_get_operation_outcomes() {
    let s = stratus_server::start(open_config(&synthea())).unwrap();
    let c = client();
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            format!("{}/$export?_type=Nope", s.base_url),
            StatusCode::BAD_REQUEST,
            "not an R4 resource type",
        ),
        (
            format!("{}/$export?_typeFilter=Observation%3Fnope%3D1", s.base_url),
            StatusCode::BAD_REQUEST,
            "no search parameter 'nope'",
        ),
        (
            format!("{}/$export?_typeFilter=garbage", s.base_url),
            StatusCode::BAD_REQUEST,
            "Type?param=value",
        ),
        (
            format!("{}/$export?_since=yesterday", s.base_url),
            StatusCode::BAD_REQUEST,
            "not a FHIR instant",
        ),
        (
            format!("{}/$export?_bogus=1", s.base_url),
            StatusCode::BAD_REQUEST,
            "unknown $export parameter '_bogus'",
        ),
        (
            format!("{}/$export?_outputFormat=text/csv", s.base_url),
            StatusCode::BAD_REQUEST,
            "_outputFormat",
        ),
        (
            format!("{}/Group/nope/$export", s.base_url),
            StatusCode::NOT_FOUND,
            "Group/nope",
        ),
        (
            format!("{}/Patient/$export?patient=Patient/x", s.base_url),
            StatusCode::BAD_REQUEST,
            "POST",
        ),
        (
            format!("{}/$export?_elements=Observation.nope", s.base_url),
            StatusCode::BAD_REQUEST,
            "no top-level element",
        ),
    ];
    for (url, status, needle) in cases {
        let r = c.get(&url).send().unwrap();
        assert_eq!(r.status(), status, "{url}");
        assert_eq!(r.headers()["content-type"], "application/fhir+json");
        let msg = outcome_text(&json_of(r));
        assert!(msg.contains(needle), "{url}: {msg}");
    }
    // Lenient handling ignores what it can and says so in the error files.
    let r = c
        .get(format!("{}/$export?_type=Patient&_bogus=1", s.base_url))
        .header("Prefer", "respond-async, handling=lenient")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let m = poll(&c, r.headers()["content-location"].to_str().unwrap(), None);
    let errs = lines(&c, m["error"][0]["url"].as_str().unwrap(), None);
    assert!(
        errs[0]["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("_bogus")
    );
    // Bad POST bodies.
    for (body, needle) in [
        ("{not json", "not JSON"),
        (r#"{"resourceType":"Patient"}"#, "Parameters"),
    ] {
        let r = c
            .post(format!("{}/$export", s.base_url))
            .header("Content-Type", "application/fhir+json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(outcome_text(&json_of(r)).contains(needle));
    }
    let r = c
        .post(format!("{}/$export", s.base_url))
        .body(vec![b' '; 2 << 20])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn search_pages_filters_and_reads() {
    let s = stratus_server::start(open_config(&synthea())).unwrap();
    let c = client();
    let pid = first_patient_id(&c, &s);
    // Follow next links; every page holds at most _count, the sum is the patient's total.
    let mut url = format!("{}/Observation?patient={pid}&_count=100", s.base_url);
    let mut seen = std::collections::HashSet::new();
    loop {
        let b = json_of(c.get(&url).send().unwrap());
        assert_eq!(b["type"], "searchset");
        let entries = b["entry"].as_array().unwrap();
        assert!(entries.len() <= 100);
        for e in entries {
            assert_eq!(
                e["resource"]["subject"]["reference"],
                format!("Patient/{pid}")
            );
            assert!(seen.insert(e["resource"]["id"].as_str().unwrap().to_owned()));
        }
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert!(seen.len() > 100, "{}", seen.len());

    // Category and date filters.
    let b = json_of(
        c.get(format!(
            "{}/Observation?subject=Patient/{pid}&category=vital-signs&date=gt2015-01-01&_count=1000",
            s.base_url
        ))
        .send()
        .unwrap(),
    );
    for e in b["entry"].as_array().unwrap() {
        let r = &e["resource"];
        assert_eq!(r["category"][0]["coding"][0]["code"], "vital-signs");
        assert!(r["effectiveDateTime"].as_str().unwrap() > "2015");
    }
    // Identifier search (system|value), as crawlers find patients by MRN.
    let p = json_of(
        c.get(format!("{}/Patient/{pid}", s.base_url))
            .send()
            .unwrap(),
    );
    let ident = &p["identifier"][1];
    let b = json_of(
        c.get(format!(
            "{}/Patient?identifier={}",
            s.base_url,
            urlencode(&format!(
                "{}|{}",
                ident["system"].as_str().unwrap(),
                ident["value"].as_str().unwrap()
            ))
        ))
        .send()
        .unwrap(),
    );
    assert_eq!(b["entry"].as_array().unwrap().len(), 1);
    assert_eq!(b["entry"][0]["resource"]["id"], pid.as_str());

    // Errors.
    let r = c
        .get(format!("{}/Patient/does-not-exist", s.base_url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .get(format!("{}/Observation?bogus=1", s.base_url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(outcome_text(&json_of(r)).contains("unknown search parameter 'bogus'"));
    let r = c
        .get(format!("{}/Observation?bogus=1&_count=1", s.base_url))
        .header("Prefer", "handling=lenient")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/Observation?date=soon", s.base_url))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The CapabilityStatement lists what works, including _lastUpdated on Patient.
    let cs = json_of(c.get(format!("{}/metadata", s.base_url)).send().unwrap());
    let res = cs["rest"][0]["resource"].as_array().unwrap();
    let patient = res.iter().find(|r| r["type"] == "Patient").unwrap();
    assert!(
        patient["searchParam"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "_lastUpdated")
    );
    let obs = res.iter().find(|r| r["type"] == "Observation").unwrap();
    for name in ["patient", "category", "issued", "date", "code"] {
        assert!(
            obs["searchParam"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name),
            "{name}"
        );
    }
}

/// A small data set with lastUpdated times, a Binary, and a deletions file.
fn small_data(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("Patient.ndjson"),
        concat!(
            r#"{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2020-01-01T00:00:00Z"}}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p2","meta":{"lastUpdated":"2024-06-01T00:00:00Z"}}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p3","meta":{"lastUpdated":"2024-06-01T00:00:00Z"}}"#,
            "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        data.join("Binary.ndjson"),
        r#"{"resourceType":"Binary","id":"b1","contentType":"text/plain","data":"aGVsbG8="}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("deleted.txt"),
        "Patient/p3 2024-07-01T00:00:00Z\nCondition/gone\n",
    )
    .unwrap();
    std::fs::write(dir.join("cohort.txt"), "# two patients\nPatient/p1\np2\n").unwrap();
    data
}

#[test]
fn since_deletions_groups_and_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut cfg = open_config(&data);
    cfg.deletions = Some(tmp.path().join("deleted.txt"));
    cfg.groups = vec![("cohort".into(), tmp.path().join("cohort.txt"))];
    let s = stratus_server::start(cfg).unwrap();
    let c = client();
    let m = export(
        &c,
        &format!(
            "{}/$export?_type=Patient,Condition&_since=2023-01-01T00:00:00Z",
            s.base_url
        ),
        None,
    );
    let out = lines(&c, m["output"][0]["url"].as_str().unwrap(), None);
    assert_eq!(out.len(), 1, "only p2 changed since 2023 (p3 is deleted)");
    assert_eq!(out[0]["id"], "p2");
    let mut deleted: Vec<String> = m["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| lines(&c, f["url"].as_str().unwrap(), None))
        .map(|b| {
            assert_eq!(b["type"], "transaction");
            b["entry"][0]["request"]["url"].as_str().unwrap().to_owned()
        })
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["Condition/gone", "Patient/p3"]);
    // Without _since there is no deleted list.
    let m = export(&c, &format!("{}/$export?_type=Patient", s.base_url), None);
    assert_eq!(m["deleted"], json!([]));
    assert_eq!(total(&m, "output"), 2);

    // Deleted resources answer 410.
    let r = c.get(format!("{}/Patient/p3", s.base_url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::GONE);

    // The group from a file of ids is a Group resource and exports its members.
    let g = json_of(
        c.get(format!("{}/Group/cohort", s.base_url))
            .send()
            .unwrap(),
    );
    assert_eq!(g["member"].as_array().unwrap().len(), 2);
    let m = export(&c, &format!("{}/Group/cohort/$export", s.base_url), None);
    assert_eq!(total(&m, "output"), 2);

    // Binary: raw bytes with the content type, or the resource when asked for FHIR JSON.
    let r = c.get(format!("{}/Binary/b1", s.base_url)).send().unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().unwrap(), "hello");
    let r = c
        .get(format!("{}/Binary/b1", s.base_url))
        .header("Accept", "application/fhir+json")
        .send()
        .unwrap();
    assert_eq!(json_of(r)["data"], "aGVsbG8=");

    // _lastUpdated search uses the index.
    let b = json_of(
        c.get(format!("{}/Patient?_lastUpdated=gt2021-01-01", s.base_url))
            .send()
            .unwrap(),
    );
    assert_eq!(b["entry"].as_array().unwrap().len(), 1);
}

fn secured(data: &Path, key: &SigningKey, faults: Faults) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let jwks = tmp.path().join("public.jwks");
    std::fs::write(&jwks, key.public_jwks().to_string()).unwrap();
    let mut cfg = ServeConfig::new(data);
    cfg.port = 0;
    cfg.clients = vec![
        ClientSpec {
            id: "app".into(),
            jwks: jwks.clone(),
            scopes: None,
        },
        ClientSpec {
            id: "narrow".into(),
            jwks,
            scopes: Some("system/Patient.rs".into()),
        },
    ];
    cfg.faults = faults;
    (stratus_server::start(cfg).unwrap(), tmp)
}

fn get_token(c: &Client, s: &Server, key: &SigningKey, client_id: &str, scope: &str) -> Response {
    let token_url = s.token_url.clone().unwrap();
    let assertion =
        stratus_smart::assertion::sign(key, client_id, &token_url, Duration::from_secs(300), None)
            .unwrap();
    c.post(&token_url)
        .form(&token_form(&assertion, scope))
        .send()
        .unwrap()
}

/// The form fields of a client-credentials token request.
fn token_form<'a>(assertion: &'a str, scope: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "client_credentials"),
        ("scope", scope),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]
}

fn token(c: &Client, s: &Server, key: &SigningKey, client_id: &str, scope: &str) -> String {
    let r = get_token(c, s, key, client_id, scope);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v = json_of(r);
    assert_eq!(v["token_type"], "bearer");
    assert!(v["expires_in"].as_u64().unwrap() <= 300);
    v["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn smart_backend_services_guard_everything() {
    let key = SigningKey::generate(Alg::Es384, 2048).unwrap();
    let (s, _tmp) = secured(&synthea(), &key, Faults::default());
    let c = client();
    // Discovery and metadata are public.
    let conf = json_of(
        c.get(format!("{}/.well-known/smart-configuration", s.base_url))
            .send()
            .unwrap(),
    );
    assert_eq!(conf["token_endpoint"], s.token_url.clone().unwrap());
    assert!(
        conf["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES384"))
    );
    assert_eq!(
        c.get(format!("{}/metadata", s.base_url))
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // No token, bad token: 401 with a reason, never data.
    let r = c.get(format!("{}/Patient", s.base_url)).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = c
        .get(format!("{}/Patient", s.base_url))
        .bearer_auth("nope")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!r.text().unwrap().contains("\"Patient\""));

    // A good token works for everything, files included, and v1 scopes are understood.
    let t = token(&c, &s, &key, "app", "system/*.read");
    let r = c
        .get(format!("{}/Patient?_count=1", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let m = export(
        &c,
        &format!("{}/$export?_type=Patient", s.base_url),
        Some(&t),
    );
    assert_eq!(m["requiresAccessToken"], true);
    let url = m["output"][0]["url"].as_str().unwrap();
    assert_eq!(
        c.get(url).send().unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(lines(&c, url, Some(&t)).len(), 100);

    // A narrow client gets only what it was registered for.
    let t = token(&c, &s, &key, "narrow", "system/*.rs");
    let r = c
        .get(format!("{}/Patient?_count=1", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(format!("{}/Observation?_count=1", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!("{}/$export?_type=Observation", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Token endpoint refusals are OAuth error JSON.
    let r = get_token(&c, &s, &key, "stranger", "system/*.rs");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(r)["error"], "invalid_client");
    let r = get_token(&c, &s, &key, "narrow", "system/Observation.rs");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(r)["error"], "invalid_scope");
    // A replayed assertion is refused.
    let token_url = s.token_url.clone().unwrap();
    let a = stratus_smart::assertion::sign(&key, "app", &token_url, Duration::from_secs(60), None)
        .unwrap();
    let form = token_form(&a, "system/*.rs");
    assert_eq!(
        c.post(&token_url).form(&form).send().unwrap().status(),
        StatusCode::OK
    );
    let r = c.post(&token_url).form(&form).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        json_of(r)["error_description"]
            .as_str()
            .unwrap()
            .contains("jti")
    );
    // Wrong audience.
    let a = stratus_smart::assertion::sign(
        &key,
        "app",
        "http://elsewhere/token",
        Duration::from_secs(60),
        None,
    )
    .unwrap();
    let r = c
        .post(&token_url)
        .form(&token_form(&a, "system/*.rs"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Registration: a new RS384 client registers and gets a token.
    let rsa = SigningKey::generate(Alg::Rs384, 2048).unwrap();
    let r = c
        .post(format!(
            "{}/auth/register",
            s.base_url.trim_end_matches("/fhir")
        ))
        .json(&json!({"jwks": rsa.public_jwks()}))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = json_of(r)["client_id"].as_str().unwrap().to_owned();
    let t = token(&c, &s, &rsa, &id, "system/*.rs");
    let r = c
        .get(format!("{}/Condition?_count=1", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn injected_faults_show_up_as_configured() {
    let key = SigningKey::generate(Alg::Es384, 2048).unwrap();
    let (s, _tmp) = secured(
        &synthea(),
        &key,
        Faults {
            transient_polls: 2,
            truncate_rate: 1.0,
            token_valid_secs: Some(3),
            ..Faults::default()
        },
    );
    let c = client();
    let t = token(&c, &s, &key, "app", "system/*.rs");
    let r = c
        .get(format!("{}/$export?_type=Patient", s.base_url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["content-location"].to_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = c.get(&loc).bearer_auth(&t).send().unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json_of(r)["issue"][0]["code"], "transient");
    }
    let m = poll(&c, &loc, Some(&t));
    // Every download is cut short: the body ends early and the client notices.
    let url = m["output"][0]["url"].as_str().unwrap();
    // The cut may come before or after the response head reaches the client.
    let body = c.get(url).bearer_auth(&t).send().and_then(|r| r.bytes());
    assert!(body.is_err(), "a truncated download must not look complete");
    // The token dies after three seconds although expires_in said 300.
    std::thread::sleep(Duration::from_millis(4100));
    let r = c.get(&loc).bearer_auth(&t).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    drop(s);

    // 429s carry Retry-After; the rate limit refuses a burst.
    let mut cfg = open_config(&synthea());
    cfg.faults = Faults {
        seed: 3,
        rate_429: 0.5,
        retry_after: Some(7),
        ..Faults::default()
    };
    let s = stratus_server::start(cfg).unwrap();
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let r = c
            .get(format!("{}/Patient?_count=1", s.base_url))
            .send()
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers()["retry-after"], "7");
        }
        statuses.push(r.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!((8..=32).contains(&refused), "{statuses:?}");
    drop(s);

    let mut cfg = open_config(&synthea());
    cfg.faults = Faults {
        rate_limit: Some(5.0),
        ..Faults::default()
    };
    let s = stratus_server::start(cfg).unwrap();
    let codes: Vec<u16> = (0..12)
        .map(|_| {
            c.get(format!("{}/metadata", s.base_url))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(
        codes.iter().all(|c| *c == 200),
        "metadata is never limited: {codes:?}"
    );
    let codes: Vec<u16> = (0..12)
        .map(|_| {
            c.get(format!("{}/Patient?_count=1", s.base_url))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert!(codes.contains(&429), "{codes:?}");

    drop(s);

    // Latency delays every answer; slow downloads are paced.
    let mut cfg = open_config(&synthea());
    cfg.faults = Faults {
        latency_ms: Some([150, 150]),
        slow_bytes_per_sec: Some(400_000),
        ..Faults::default()
    };
    let s = stratus_server::start(cfg).unwrap();
    let start = std::time::Instant::now();
    c.get(format!("{}/Patient?_count=1", s.base_url))
        .send()
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    let m = export(&c, &format!("{}/$export?_type=Patient", s.base_url), None);
    let plain = Client::builder().no_gzip().build().unwrap();
    let start = std::time::Instant::now();
    let body = plain
        .get(m["output"][0]["url"].as_str().unwrap())
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let expected = Duration::from_secs_f64(body.len() as f64 / 400_000.0);
    assert!(body.len() > 200_000, "{}", body.len());
    assert!(
        start.elapsed() >= expected.mul_f64(0.9),
        "{:?} < {expected:?}",
        start.elapsed()
    );
}

#[test]
fn export_files_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_data(tmp.path());
    let mut cfg = open_config(&data);
    cfg.file_ttl = Duration::from_secs(1);
    let s = stratus_server::start(cfg).unwrap();
    let c = client();
    let m = export(&c, &format!("{}/$export?_type=Patient", s.base_url), None);
    let url = m["output"][0]["url"].as_str().unwrap();
    assert_eq!(c.get(url).send().unwrap().status(), StatusCode::OK);
    std::thread::sleep(Duration::from_millis(1500));
    let r = c.get(url).send().unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(outcome_text(&json_of(r)).contains("expired"));
    drop(s);

    // The expired-file fault answers 410 to a fresh export's files too.
    let mut cfg = open_config(&data);
    cfg.faults = Faults {
        expire_rate: 1.0,
        ..Faults::default()
    };
    let s = stratus_server::start(cfg).unwrap();
    let m = export(&c, &format!("{}/$export?_type=Patient", s.base_url), None);
    let r = c
        .get(m["output"][0]["url"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
}

#[test]
fn gzip_downloads_honour_ranges() {
    let s = stratus_server::start(open_config(&synthea())).unwrap();
    let c = client();
    let m = export(&c, &format!("{}/$export?_type=Patient", s.base_url), None);
    let url = m["output"][0]["url"].as_str().unwrap();
    let raw = Client::builder().no_gzip().build().unwrap();
    let whole = raw
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .unwrap();
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    let whole = whole.bytes().unwrap();
    let part = raw
        .get(url)
        .header("Accept-Encoding", "gzip")
        .header("Range", "bytes=100-")
        .send()
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-{}/{}", whole.len() - 1, whole.len()).as_str()
    );
    assert_eq!(&part.bytes().unwrap()[..], &whole[100..]);
    let bad = raw
        .get(url)
        .header("Accept-Encoding", "gzip")
        .header("Range", format!("bytes={}-", whole.len() + 5))
        .send()
        .unwrap();
    assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}
