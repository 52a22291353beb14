//! End-to-end tests of the `stratus` binary as a user runs it: real files, the shared
//! Synthea data set, exit codes and messages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;

mod common;
#[path = "../../stratus-import/tests/webdriver/mod.rs"]
mod webdriver;

use common::{p, run, s3_server, stratus, synthea};

#[test]
fn stats_counts_the_synthea_folder() {
    let r = run(&["ndjson", "stats", p(&synthea()), "--check-references"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    insta::assert_snapshot!("synthea_stats", r.stdout);
}

#[test]
fn stats_json_is_machine_readable() {
    let r = run(&["ndjson", "stats", "--json", p(&synthea())]);
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["total_resources"], 38_970);
    assert_eq!(v["types"]["Observation"]["resources"], 16_315);
    assert_eq!(v["types"]["Patient"]["resources"], 100);
    assert_eq!(v["bad_lines"], 0);
}

fn gz(parts: &[&str]) -> Vec<u8> {
    // One gzip member per part: exports concatenated from several writers look like this.
    let mut all = Vec::new();
    for part in parts {
        let mut e = flate2_encoder();
        e.write_all(part.as_bytes()).unwrap();
        all.extend(e.finish().unwrap());
    }
    all
}

fn flate2_encoder() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
}

#[test]
fn stats_reads_every_layout_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("error")).unwrap();
    std::fs::create_dir_all(d.join("deleted")).unwrap();
    std::fs::write(
        d.join("1.Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\r\n{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("Patient.000.ndjson.gz"),
        gz(&[
            "{\"resourceType\":\"Patient\",\"id\":\"p3\"}\n",
            "{\"resourceType\":\"Patient\",\"id\":\"p4\"}\n",
        ]),
    )
    .unwrap();
    let long = format!(
        "{{\"resourceType\":\"Condition\",\"id\":\"c2\",\"note\":[{{\"text\":\"{}\"}}]}}",
        "x".repeat(3000)
    );
    std::fs::write(
        d.join("Condition.ndjson.gz"),
        gz(&[&format!(
            "{{\"resourceType\":\"Condition\",\"id\":\"c1\"}}\n{long}\n{{\"resourceType\":\"Condition\"}}\n"
        )]),
    )
    .unwrap();
    std::fs::write(
        d.join("obs.ndjson"),
        "{\"resourceType\":\"Observation\",\"id\":\"o1\"}\n\n{\"resourceType\": \"Observation\", \"id\": \n[1,2]\n{\"resourceType\":\"Patient\",\"id\":\"px\"}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("error/OperationOutcome.ndjson"),
        "{\"resourceType\":\"OperationOutcome\",\"id\":\"e1\",\"issue\":[]}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("deleted/del.ndjson"),
        "{\"resourceType\":\"Bundle\",\"id\":\"b1\",\"type\":\"transaction\"}\n",
    )
    .unwrap();
    std::fs::write(d.join("log.ndjson"), "{\"eventId\":\"kickoff\"}\n").unwrap();
    std::fs::write(d.join("README.txt"), "not data").unwrap();

    let r = run(&["ndjson", "stats", p(d), "--max-line-bytes", "1K"]);
    assert_eq!(
        r.code, 3,
        "exit code 3 means 'finished but skipped bad input'"
    );
    let json = run(&["ndjson", "stats", "--json", p(d), "--max-line-bytes", "1K"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["types"]["Patient"]["resources"], 4);
    assert_eq!(v["types"]["Patient"]["files"], 2);
    assert_eq!(v["types"]["Condition"]["resources"], 1);
    assert_eq!(v["types"]["Observation"]["resources"], 1);
    assert_eq!(v["types"]["OperationOutcome"]["resources"], 1);
    assert_eq!(v["types"]["Bundle"]["resources"], 1);
    assert_eq!(v["bad_lines"], 5);
    assert_eq!(v["untyped_files"].as_array().unwrap().len(), 1);

    let mut bad: Vec<String> = r
        .stderr
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{}/", p(d)))
                .unwrap_or(l)
                .to_owned()
        })
        .collect();
    bad.sort();
    assert_eq!(bad.len(), 5, "{}", r.stderr);
    assert_eq!(
        bad[0],
        "Condition.ndjson.gz:2: line longer than the limit of 1024 bytes"
    );
    assert_eq!(bad[1], "Condition.ndjson.gz:3: Condition has no id");
    assert!(
        bad[2].starts_with("obs.ndjson:3: invalid JSON"),
        "{}",
        bad[2]
    );
    assert_eq!(bad[3], "obs.ndjson:4: not a JSON object");
    assert_eq!(
        bad[4],
        "obs.ndjson:5: expected a Observation but found a Patient"
    );
}

#[test]
fn multiply_scales_synthea_with_resolving_references() {
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x3");
    let r = run(&[
        "synth",
        "multiply",
        "--from",
        p(&synthea()),
        "--copies",
        "3",
        "--out",
        p(&dest),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stats = run(&["ndjson", "stats", "--json", "--check-references", p(&dest)]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["types"]["Patient"]["resources"], 300);
    assert_eq!(v["total_resources"], 3 * 38_970);
    assert_eq!(v["references"]["dangling"], 0);
    assert!(v["references"]["checked"].as_u64().unwrap() > 400_000);
    // Copy 1 is the original, byte for byte; the others keep its key order.
    let original = read_gz_lines(&synthea().join("Patient.ndjson.gz"));
    let copied = read_gz_lines(&dest.join("Patient.001.ndjson.gz"));
    assert_eq!(copied.len(), 300);
    let firsts: Vec<&String> = copied.iter().step_by(3).collect();
    assert_eq!(firsts, original.iter().collect::<Vec<_>>());
    assert!(copied[1].starts_with("{\"resourceType\":\"Patient\",\"id\":"));
    assert_eq!(copied[1].len(), original[0].len() + "-c1".len() * 3);
}

fn read_gz_lines(path: &Path) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let f = std::fs::File::open(path).unwrap();
    BufReader::new(flate2::read::MultiGzDecoder::new(f))
        .lines()
        .map(|l| l.unwrap())
        .collect()
}

#[test]
fn population_is_deterministic_and_resolves() {
    let out = tempfile::tempdir().unwrap();
    let a = out.path().join("a");
    let b = out.path().join("b");
    for (dir, threads) in [(&a, "1"), (&b, "2")] {
        let r = run(&[
            "synth",
            "population",
            "--patients",
            "60",
            "--seed",
            "7",
            "--out",
            p(dir),
            "--threads",
            threads,
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&a), names(&b));
    assert!(names(&a).contains(&"Patient.ndjson.gz".to_owned()));
    for n in names(&a) {
        assert_eq!(
            read_gz_lines(&a.join(&n)),
            read_gz_lines(&b.join(&n)),
            "{n} differs between runs"
        );
    }
    let stats = run(&["ndjson", "stats", "--json", "--check-references", p(&a)]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert!(v["types"]["Patient"]["resources"].as_u64().unwrap() >= 60);
    assert_eq!(v["references"]["dangling"], 0);
    for t in [
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Medication",
        "DocumentReference",
        "Binary",
        "DiagnosticReport",
        "Procedure",
        "Immunization",
        "AllergyIntolerance",
        "ServiceRequest",
        "MedicationDispense",
        "Specimen",
        "EpisodeOfCare",
        "Device",
        "Location",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Group",
    ] {
        assert!(
            v["types"][t]["resources"].as_u64().unwrap_or(0) > 0,
            "no {t} in a 60-patient population"
        );
    }
}

#[test]
fn bad_input_gets_one_clear_line() {
    let r = run(&["ndjson", "stats", "/no/such/folder"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "stratus: error: /no/such/folder: No such file or directory (os error 2)"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let r = run(&[
        "synth",
        "population",
        "--patients",
        "1",
        "--out",
        p(dir.path()),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is not empty (use --overwrite"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);

    let r = run(&[
        "synth", "multiply", "--from", "x", "--copies", "0", "--out", "y",
    ]);
    assert_eq!(r.code, 2, "clap usage errors exit 2");

    let r = run(&["ndjson", "stats", ".", "--max-line-bytes", "lots"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not a size"));
}

#[test]
fn help_explains_the_commands() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for word in ["synth", "ndjson", "demo", "Exit codes"] {
        assert!(r.stdout.contains(word), "--help lacks {word}");
    }
    let r = run(&["synth", "multiply", "--help"]);
    assert!(r.stdout.contains("Example: stratus synth multiply"));
    let r = run(&["ndjson", "stats", "--help"]);
    assert!(r.stdout.contains("file:line: reason"));
}

#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let r = run(&["demo", "--patients", "20", "--out", p(&out)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Everything is under"));
    assert!(
        r.stdout.contains("answered at http://127.0.0.1:"),
        "{}",
        r.stdout
    );
    assert!(out.join("synth/Patient.ndjson.gz").exists());
    assert!(
        r.stdout.contains("crawling 20 patients by MRN"),
        "{}",
        r.stdout
    );
    assert!(out.join("export/Condition.001.ndjson.gz").exists());
    assert!(out.join("export/001.first/.metadata").exists());
    // The bulk export with SMART auth, the ETL, the studies, their export and report.
    assert!(out.join("bulk/log.ndjson").exists(), "{}", r.stdout);
    assert!(out.join("lake/patient/_delta_log").is_dir());
    assert!(out.join("lake/core__count_patient/_delta_log").is_dir());
    assert!(out.join("library-export/core/core.zip").is_file());
    assert!(out.join("core-report.html").is_file());
    assert!(
        !r.stderr.contains("GET /fhir"),
        "the server's access log stays quiet"
    );
}

#[test]
fn config_file_sets_defaults_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("stratus.toml");
    std::fs::write(
        &cfg,
        "[ndjson.stats]\njson = true\ncheck-references = true\nmax-line-bytes = \"1K\"\n",
    )
    .unwrap();
    // max-line-bytes 1K from the file would make every Synthea Patient line too long;
    // the command line's 1M wins.
    let r = run(&[
        "-c",
        p(&cfg),
        "ndjson",
        "stats",
        p(&synthea()),
        "--max-line-bytes",
        "1M",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["references"]["dangling"], 0);

    let out = stratus()
        .env("STRATUS_CONFIG", &cfg)
        .args(["ndjson", "stats", p(&synthea())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "1K lines from the config apply");

    std::fs::write(&cfg, "[ndjson.stats]\nmax-lines = 3\n").unwrap();
    let r = run(&["-c", p(&cfg), "ndjson", "stats", "."]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("[ndjson.stats] has no option 'max-lines'"),
        "{}",
        r.stderr
    );
}

#[test]
fn corrupt_gzip_and_binary_garbage_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut broken = gz(&["{\"resourceType\":\"Patient\",\"id\":\"a\"}\n"
        .repeat(50)
        .as_str()]);
    let cut = broken.len() / 2;
    broken.truncate(cut);
    std::fs::write(d.join("Patient.ndjson.gz"), broken).unwrap();
    std::fs::write(
        d.join("Condition.ndjson"),
        [0u8, 159, 146, 150, b'\n', 255, 0],
    )
    .unwrap();
    std::fs::write(
        d.join("Encounter.ndjson"),
        "{\"resourceType\":\"Encounter\",\"id\":\"e\"}\n",
    )
    .unwrap();
    let r = run(&["ndjson", "stats", "--json", p(d)]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["types"]["Encounter"]["resources"], 1);
    assert_eq!(v["unreadable_files"].as_array().unwrap().len(), 1);
    assert!(
        r.stderr
            .contains("Patient.ndjson.gz: could not be read to the end")
    );
    assert!(r.stderr.contains("Condition.ndjson:1: invalid JSON"));
    assert!(r.stderr.contains("Condition.ndjson:2: invalid JSON"));
}

/// Rows per table of a Delta folder, read with the same delta-rs the sink uses.
fn delta_count(root: &std::path::Path, table: &str) -> usize {
    use stratus_lake::deltalake::DeltaTable;
    use stratus_lake::deltalake::datafusion::prelude::SessionContext;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url =
            stratus_lake::deltalake::ensure_table_uri(root.join(table).to_str().unwrap()).unwrap();
        let t = DeltaTable::try_from_url(url).await.unwrap();
        let ctx = SessionContext::new();
        t.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", t.table_provider().await.unwrap())
            .unwrap();
        let df = ctx.sql("select id from t").await;
        let df = match df {
            Ok(df) => df,
            Err(_) => ctx.sql("select * from t").await.unwrap(),
        };
        df.count().await.unwrap()
    })
}

#[test]
fn etl_into_delta_survives_kill_9_and_reruns_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let phi = dir.path().join("phi");
    let data = synthea();
    let args = [
        "etl",
        p(&data),
        p(&out),
        p(&phi),
        "--export-group",
        "g",
        "--export-timestamp",
        "2024-01-01",
        "--batch-size",
        "2000",
        "--no-table-optimization",
    ];
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args(args)
        .env_remove("STRATUS_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once the first tables are committed and before the last one is.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60)
        && !out.join("condition/_delta_log").exists()
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !out.join("procedure/_delta_log").exists(),
        "the run finished before it could be killed"
    );
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (t, n) in [
        ("encounter", 3697),
        ("patient", 100),
        ("condition", 639),
        ("observation", 16315),
        ("organization", 203),
        ("procedure", 2351),
    ] {
        assert_eq!(delta_count(&out, t), n, "{t}");
    }
    assert_eq!(delta_count(&out, "etl__completion_encounters"), 3697);
}

/// The lake URL the S3 tests write to, in the bucket [`etl_to_s3`] makes.
const S3_LAKE: &str = "s3://lake-bucket/cumulus";

/// Starts a real S3 server on loopback keeping its objects under `dir/s3`, and runs the ETL
/// of the Synthea patients and conditions into [`S3_LAKE`] there. Returns the server's
/// endpoint and the local folder that holds the lake's objects (s3s-fs keeps objects as
/// files, so the bucket folder is a local view of the lake).
fn etl_to_s3(dir: &Path) -> (String, std::path::PathBuf) {
    let s3root = dir.join("s3");
    std::fs::create_dir_all(s3root.join("lake-bucket")).unwrap();
    let endpoint = s3_server(&s3root);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args([
            "etl",
            p(&synthea()),
            S3_LAKE,
            p(&dir.join("phi")),
            "--task",
            "patient,condition",
            "--export-group",
            "g",
            "--export-timestamp",
            "2024-01-01",
        ])
        .env_remove("STRATUS_CONFIG")
        .envs(s3_env(&endpoint))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (endpoint, s3root.join("lake-bucket/cumulus"))
}

#[test]
fn etl_writes_delta_tables_and_job_files_to_s3() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = etl_to_s3(dir.path());
    assert_eq!(delta_count(&lake, "patient"), 100);
    assert_eq!(delta_count(&lake, "condition"), 639);
    let jobs: Vec<_> = std::fs::read_dir(lake.join("JobConfig")).unwrap().collect();
    assert_eq!(jobs.len(), 1);
    let job = jobs[0].as_ref().unwrap().path();
    assert!(job.join("job_config.json").exists() && job.join("patient.json").exists());
    assert!(
        !std::path::Path::new("s3:").exists(),
        "nothing written to a local s3: folder"
    );
}

/// The library on a lake in S3 (a real S3 server on loopback): a study built and stored
/// beside the source tables, its aggregates exported, then cleaned away.
#[test]
fn library_builds_exports_and_cleans_a_lake_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let (endpoint, lake) = etl_to_s3(dir.path());
    let cmd = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
            .args(args)
            .env_remove("STRATUS_CONFIG")
            .envs(s3_env(&endpoint))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {err}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = S3_LAKE;
    cmd(&[
        "library",
        "build",
        "--target",
        "discovery",
        "--lake",
        url,
        "-q",
    ]);
    assert!(lake.join("discovery__code_sources/_delta_log").is_dir());
    // s3s-fs may keep an emptied prefix as a folder; no object may remain in it.
    assert_eq!(
        walk_files(&lake.join("discovery__code_sources_tmp_found")),
        0
    );
    let out = dir.path().join("export");
    cmd(&[
        "library",
        "export",
        "--target",
        "discovery",
        "--lake",
        url,
        "--out",
        p(&out),
        "-q",
    ]);
    let csv =
        std::fs::read_to_string(out.join("discovery/discovery__code_sources.cube.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("condition,code,") && l.contains("snomed")),
        "{csv}"
    );
    let dropped = cmd(&[
        "library",
        "clean",
        "--target",
        "discovery",
        "--lake",
        url,
        "-q",
    ]);
    assert_eq!(dropped.trim(), "discovery__code_sources");
    assert_eq!(walk_files(&lake.join("discovery__code_sources")), 0);
    assert!(lake.join("condition/_delta_log").is_dir(), "sources stay");
}

/// The environment that points the AWS SDK at the loopback S3 server at `endpoint`.
fn s3_env(endpoint: &str) -> [(&'static str, String); 5] {
    [
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ]
}

/// How many files are under `dir` (0 when it does not exist).
fn walk_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The user's path through the library: the ETL into Delta Lake, the studies built on it,
/// the aggregates exported, and the report page opened in a real headless browser.
#[test]
fn library_builds_exports_and_reports_on_the_etl_output() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, phi) = (dir.path().join("lake"), dir.path().join("phi"));
    let r = run(&[
        "etl",
        p(&synthea()),
        p(&lake),
        p(&phi),
        "--export-group",
        "g",
        "--export-timestamp",
        "2024-01-01T00:00:00Z",
        "--allow-missing-resources",
        "-q",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = run(&["library", "list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("core") && r.stdout.contains("discovery"),
        "{}",
        r.stdout
    );

    let r = run(&[
        "library",
        "build",
        "--target",
        "core",
        "--target",
        "discovery",
        "--lake",
        p(&lake),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("core__count_patient: 12 rows"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("discovery__code_sources"), "{}", r.stderr);

    let out = dir.path().join("export");
    let r = run(&[
        "library",
        "export",
        "--target",
        "core",
        "--lake",
        p(&lake),
        "--out",
        p(&out),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        out.join("core/core.zip").display().to_string()
    );
    assert!(
        out.join("core/core__count_encounter_month.cube.parquet")
            .is_file()
    );
    assert!(!out.join("core/core__patient.cube.csv").exists());

    let page = dir.path().join("core.html");
    let r = run(&[
        "library",
        "report",
        "--target",
        "core",
        "--lake",
        p(&lake),
        "--out",
        p(&page),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains("<link"));

    // A wrong lake names itself.
    let r = run(&[
        "library",
        "build",
        "--target",
        "core",
        "--lake",
        p(&dir.path().join("nope")),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no such folder"), "{}", r.stderr);

    // The page in a real browser: charts with bars, and the tables below them.
    let Some((driver, browser)) = webdriver::tools() else {
        return;
    };
    let d = webdriver::Driver::start(&driver, &browser, &dir.path().join("profile"));
    d.goto(&format!("file://{}", page.display()));
    assert_eq!(d.script("return document.title"), "core study report");
    let charts = d.script("return document.querySelectorAll('figure[data-chart]').length");
    assert!(charts.as_u64().unwrap() >= 6, "{charts}");
    // Each chart drew bars with a width, and the bars are visible on the page.
    let empty = d.script(
        "return [...document.querySelectorAll('figure[data-chart]')]\
           .filter(f => !f.querySelector('rect.bar')).map(f => f.dataset.chart)",
    );
    assert_eq!(empty, serde_json::json!([]));
    let width = d.script(
        "return document.querySelector('figure[data-chart=gender] rect.bar').getBoundingClientRect().width",
    );
    assert!(width.as_f64().unwrap() > 10.0, "{width}");
    // The population total is the first row of count_patient.
    d.click("details[data-table=core__count_patient] summary");
    let first = d.script(
        "return document.querySelector('details[data-table=core__count_patient] tbody tr td').textContent",
    );
    assert_eq!(first, "100");
}
