//! Ping and pull end to end, as separate `stratus` processes talking HTTP on 127.0.0.1:
//! the provider is `stratus serve --open` behind `stratus proxy`, the consumer is
//! `stratus import server`, and the mediator is `stratus import register` + `kickoff`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{Running, run, s3_server, spawn, synthea};
use serde_json::{Value, json};

/// Resource ids by type in every NDJSON(.gz) file under `dir` (log.ndjson and the error
/// and deleted folders aside).
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

/// Asserts two folders hold the same resources, naming the types that differ (not every
/// id of both, which would bury the answer).
fn assert_same(got: &BTreeMap<String, Vec<String>>, want: &BTreeMap<String, Vec<String>>) {
    let types: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let diff: Vec<String> = types
        .into_iter()
        .filter(|t| got.get(*t) != want.get(*t))
        .map(|t| {
            format!(
                "{t}: got {}, want {}",
                got.get(t).map_or(0, Vec::len),
                want.get(t).map_or(0, Vec::len)
            )
        })
        .collect();
    assert!(diff.is_empty(), "{}", diff.join("; "));
}

/// What the provider serves: the Synthea sample, each resource once (the sample repeats
/// some Organizations and Practitioners, and `stratus serve` serves the first of each).
fn provider_data() -> BTreeMap<String, Vec<String>> {
    let mut all = ids_by_type(&synthea());
    all.values_mut().for_each(|v| v.dedup());
    all
}

/// The provider (open server + proxy), the consumer, and both registrations.
struct Round {
    _serve: Running,
    _proxy: Running,
    consumer: Running,
    proxy_base: String,
    provider_key: PathBuf,
    client_id: String,
}

fn round(tmp: &Path, serve_flags: &[&str], store: &str, env: &[(&str, &str)]) -> Round {
    let data = synthea();
    let mut args = vec![
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--open",
        "--port",
        "0",
    ];
    args.extend_from_slice(serve_flags);
    let serve = spawn(&args, &[], "FHIR base URL: ");
    let proxy_state = tmp.join("proxy-state");
    let proxy = spawn(
        &[
            "proxy",
            "--upstream",
            &serve.value,
            "--port",
            "0",
            "--state",
            proxy_state.to_str().unwrap(),
        ],
        &[],
        "stratus proxy: ",
    );
    let proxy_base = proxy.value.split(" -> ").next().unwrap().to_owned();
    let state = tmp.join("import-state");
    let consumer = spawn(
        &[
            "import",
            "server",
            "--store",
            store,
            "--state",
            state.to_str().unwrap(),
            "--port",
            "0",
        ],
        env,
        "stratus import server: consumer at ",
    );

    // The consumer registers its public key at the provider (the proxy)...
    let http = reqwest::blocking::Client::new();
    let jwks: Value = http
        .get(format!("{}/jwks", consumer.value))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let origin = proxy_base.trim_end_matches("/fhir");
    let at_proxy: Value = http
        .post(format!("{origin}/auth/register"))
        .json(&json!({"jwks": jwks}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let consumer_id = at_proxy["client_id"].as_str().unwrap();

    // ...and the provider registers at the consumer, from the command line.
    let key = tmp.join("provider.jwks");
    let r = run(&["keys", "generate", "--out", key.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&[
        "import",
        "register",
        "--consumer",
        &consumer.value,
        "--jwks",
        key.to_str().unwrap(),
        "--consumer-client-id",
        consumer_id,
        "--provider-base",
        &proxy_base,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    Round {
        _serve: serve,
        _proxy: proxy,
        consumer,
        proxy_base,
        provider_key: key,
        client_id: r.stdout.trim().to_owned(),
    }
}

impl Round {
    fn kickoff(&self, extra: &[&str]) -> common::Run {
        let url = format!("{}/$export", self.proxy_base);
        let mut args = vec![
            "import",
            "kickoff",
            "--consumer",
            &self.consumer.value,
            "--export-url",
            &url,
            "--smart-client-id",
            &self.client_id,
            "--smart-key",
            self.provider_key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args)
    }
}

#[test]
fn the_consumer_ends_with_exactly_the_providers_data() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("imports");
    let r = round(tmp.path(), &[], store.to_str().unwrap(), &[]);

    let k = r.kickoff(&["--details"]);
    assert_eq!(k.code, 0, "{}\n{}", k.stdout, k.stderr);
    let job = k.stdout.lines().next().unwrap();
    assert!(
        job.starts_with(&format!("{}/job/", r.consumer.value)),
        "{}",
        k.stdout
    );
    assert!(k.stdout.contains("import complete: "), "{}", k.stdout);
    assert!(
        k.stdout.contains("outcome: 0 fatal, 0 error, 0 warning"),
        "{}",
        k.stdout
    );

    // Every resource of every type, once, as the provider holds them.
    let id = job.rsplit('/').next().unwrap();
    assert_same(&ids_by_type(&store.join(id)), &provider_data());
    // The pull went through the proxy: the consumer's manifest names proxy URLs only.
    let manifest = std::fs::read_to_string(store.join(id).join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    for f in manifest["output"].as_array().unwrap() {
        assert!(f["url"].as_str().unwrap().starts_with(&r.proxy_base), "{f}");
    }

    // status and cancel from the command line, with the same credentials.
    let key = r.provider_key.to_str().unwrap();
    let s = run(&[
        "import",
        "status",
        job,
        "--smart-client-id",
        &r.client_id,
        "--smart-key",
        key,
    ]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(s.stdout.contains("import complete"), "{}", s.stdout);
    let c = run(&[
        "import",
        "cancel",
        job,
        "--smart-client-id",
        &r.client_id,
        "--smart-key",
        key,
    ]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let s = run(&[
        "import",
        "status",
        job,
        "--smart-client-id",
        &r.client_id,
        "--smart-key",
        key,
    ]);
    assert_eq!(s.code, 1);
    assert!(s.stderr.contains("404"), "{}", s.stderr);
    assert_eq!(s.stderr.trim().lines().count(), 1, "{}", s.stderr);
}

#[test]
fn an_unregistered_export_url_is_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("imports");
    let r = round(tmp.path(), &[], store.to_str().unwrap(), &[]);
    let k = run(&[
        "import",
        "kickoff",
        "--consumer",
        &r.consumer.value,
        "--export-url",
        "http://169.254.169.254/latest/$export",
        "--smart-client-id",
        &r.client_id,
        "--smart-key",
        r.provider_key.to_str().unwrap(),
    ]);
    assert_eq!(k.code, 1);
    assert!(
        k.stderr.contains("HTTP 403") && k.stderr.contains("not under a FHIR base"),
        "{}",
        k.stderr
    );
    assert_eq!(k.stderr.trim().lines().count(), 1, "{}", k.stderr);
    let k = r.kickoff(&["--export-type", "push"]);
    assert_eq!(
        k.code, 2,
        "clap refuses an unknown export type: {}",
        k.stderr
    );
}

#[test]
fn an_s3_store_survives_a_killed_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let endpoint = s3_server(&root);
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ];
    // Slow downloads, so that the consumer is killed in the middle of the pull.
    let mut r = round(
        tmp.path(),
        &["--fault-slow", "200K"],
        "s3://lake/imports",
        &env,
    );
    let k = r.kickoff(&[
        "--no-wait",
        "--type",
        "Patient,Condition,Encounter,Procedure",
    ]);
    assert_eq!(k.code, 0, "{}", k.stderr);
    let job = k.stdout.trim().to_owned();
    let id = job.rsplit('/').next().unwrap().to_owned();
    let partial = tmp.path().join("import-state/jobs").join(&id).join("data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_dir(&partial)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".gz"))
        })
        .unwrap_or(false)
    {
        assert!(std::time::Instant::now() < deadline, "no download started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // kill -9: no chance to save anything more.
    let port = r.consumer.value.rsplit(':').next().unwrap().to_owned();
    r.consumer.child.kill().unwrap();
    r.consumer.child.wait().unwrap();
    assert!(
        !root.join("lake/imports").join(&id).exists(),
        "partial files reached the store"
    );
    let state = tmp.path().join("import-state");
    r.consumer = spawn(
        &[
            "import",
            "server",
            "--store",
            "s3://lake/imports",
            "--state",
            state.to_str().unwrap(),
            "--port",
            &port,
        ],
        &env,
        "stratus import server: consumer at ",
    );
    let key = r.provider_key.to_str().unwrap();
    let s = run(&[
        "import",
        "status",
        &job,
        "--wait",
        "--smart-client-id",
        &r.client_id,
        "--smart-key",
        key,
    ]);
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
    let mut want = provider_data();
    want.retain(|t, _| ["Patient", "Condition", "Encounter", "Procedure"].contains(&t.as_str()));
    assert_same(&ids_by_type(&root.join("lake/imports").join(&id)), &want);
    assert!(
        root.join("lake/imports")
            .join(&id)
            .join("manifest.json")
            .exists()
    );
}
