//! `stratus keys` and `stratus serve` as a new user runs them: keys made by the CLI, a
//! server started by the CLI, and a real SMART token flow over HTTP against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{s3_server, synthea};
use stratus_smart::keys::SigningKey;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stratus"))
}

fn stratus(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .env_remove("STRATUS_CONFIG")
        .env_remove("STRATUS_LOG")
        .output()
        .unwrap()
}

/// `stratus serve ARGS` on a free port, until dropped; `value` is its FHIR base URL.
fn serve(args: &[&str]) -> common::Running {
    let mut all = vec!["serve", "--port", "0"];
    all.extend_from_slice(args);
    common::spawn(&all, &[], "FHIR base URL: ")
}

#[test]
fn keys_generate_public_convert() {
    let tmp = tempfile::tempdir().unwrap();
    let jwks = tmp.path().join("client.jwks");
    let j = jwks.to_str().unwrap();
    let out = stratus(&["keys", "generate", "--alg", "ES384", "--out", j]);
    assert!(out.status.success(), "{out:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&jwks).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&jwks).unwrap()).unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], keys[1]["kid"]);
    assert!(keys.iter().any(|k| k.get("d").is_some()));

    // Refuses to overwrite a key without --force; says so naming the file.
    let again = stratus(&["keys", "generate", "--out", j]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8(again.stderr).unwrap();
    assert!(
        err.contains("client.jwks") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let public = stratus(&["keys", "public", j]);
    assert!(public.status.success());
    let p: Value = serde_json::from_slice(&public.stdout).unwrap();
    assert_eq!(p["keys"].as_array().unwrap().len(), 1);
    assert!(p["keys"][0].get("d").is_none());
    assert_eq!(p["keys"][0]["key_ops"][0], "verify");

    // A PEM private key converts to the same shape; the kid is stable.
    let key = SigningKey::load(&jwks, None).unwrap();
    let pem = tmp.path().join("key.pem");
    let pem_text = stratus_pem(&key);
    std::fs::write(&pem, pem_text).unwrap();
    let a = stratus(&["keys", "convert", pem.to_str().unwrap()]);
    let b = stratus(&["keys", "convert", pem.to_str().unwrap()]);
    assert!(a.status.success(), "{a:?}");
    assert_eq!(a.stdout, b.stdout);
    let c: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(c["keys"][0]["x"], p["keys"][0]["x"]);

    // Not a key: one line naming the file.
    let bad = tmp.path().join("notes.txt");
    std::fs::write(&bad, "hello").unwrap();
    let out = stratus(&["keys", "convert", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// The PKCS#8 PEM of an ES384 key, through the same library the server uses.
fn stratus_pem(key: &SigningKey) -> String {
    use jwt_simple::prelude::ES384KeyPair;
    let mut jwk = key.private_jwk();
    for m in ["ext", "key_ops", "use"] {
        jwk.as_object_mut().unwrap().remove(m);
    }
    ES384KeyPair::from_jwk(&jwk.to_string())
        .unwrap()
        .to_pem()
        .unwrap()
}

#[test]
fn serve_with_a_client_made_by_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("client.jwks");
    let public = tmp.path().join("public.jwks");
    assert!(
        stratus(&[
            "keys",
            "generate",
            "--alg",
            "RS384",
            "--out",
            private.to_str().unwrap()
        ])
        .status
        .success()
    );
    let out = stratus(&["keys", "public", private.to_str().unwrap()]);
    std::fs::write(&public, out.stdout).unwrap();
    let data = synthea();
    let s = serve(&[
        "--data",
        data.to_str().unwrap(),
        "--client",
        &format!("site={}", public.display()),
    ]);
    assert!(s.before[0].contains("38,472 resources"), "{:?}", s.before);
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let conf: Value = c
        .get(format!("{}/.well-known/smart-configuration", s.value))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token_url = conf["token_endpoint"].as_str().unwrap();
    let key = SigningKey::load(&private, None).unwrap();
    let assertion =
        stratus_smart::assertion::sign(&key, "site", token_url, Duration::from_secs(300), None)
            .unwrap();
    let t: Value = c
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/*.rs"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = t["access_token"].as_str().expect("a token");
    let r = c
        .get(format!("{}/Patient?_count=2", s.value))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let b: Value = c
        .get(format!("{}/Patient?_count=2", s.value))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(b["entry"].as_array().unwrap().len(), 2);
}

#[test]
fn serve_refuses_bad_setups_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = stratus(&["serve", "--data", tmp.path().to_str().unwrap(), "--open"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no FHIR NDJSON files"), "{err}");
    let faults = tmp.path().join("faults.toml");
    std::fs::write(&faults, "rate-500 = 2.0\n").unwrap();
    let data = synthea();
    let out = stratus(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--open",
        "--faults",
        faults.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("rate-500"), "{err}");
    std::fs::write(&faults, "nope = 1\n").unwrap();
    let out = stratus(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--open",
        "--faults",
        faults.to_str().unwrap(),
    ]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("faults.toml") && err.contains("nope"), "{err}");
}

#[test]
fn bulk_exports_from_serve_with_smart_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("client.jwks");
    let public = tmp.path().join("public.jwks");
    assert!(
        stratus(&[
            "keys",
            "generate",
            "--alg",
            "ES384",
            "--out",
            private.to_str().unwrap()
        ])
        .status
        .success()
    );
    std::fs::write(
        &public,
        stratus(&["keys", "public", private.to_str().unwrap()]).stdout,
    )
    .unwrap();
    let data = synthea();
    let s = serve(&[
        "--data",
        data.to_str().unwrap(),
        "--client",
        &format!("site={}", public.display()),
        "--fault-transient-polls",
        "1",
    ]);
    let out = tmp.path().join("export");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "bulk",
            "--fhir-url",
            s.value.as_str(),
            "--out",
            out.to_str().unwrap(),
            "--type",
            "Patient,Condition",
            "--smart-client-id",
            "site",
            "--smart-key",
            private.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        stratus(&args)
    };
    let r = run(&[]);
    let stdout = String::from_utf8(r.stdout).unwrap();
    assert!(
        r.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(stdout.contains("739 resources in 2 files"), "{stdout}");
    assert!(out.join("Patient.001.ndjson.gz").exists());
    assert!(out.join("manifest.json").exists() && out.join("log.ndjson").exists());
    // Running it again is refused with one line, since the folder holds a complete export.
    let r = run(&[]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8(r.stderr).unwrap();
    assert!(err.contains("already holds this export"), "{err}");
    // A wrong client id: one line naming the cause.
    let r = stratus(&[
        "bulk",
        "--fhir-url",
        s.value.as_str(),
        "--out",
        tmp.path().join("other").to_str().unwrap(),
        "--smart-client-id",
        "nobody",
        "--smart-key",
        private.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8(r.stderr).unwrap();
    assert!(
        err.contains("nobody") && err.contains("invalid_client"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn bulk_writes_to_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join("lake")).unwrap();
    let endpoint = s3_server(&root);
    let data = synthea();
    let s = serve(&["--data", data.to_str().unwrap(), "--open"]);
    let out = Command::new(bin())
        .args([
            "bulk",
            "--fhir-url",
            s.value.as_str(),
            "--global",
            "--type",
            "Patient,Condition",
            "--out",
            "s3://lake/exports/one",
            "--staging",
            tmp.path().join("staging").to_str().unwrap(),
        ])
        .env_remove("STRATUS_CONFIG")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = root.join("lake/exports/one");
    for f in [
        "Patient.001.ndjson.gz",
        "Condition.001.ndjson.gz",
        "manifest.json",
        "log.ndjson",
    ] {
        assert!(dir.join(f).exists(), "{f} in {}", dir.display());
    }
    let stats = stratus(&["ndjson", "stats", "--json", dir.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v["total_resources"], 739);

    // Wrong credentials: one clear line from S3.
    let out = Command::new(bin())
        .args([
            "bulk",
            "--fhir-url",
            s.value.as_str(),
            "--global",
            "--type",
            "Patient",
            "--out",
            "s3://lake/exports/two",
            "--staging",
            tmp.path().join("staging2").to_str().unwrap(),
        ])
        .env_remove("STRATUS_CONFIG")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("s3://lake/exports/two"), "{err}");
}

#[test]
fn bulk_names_a_bad_key_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.jwks");
    std::fs::write(&junk, "not a key").unwrap();
    for key in [junk.to_str().unwrap(), "/no/such/key.pem"] {
        let r = stratus(&[
            "bulk",
            "--fhir-url",
            "http://127.0.0.1:9/fhir",
            "--out",
            tmp.path().join("x").to_str().unwrap(),
            "--smart-client-id",
            "site",
            "--smart-key",
            key,
        ]);
        assert_eq!(r.status.code(), Some(1));
        let err = String::from_utf8(r.stderr).unwrap();
        assert!(err.contains(key), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// Ids per type of a work folder's crawl files, failing on duplicates.
fn crawl_ids(dir: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    use std::io::Read;
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(t) = name.strip_suffix(".ndjson.gz") else {
            continue;
        };
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let set = out.entry(t.to_owned()).or_default();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap().to_owned();
            assert!(set.insert(id.clone()), "{t}/{id} written twice");
        }
    }
    out
}

/// The resources of one type in the Synthea sample.
fn synthea_resources(t: &str) -> Vec<Value> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(
        std::fs::File::open(synthea().join(format!("{t}.ndjson.gz"))).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the Synthea sample holds for these patients, per type.
fn synthea_truth(
    patients: &std::collections::BTreeSet<String>,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for t in ["Patient", "Condition", "Encounter", "Observation"] {
        for v in synthea_resources(t) {
            let owner = if t == "Patient" {
                v["id"].as_str()
            } else {
                v["subject"]["reference"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("Patient/"))
            };
            if owner.is_some_and(|o| patients.contains(o)) {
                out.entry(t.to_owned())
                    .or_default()
                    .insert(v["id"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

#[test]
fn export_crawl_survives_kill_9_and_resumes_without_duplicates() {
    let srv = serve(&[
        "--data",
        synthea().to_str().unwrap(),
        "--open",
        "--fault-latency",
        "20..30",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let patients: std::collections::BTreeSet<String> = synthea_resources("Patient")
        .iter()
        .take(60)
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    let list = patients.iter().cloned().collect::<Vec<_>>().join(",");
    let args = [
        "-q",
        "export",
        "--fhir-url",
        &srv.value,
        "--export-mode",
        "crawl",
        "--id-list",
        &list,
        "--type",
        "Patient,Condition,Encounter,Observation",
        "--no-default-filters",
        "--hydration-tasks",
        "none",
        "--nickname",
        "q4",
        "--checkpoint-every",
        "50ms",
        out.to_str().unwrap(),
    ];
    // Killed mid-crawl with no chance to clean up, like a power cut.
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("STRATUS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = out.join("001.q4");
    let journal = dir.join(".crawl/Observation/journal.ndjson");
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let committed = std::fs::read_to_string(&journal)
            .map(|t| t.lines().filter(|l| l.contains("\"chunk\"")).count())
            .unwrap_or(0);
        if committed >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !dir.join("Observation.ndjson.gz").exists(),
        "the crawl finished before it could be killed; slow the server down"
    );

    let again = stratus(&args);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("crawl export into"), "{stdout}");
    assert_eq!(crawl_ids(&dir), synthea_truth(&patients));
    assert!(!dir.join(".crawl").exists());
    assert!(out.join("Condition.001.ndjson.gz").exists());
}

#[test]
fn export_names_bad_input_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("cohort.csv");
    std::fs::write(&csv, "name,dob\nx,y\n").unwrap();
    let out = tmp.path().join("out");
    let r = stratus(&[
        "export",
        "--fhir-url",
        "http://127.0.0.1:9/fhir",
        "--id-file",
        csv.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("cohort.csv:1: has no 'id' or 'mrn' header"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn etl_from_a_fhir_url_exports_first() {
    let srv = serve(&["--data", synthea().to_str().unwrap(), "--open"]);
    let tmp = tempfile::tempdir().unwrap();
    let (out, phi, export) = (
        tmp.path().join("tables"),
        tmp.path().join("phi"),
        tmp.path().join("export"),
    );
    let r = stratus(&[
        "-q",
        "etl",
        &srv.value,
        out.to_str().unwrap(),
        phi.to_str().unwrap(),
        "--output-format",
        "ndjson",
        "--task",
        "patient,condition",
        "--export-to",
        export.to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(export.join("log.ndjson").exists());
    let rows = |t: &str| -> Vec<Value> {
        std::fs::read_to_string(out.join(t).join(format!("{t}.000.ndjson")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    assert_eq!(rows("patient").len(), 100);
    assert_eq!(rows("condition").len(), 639);
    // Group and time come from the export's own log: a system-level export has group "".
    let done = &rows("etl__completion")[0];
    assert_eq!(done["group_name"], "");
    assert!(done["export_url"].as_str().unwrap().contains("$export"));
}
