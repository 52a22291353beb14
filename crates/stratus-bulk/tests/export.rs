//! Exports from `stratus serve` on 127.0.0.1, clean and under every fault it can inject:
//! the export must complete with every resource exactly once, or stop with a clear error
//! and a state the next run resumes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use stratus_bulk::{ExportSpec, Level, Options, Progress};
use stratus_http::{Auth, Client, HttpConfig, SmartClient};
use stratus_server::{ClientSpec, Faults, ServeConfig, Server};
use stratus_smart::keys::{Alg, SigningKey};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

fn server(faults: Faults, per_file: u64) -> Server {
    let mut c = ServeConfig::new(synthea());
    c.port = 0;
    c.open = true;
    c.faults = faults;
    c.resources_per_file = per_file;
    stratus_server::start(c).unwrap()
}

fn quick() -> HttpConfig {
    HttpConfig {
        backoff: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
        max_retries: 8,
        ..HttpConfig::default()
    }
}

fn spec(types: &[&str]) -> ExportSpec {
    ExportSpec {
        level: Some(Level::System),
        types: types.iter().map(|t| t.to_string()).collect(),
        ..ExportSpec::default()
    }
}

fn opts(out: &Path) -> Options {
    Options {
        out: Some(out.to_path_buf()),
        max_poll_interval: Duration::from_millis(200),
        ..Options::default()
    }
}

fn run(
    client: &Client,
    spec: &ExportSpec,
    o: &Options,
) -> Result<stratus_bulk::Summary, stratus_bulk::BulkError> {
    stratus_bulk::block_on(stratus_bulk::run(
        client,
        spec,
        o,
        Arc::new(Progress::default()),
    ))
    .unwrap()
}

/// Every resource id per type in the folder's NDJSON files, with how often it appears.
fn ids(dir: &Path) -> BTreeMap<String, BTreeMap<String, u32>> {
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    for f in stratus_fhir::scan::scan(dir, Default::default()).unwrap() {
        let name = f.path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "log.ndjson" || f.path.parent().unwrap() != dir {
            continue;
        }
        let mut r = stratus_fhir::NdjsonReader::open(&f.path, Default::default()).unwrap();
        while let Some(stratus_fhir::Line::Data { bytes, .. }) = r.next_line().unwrap() {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            *out.entry(v["resourceType"].as_str().unwrap().to_owned())
                .or_default()
                .entry(v["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    out
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("log.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn clean_export_layout_log_and_manifest() {
    let s = server(Faults::default(), 5000);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let sum = run(&client, &spec(&["Patient", "Observation"]), &opts(&out)).unwrap();
    assert_eq!(sum.resources, 100 + 16_315);
    let got = ids(&out);
    assert_eq!(got["Patient"].len(), 100);
    assert_eq!(got["Observation"].len(), 16_315);
    assert!(got.values().flat_map(|m| m.values()).all(|n| *n == 1));
    for n in [
        "Patient.001.ndjson.gz",
        "Observation.001.ndjson.gz",
        "Observation.004.ndjson.gz",
    ] {
        assert!(out.join(n).exists(), "{n}");
    }
    let m: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(
        m["output"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["destination"].is_string())
    );
    // The log holds what cumulus-etl reads: the kickoff URL and the transaction time.
    let ev = events(&out);
    let kinds: Vec<&str> = ev.iter().map(|e| e["eventId"].as_str().unwrap()).collect();
    for k in [
        "kickoff",
        "status_complete",
        "manifest_complete",
        "download_request",
        "download_complete",
        "export_complete",
    ] {
        assert!(kinds.contains(&k), "{k}: {kinds:?}");
    }
    let kickoff = &ev[0];
    assert!(
        kickoff["eventDetail"]["exportUrl"]
            .as_str()
            .unwrap()
            .contains("/$export")
    );
    let export_id = kickoff["exportId"].as_str().unwrap();
    assert!(ev.iter().all(|e| e["exportId"] == export_id));
    // The job was released on the server.
    let r = reqwest::blocking::get(export_id).unwrap();
    assert_eq!(r.status(), 404);
    // The same command again says it is already done.
    let again = run(&client, &spec(&["Patient", "Observation"]), &opts(&out));
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("already holds this export")
    );
}

#[test]
fn every_fault_still_gives_every_resource_once() {
    let faults = Faults {
        seed: 11,
        latency_ms: Some([0, 5]),
        rate_429: 0.1,
        rate_500: 0.05,
        rate_503: 0.05,
        retry_after: Some(0),
        transient_polls: 2,
        truncate_rate: 0.3,
        ..Faults::default()
    };
    let s = server(faults, 2000);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut o = opts(&out);
    o.attempts = 10;
    let sum = run(&client, &spec(&["Patient", "Condition", "Observation"]), &o).unwrap();
    assert_eq!(sum.resources, 100 + 639 + 16_315);
    let got = ids(&out);
    assert_eq!(got["Observation"].len(), 16_315);
    assert!(got.values().flat_map(|m| m.values()).all(|n| *n == 1));
}

#[test]
fn an_interrupted_export_resumes_the_same_job() {
    // Half the downloads answer 410 Gone, which no retry fixes: the run stops with the
    // files it got, and running it again fetches only the rest, from the same server job.
    let s = server(
        Faults {
            seed: 5,
            expire_rate: 0.5,
            ..Faults::default()
        },
        2000,
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let spec = spec(&["Observation"]);
    let o = opts(&out);
    let err = run(&client, &spec, &o).unwrap_err().to_string();
    assert!(err.contains("run the same command again"), "{err}");
    let done_before = ids(&out).get("Observation").map_or(0, |m| m.len());
    assert!(done_before < 16_315);
    let mut finished = None;
    for _ in 0..20 {
        match run(&client, &spec, &o) {
            Ok(sum) => {
                finished = Some(sum);
                break;
            }
            Err(e) => assert!(e.to_string().contains("run the same command again"), "{e}"),
        }
    }
    let sum = finished.expect("the export completes after a few resumes");
    assert!(sum.resumed);
    let got = ids(&out);
    assert_eq!(got["Observation"].len(), 16_315);
    assert!(got["Observation"].values().all(|n| *n == 1));
    let kickoffs = events(&out)
        .iter()
        .filter(|e| e["eventId"] == "kickoff")
        .count();
    assert_eq!(kickoffs, 1);
}

#[test]
fn cancel_deletes_the_job() {
    let s = server(Faults::default(), 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    // Start an export by hand, then cancel it through --resume URL.
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/$export?_type=Patient", s.base_url))
        .header("prefer", "respond-async")
        .send()
        .unwrap();
    let loc = r.headers()["content-location"].to_str().unwrap().to_owned();
    let mut o = opts(&out);
    o.cancel = true;
    o.resume_url = Some(loc.clone());
    let sum = run(&client, &spec(&["Patient"]), &o).unwrap();
    assert!(sum.cancelled);
    assert_eq!(reqwest::blocking::get(&loc).unwrap().status(), 404);
}

#[test]
fn smart_auth_with_tokens_that_die_early() {
    let key = SigningKey::generate(Alg::Es384, 0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let jwks = tmp.path().join("public.jwks");
    std::fs::write(&jwks, key.public_jwks().to_string()).unwrap();
    let mut c = ServeConfig::new(synthea());
    c.port = 0;
    c.clients = vec![ClientSpec {
        id: "app".into(),
        jwks,
        scopes: None,
    }];
    c.faults = Faults {
        token_valid_secs: Some(1),
        latency_ms: Some([150, 150]),
        ..Faults::default()
    };
    c.resources_per_file = 2000;
    let s = stratus_server::start(c).unwrap();
    let out = tmp.path().join("export");
    let auth = Auth::Smart(Box::new(SmartClient::new("app", key.clone(), None, None)));
    let client = Client::new(&s.base_url, auth, quick()).unwrap();
    let mut o = opts(&out);
    o.parallel = 1;
    let sum = run(&client, &spec(&["Observation"]), &o).unwrap();
    assert_eq!(sum.resources, 16_315);

    // A client id the server does not know: one clear error naming the cause.
    let auth = Auth::Smart(Box::new(SmartClient::new("nobody", key, None, None)));
    let client = Client::new(&s.base_url, auth, quick()).unwrap();
    let err = run(&client, &spec(&["Patient"]), &opts(&tmp.path().join("x")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid_client") && err.contains("nobody"),
        "{err}"
    );
}

#[test]
fn note_attachments_are_inlined_with_hashes() {
    use base64::Engine;
    use sha1::Digest;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    stratus_synth::population::generate(
        &stratus_synth::population::PopulationConfig {
            patients: 30,
            seed: 3,
            compression: stratus_fhir::Compression::FAST_GZIP,
        },
        &data,
        &|_| {},
    )
    .unwrap();
    let mut c = ServeConfig::new(&data);
    c.port = 0;
    c.open = true;
    let s = stratus_server::start(c).unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut o = opts(&out);
    o.inline = Some(stratus_bulk::attachments::InlineOptions {
        types: vec![
            "text/plain".into(),
            "text/html".into(),
            "application/pdf".into(),
        ],
        max_bytes: 1 << 20,
        pdf_to_text: true,
    });
    let sum = run(
        &client,
        &spec(&["DocumentReference", "DiagnosticReport"]),
        &o,
    )
    .unwrap();
    assert!(sum.attachments > 0, "{sum:?}");
    let mut checked = 0;
    for f in stratus_fhir::scan::scan(&out, Default::default()).unwrap() {
        if f.resource_type.as_deref() != Some("DocumentReference") {
            continue;
        }
        let mut r = stratus_fhir::NdjsonReader::open(&f.path, Default::default()).unwrap();
        while let Some(stratus_fhir::Line::Data { bytes, .. }) = r.next_line().unwrap() {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            for c in v["content"].as_array().unwrap() {
                let a = &c["attachment"];
                let ct = a["contentType"].as_str().unwrap_or_default();
                assert!(
                    !ct.starts_with("application/pdf") || a.get("url").is_none(),
                    "PDFs behind a URL became text: {a}"
                );
                if a.get("url").is_some()
                    && (ct.starts_with("text/plain") || ct.starts_with("text/html"))
                {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(a["data"].as_str().expect("inlined"))
                        .unwrap();
                    assert_eq!(a["size"].as_u64(), Some(data.len() as u64));
                    let hash =
                        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&data));
                    assert_eq!(a["hash"].as_str(), Some(hash.as_str()));
                    let text = String::from_utf8(data).expect("text");
                    assert!(text.to_lowercase().contains("patient"), "{text}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn broken_downloads_resume_from_the_last_byte() {
    // Every response is cut halfway: only resuming with Range can ever finish a file.
    let s = server(
        Faults {
            truncate_rate: 1.0,
            ..Faults::default()
        },
        100_000,
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut o = opts(&out);
    o.attempts = 40;
    let sum = run(&client, &spec(&["Patient", "Condition"]), &o).unwrap();
    assert_eq!(sum.resources, 100 + 639);
    let got = ids(&out);
    assert_eq!(got["Patient"].len(), 100);
    assert!(got.values().flat_map(|m| m.values()).all(|n| *n == 1));
}

/// A small HTTP destination that stores each PUT body under its path, as a site's
/// upload service would, and remembers the Authorization headers it saw.
fn put_server(root: PathBuf) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::extract::{Path as AxPath, State};
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let state = (root, seen.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new()
                .route(
                    "/dest/{*path}",
                    axum::routing::put(
                        |State((root, seen)): State<(
                            PathBuf,
                            Arc<std::sync::Mutex<Vec<String>>>,
                        )>,
                         AxPath(path): AxPath<String>,
                         headers: axum::http::HeaderMap,
                         body: axum::body::Bytes| async move {
                            if let Some(a) = headers.get("authorization") {
                                seen.lock().unwrap().push(a.to_str().unwrap().to_owned());
                            }
                            let dest = root.join(&path);
                            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                            std::fs::write(dest, body).unwrap();
                            axum::http::StatusCode::CREATED
                        },
                    ),
                )
                .with_state(state);
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    (format!("http://site:secret@{addr}/dest"), seen)
}

#[test]
fn files_can_go_to_an_http_destination() {
    let s = server(Faults::default(), 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let received = tmp.path().join("received");
    let (dest, seen) = put_server(received.clone());
    let staging = tmp.path().join("staging");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut o = opts(&staging);
    o.upload = Some(dest);
    let sum = run(&client, &spec(&["Patient", "Condition"]), &o).unwrap();
    assert_eq!(sum.resources, 739);
    let got = ids(&received);
    assert_eq!(got["Patient"].len(), 100);
    assert_eq!(got["Condition"].len(), 639);
    assert!(received.join("manifest.json").exists());
    assert!(received.join("log.ndjson").exists());
    assert!(
        !staging.join("Patient.001.ndjson.gz").exists(),
        "staged files are removed once sent"
    );
    let auth = seen.lock().unwrap();
    assert!(
        !auth.is_empty() && auth.iter().all(|a| a.starts_with("Basic ")),
        "{auth:?}"
    );
}

#[test]
fn slow_downloads_and_a_rate_limit_still_finish() {
    let s = server(
        Faults {
            rate_limit: Some(20.0),
            retry_after: Some(1),
            slow_bytes_per_sec: Some(200_000),
            ..Faults::default()
        },
        200,
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let sum = run(&client, &spec(&["Patient", "Condition"]), &opts(&out)).unwrap();
    assert_eq!(sum.resources, 739);
    let got = ids(&out);
    assert!(got.values().flat_map(|m| m.values()).all(|n| *n == 1));
    assert_eq!(got["Condition"].len(), 639);
}

#[test]
fn server_refusals_are_one_clear_error() {
    let s = server(Faults::default(), 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut sp = spec(&["Patient"]);
    sp.level = Some(Level::Group("no-such-group".into()));
    let err = run(&client, &sp, &opts(&tmp.path().join("a")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 404") && err.contains("Group/no-such-group"),
        "{err}"
    );
    let err = run(&client, &spec(&["NotAType"]), &opts(&tmp.path().join("b")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 400") && err.contains("NotAType"),
        "{err}"
    );
}

#[test]
fn standard_names_and_plain_files_on_request() {
    let s = server(Faults::default(), 100_000);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let client = Client::new(&s.base_url, Auth::None, quick()).unwrap();
    let mut o = opts(&out);
    o.standard_names = true;
    o.compression = stratus_fhir::Compression::None;
    run(&client, &spec(&["Patient", "Condition"]), &o).unwrap();
    assert!(out.join("1.Patient.ndjson").exists());
    assert!(out.join("1.Condition.ndjson").exists());
    let text = std::fs::read_to_string(out.join("1.Patient.ndjson")).unwrap();
    assert_eq!(text.lines().count(), 100);
}
