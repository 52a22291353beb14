//! The consumer against real parts: `stratus serve` (with SMART auth) as the data provider,
//! `stratus_import::start` as the consumer, and the mediator client, all over HTTP on
//! 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use stratus_bulk::ExportSpec;
use stratus_http::auth::{Auth, SmartClient};
use stratus_import::mediator::{JobStatus, Mediator};
use stratus_import::params::ExportType;
use stratus_import::{ImportConfig, Store};
use stratus_smart::keys::{Alg, SigningKey};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

/// Resource ids by type in the NDJSON(.gz) files directly in `dir` (error/ and deleted/
/// aside), read as Stratus reads an export.
fn ids_by_type(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let opts = stratus_fhir::reader::ReaderOptions::default();
    for f in stratus_fhir::scan::scan_top(dir, opts).unwrap() {
        if f.resource_type.is_none() {
            continue; // log.ndjson
        }
        let mut r = stratus_fhir::reader::FileReader::open(&f.path, opts).unwrap();
        while let Some(stratus_fhir::Line::Data { bytes, .. }) = r.next_line().unwrap() {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            out.entry(v["resourceType"].as_str().unwrap().to_owned())
                .or_default()
                .push(v["id"].as_str().unwrap().to_owned());
        }
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

struct World {
    _tmp: tempfile::TempDir,
    provider: stratus_server::Server,
    consumer: Option<stratus_import::Consumer>,
    store: PathBuf,
    state: PathBuf,
    key: SigningKey,
    client_id: String,
    /// The consumer's client id at the provider.
    consumer_client_id: String,
}

impl World {
    fn new(faults: stratus_server::Faults, tune: impl Fn(&mut ImportConfig)) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let mut sc = stratus_server::ServeConfig::new(synthea());
        sc.port = 0;
        sc.faults = faults;
        let provider = stratus_server::start(sc).unwrap();
        let store = tmp.path().join("store");
        let state = tmp.path().join("state");
        let mut ic = ImportConfig::new(Store::Folder(store.clone()), &state);
        ic.port = 0;
        tune(&mut ic);
        let consumer = stratus_import::start(ic).unwrap();

        // The consumer registers with the provider (its public key, from its /jwks)...
        let http = reqwest::blocking::Client::new();
        let consumer_jwks: Value = http
            .get(format!("{}/jwks", consumer.url))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let origin = provider.base_url.trim_end_matches("/fhir").to_owned();
        let at_provider: Value = http
            .post(format!("{origin}/auth/register"))
            .json(&json!({"jwks": consumer_jwks}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        // ...and the provider with the consumer: its key, that id, and its FHIR base.
        let key = SigningKey::generate(Alg::Es384, 2048).unwrap();
        let resp = http
            .post(format!("{}/auth/register", consumer.url))
            .json(&json!({
                "jwks": key.public_jwks(),
                "consumer_client_id": at_provider["client_id"],
                "provider_base_url": provider.base_url,
            }))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201);
        let reg: Value = resp.json().unwrap();
        World {
            _tmp: tmp,
            provider,
            consumer: Some(consumer),
            store,
            state,
            key,
            client_id: reg["client_id"].as_str().unwrap().to_owned(),
            consumer_client_id: at_provider["client_id"].as_str().unwrap().to_owned(),
        }
    }

    fn url(&self) -> String {
        self.consumer.as_ref().unwrap().url.clone()
    }

    fn mediator(&self) -> Mediator {
        let auth = Auth::Smart(Box::new(SmartClient::new(
            self.client_id.clone(),
            self.key.clone(),
            None,
            None,
        )));
        Mediator::new(&self.url(), auth).unwrap()
    }

    fn restart(&mut self, tune: impl Fn(&mut ImportConfig)) -> stratus_import::Consumer {
        let old = self.consumer.take().unwrap();
        let port = old.addr.port();
        old.stop().unwrap();
        let mut ic = ImportConfig::new(Store::Folder(self.store.clone()), &self.state);
        ic.port = port;
        tune(&mut ic);
        stratus_import::start(ic).unwrap()
    }
}

fn spec(types: &[&str]) -> ExportSpec {
    ExportSpec {
        types: types.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_dynamic_import_pulls_exactly_the_providers_data() {
    let w = World::new(Default::default(), |_| {});
    let m = w.mediator();
    let rt = rt();
    let export_url = format!("{}/$export", w.provider.base_url);
    let job = rt
        .block_on(m.kickoff(
            &export_url,
            ExportType::Dynamic,
            &spec(&["Patient", "Condition"]),
            false,
        ))
        .unwrap();
    assert!(job.starts_with(&format!("{}/job/", w.url())), "{job}");
    let mut seen = Vec::new();
    let manifest = rt
        .block_on(m.wait(&job, |p| seen.push(p.to_owned())))
        .unwrap();
    assert_eq!(manifest["requiresAccessToken"], true);
    assert!(manifest["transactionTime"].as_str().unwrap().ends_with('Z'));
    let outcomes = rt.block_on(m.outcomes(&manifest)).unwrap();
    assert_eq!(
        outcomes.by_severity.get("information"),
        Some(&2),
        "{outcomes:?}"
    );
    assert!(!outcomes.by_severity.contains_key("error"), "{outcomes:?}");

    // The store holds the job's files, and they are the provider's Patients and Conditions.
    let id = job.rsplit('/').next().unwrap();
    let got = ids_by_type(&w.store.join(id));
    let mut want = ids_by_type(&synthea());
    want.retain(|t, _| t == "Patient" || t == "Condition");
    assert_eq!(got, want);
    assert!(w.store.join(id).join("manifest.json").exists());
    assert!(!w.store.join(id).join(".stratus-bulk.json").exists());

    // A job URL alone grants nothing; another provider sees no such job.
    let http = reqwest::blocking::Client::new();
    let r = http.get(&job).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = http.delete(&job).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http.get(format!("{job}/outcome.ndjson")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // DELETE after completion cleans up the job but keeps the imported files.
    let msg = rt.block_on(m.cancel(&job)).unwrap();
    assert!(msg.contains("removed"), "{msg}");
    match rt.block_on(m.status(&job)) {
        Err(e) => assert!(e.to_string().contains("404"), "{e}"),
        Ok(s) => panic!("still there: {s:?}"),
    }
    assert!(w.store.join(id).join("manifest.json").exists());
}

#[test]
fn a_static_import_reads_a_finished_manifest() {
    let w = World::new(Default::default(), |_| {});
    let rt = rt();
    // A finished export's status URL answers with the complete manifest: a static one.
    let provider = stratus_http::Client::new(
        &w.provider.base_url,
        // Exports belong to the client that made them: make it as the consumer.
        Auth::Smart(Box::new(SmartClient::new(
            w.consumer_client_id.clone(),
            SigningKey::load(&w.state.join("consumer-key.jwks"), None).unwrap(),
            None,
            None,
        ))),
        Default::default(),
    )
    .unwrap();
    let opts = stratus_bulk::Options {
        keep_on_server: true,
        ..Default::default()
    };
    let done = rt
        .block_on(stratus_bulk::run(
            &provider,
            &spec(&["Patient"]),
            &opts,
            Default::default(),
        ))
        .unwrap();
    let m = w.mediator();
    let job = rt
        .block_on(m.kickoff(
            &done.status_url,
            ExportType::Static,
            &ExportSpec::default(),
            false,
        ))
        .unwrap();
    let manifest = rt.block_on(m.wait(&job, |_| {})).unwrap();
    assert_eq!(manifest["extension"]["resources"], done.resources);
    let id = job.rsplit('/').next().unwrap();
    let got = ids_by_type(&w.store.join(id));
    assert_eq!(got["Patient"], ids_by_type(&synthea())["Patient"]);
}

#[test]
fn bad_kickoffs_get_a_clear_operation_outcome() {
    let w = World::new(Default::default(), |_| {});
    let rt = rt();
    let m = w.mediator();
    let base = w.provider.base_url.clone();
    let refused = |url: &str, t: ExportType| {
        rt.block_on(m.kickoff(url, t, &ExportSpec::default(), false))
            .unwrap_err()
            .to_string()
    };
    // Not under the registered base: the consumer is no open fetcher of URLs.
    let e = refused("http://127.0.0.1:9/fhir/$export", ExportType::Dynamic);
    assert!(
        e.contains("HTTP 403") && e.contains("not under a FHIR base"),
        "{e}"
    );
    let e = refused(&format!("{base}-evil/$export"), ExportType::Dynamic);
    assert!(e.contains("HTTP 403"), "{e}");
    let e = refused(&format!("{base}/Patient"), ExportType::Dynamic);
    assert!(e.contains("HTTP 400") && e.contains("kick-off URL"), "{e}");

    // Raw bodies: not Parameters, unknown exportType, unknown parameter.
    let http = reqwest::blocking::Client::new();
    let token = {
        let key = w.key.clone();
        let url = w.url();
        let id = w.client_id.clone();
        rt.block_on(async move {
            let c = stratus_http::Client::new(
                &url,
                Auth::Smart(Box::new(SmartClient::new(id, key, None, None))),
                Default::default(),
            )
            .unwrap();
            c.authorization().await.unwrap().unwrap()
        })
    };
    let post = |body: Value, prefer: &str| {
        let r = http
            .post(format!("{}/$import", w.url()))
            .header("Authorization", &token)
            .header("Content-Type", "application/fhir+json")
            .header("Prefer", prefer)
            .body(body.to_string())
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().unwrap();
        (status, v)
    };
    let url = json!({"name": "exportUrl", "valueUrl": format!("{base}/$export")});
    let (s, v) = post(json!({"resourceType": "Bundle"}), "respond-async");
    assert_eq!(s, 400);
    assert_eq!(v["issue"][0]["code"], "invalid");
    let (s, v) = post(
        json!({"resourceType": "Parameters", "parameter": [url, {"name": "exportType", "valueCode": "push"}]}),
        "respond-async",
    );
    assert_eq!(s, 400);
    assert!(
        v["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("exportType 'push'")
    );
    let (s, _) = post(
        json!({"resourceType": "Parameters", "parameter": [url, {"name": "organizeOutputBy", "valueString": "Patient"}]}),
        "respond-async",
    );
    assert_eq!(s, 400);
    let (s, v) = post(
        json!({"resourceType": "Parameters", "parameter": [url, {"name": "organizeOutputBy", "valueString": "Patient"}, {"name": "_type", "valueString": "Patient"}]}),
        "respond-async, handling=lenient",
    );
    assert_eq!(s, 202, "{v}");

    // No token, a made-up token.
    let r = http.post(format!("{}/$import", w.url())).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(format!("{}/$import", w.url()))
        .header("Authorization", "Bearer nope")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().unwrap();
    assert_eq!(v["issue"][0]["code"], "security");
}

#[test]
fn a_registration_secret_guards_registration() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = ImportConfig::new(Store::Discard, tmp.path().join("state"));
    c.port = 0;
    c.registration_secret = Some("s3cret".into());
    let consumer = stratus_import::start(c).unwrap();
    let key = SigningKey::generate(Alg::Es384, 2048).unwrap();
    let http = reqwest::blocking::Client::new();
    let reg = |secret: Option<&str>| {
        let mut body = json!({
            "jwks": key.public_jwks(),
            "consumer_client_id": "x",
            "provider_base_url": "https://ehr.example.org/fhir",
        });
        if let Some(s) = secret {
            body["registration_secret"] = json!(s);
        }
        http.post(format!("{}/auth/register", consumer.url))
            .json(&body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(reg(None), 403);
    assert_eq!(reg(Some("s3cre")), 403);
    assert_eq!(reg(Some("s3cret")), 201);
}

#[test]
fn a_provider_over_its_job_limit_gets_429() {
    let faults = stratus_server::Faults {
        slow_bytes_per_sec: Some(20_000),
        ..Default::default()
    };
    let w = World::new(faults, |c| c.max_jobs_per_client = 1);
    let rt = rt();
    let m = w.mediator();
    let url = format!("{}/$export", w.provider.base_url);
    let first = rt
        .block_on(m.kickoff(&url, ExportType::Dynamic, &spec(&["Condition"]), false))
        .unwrap();
    // The client honours Retry-After on 429 and retries; a raw request shows the 429.
    let token = rt.block_on(async {
        stratus_http::Client::new(
            &w.url(),
            Auth::Smart(Box::new(SmartClient::new(
                w.client_id.clone(),
                w.key.clone(),
                None,
                None,
            ))),
            Default::default(),
        )
        .unwrap()
        .authorization()
        .await
        .unwrap()
        .unwrap()
    });
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/$import", w.url()))
        .header("Authorization", token)
        .body(
            stratus_import::params::kickoff_body(&url, ExportType::Dynamic, &spec(&["Patient"]))
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    // Cancelling the running job removes it and its partial files.
    let msg = rt.block_on(m.cancel(&first)).unwrap();
    assert!(msg.contains("cancelled"), "{msg}");
    let id = first.rsplit('/').next().unwrap();
    assert!(!w.state.join("jobs").join(id).exists());
    assert!(!w.store.join(id).exists());
}

#[test]
fn a_running_job_resumes_after_a_restart() {
    let faults = stratus_server::Faults {
        slow_bytes_per_sec: Some(150_000),
        ..Default::default()
    };
    let mut w = World::new(faults, |_| {});
    let rt = rt();
    let url = format!("{}/$export", w.provider.base_url);
    let job = rt
        .block_on(w.mediator().kickoff(
            &url,
            ExportType::Dynamic,
            &spec(&["Patient", "Condition", "Encounter"]),
            false,
        ))
        .unwrap();
    // Stop while it is still pulling.
    loop {
        match rt.block_on(w.mediator().status(&job)).unwrap() {
            JobStatus::Running { progress, .. } if progress.starts_with("downloading") => break,
            JobStatus::Running { .. } => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("ended before the restart: {other:?}"),
        }
    }
    let consumer = w.restart(|_| {});
    assert_eq!(consumer.jobs_resumed, 1);
    assert_eq!(consumer.clients_loaded, 1);
    w.consumer = Some(consumer);
    // The registration and the job survived; a new token from the same client sees it.
    let manifest = rt.block_on(w.mediator().wait(&job, |_| {})).unwrap();
    assert_eq!(manifest["requiresAccessToken"], true);
    let id = job.rsplit('/').next().unwrap();
    let got = ids_by_type(&w.store.join(id));
    let mut want = ids_by_type(&synthea());
    want.retain(|t, _| ["Patient", "Condition", "Encounter"].contains(&t.as_str()));
    assert_eq!(got, want);
}

#[test]
fn a_provider_that_fails_half_way_fails_the_job_with_its_reason() {
    // Every file download answers 410 Gone: the export starts, then cannot be fetched.
    let faults = stratus_server::Faults {
        expire_rate: 1.0,
        ..Default::default()
    };
    let w = World::new(faults, |_| {});
    let rt = rt();
    let m = w.mediator();
    let url = format!("{}/$export", w.provider.base_url);
    let job = rt
        .block_on(m.kickoff(&url, ExportType::Dynamic, &spec(&["Patient"]), false))
        .unwrap();
    let e = rt.block_on(m.wait(&job, |_| {})).unwrap_err().to_string();
    assert!(e.contains("the import failed") && e.contains("410"), "{e}");
    let id = job.rsplit('/').next().unwrap();
    // Nothing partial is presented as imported.
    assert!(!w.store.join(id).exists());
}
