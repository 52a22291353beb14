//! The ETL on real-shaped data and on bad input, into cumulus-etl's ndjson layout.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use stratus_etl::NdjsonSink;
use stratus_etl::pipeline::{EtlOptions, EtlProgress, run};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

fn options(input: &Path, out: &Path, phi: &Path) -> EtlOptions {
    EtlOptions {
        input: input.to_path_buf(),
        output: out.to_path_buf(),
        phi: phi.to_path_buf(),
        tasks: vec![],
        exclude: vec![],
        batch_size: 100_000,
        export_group: Some("g".into()),
        export_timestamp: Some("2024-01-01T00:00:00Z".into()),
        errors_to: None,
        comment: String::new(),
        allow_missing: false,
        output_format: "ndjson".into(),
    }
}

fn table(out: &Path, t: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join(t))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn phi_with_salt(dir: &Path) -> PathBuf {
    let phi = dir.join("phi");
    std::fs::create_dir_all(&phi).unwrap();
    std::fs::write(
        phi.join("codebook.json"),
        r#"{"version": 1, "codebook_id": "test-book", "id_salt": "31323334"}"#,
    )
    .unwrap();
    phi
}

#[test]
fn synthea_becomes_the_cumulus_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let phi = phi_with_salt(tmp.path());
    let mut sink = NdjsonSink::new(&out);
    let report = run(
        &options(&synthea(), &out, &phi),
        &mut sink,
        &EtlProgress::default(),
    )
    .unwrap();
    // The row counts cumulus-etl 4.3.6 gives on the same data (duplicate Organization and
    // Practitioner ids collapse within the batch).
    for (t, n) in [
        ("encounter", 3697),
        ("etl__completion_encounters", 3697),
        ("patient", 100),
        ("observation", 16315),
        ("organization", 203),
        ("practitioner", 203),
        ("etl__completion", 12),
    ] {
        assert_eq!(table(&out, t).len(), n, "{t}");
    }
    assert_eq!(report.bad_input(), 0);
    let pat = &table(&out, "patient")[0];
    assert_eq!(pat["id"].as_str().unwrap().len(), 64);
    assert!(pat.get("name").is_none() && pat.get("telecom").is_none());
    assert_eq!(pat["birthDate"].as_str().unwrap().len(), 4);
    let done = &table(&out, "etl__completion")[0];
    assert_eq!(done["table_name"], "encounter");
    assert_eq!(done["export_time"], "2024-01-01T00:00:00+00:00");
    assert!(done.get("export_url").is_none(), "no log, no export_url");
    let jobs: Vec<_> = std::fs::read_dir(out.join("JobConfig")).unwrap().collect();
    assert_eq!(jobs.len(), 1);
    assert!(phi.join("codebook-cached-mappings.json").exists());
    assert!(phi.join("context.json").exists());
}

#[test]
fn bad_lines_are_reported_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(input.join("deleted")).unwrap();
    std::fs::write(
        input.join("Condition.ndjson"),
        concat!(
            r#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"}}"#, "\n",
            "not json\n",
            r#"{"resourceType":"Condition"}"#, "\n",
            r#"{"resourceType":"Observation","id":"o1"}"#, "\n",
            r#"{"resourceType":"Condition","id":"c2","subject":{"reference":"https://elsewhere/Patient/1"}}"#, "\n",
            r#"{"resourceType":"Condition","id":"c3"}"#, "\n",
        ),
    )
    .unwrap();
    std::fs::write(
        input.join("deleted/Bundle.ndjson"),
        r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Condition/gone"}}]}"#,
    )
    .unwrap();
    std::fs::write(
        input.join("log.ndjson"),
        concat!(
            r#"{"exportId":"x","eventId":"kickoff","eventDetail":{"exportUrl":"http://h/fhir/Group/cohort/$export"}}"#, "\n",
            r#"{"exportId":"x","eventId":"status_complete","eventDetail":{"transactionTime":"2025-02-03T04:05:06.123Z"}}"#, "\n",
        ),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let errors = tmp.path().join("errors");
    let phi = phi_with_salt(tmp.path());
    let mut opts = options(&input, &out, &phi);
    opts.export_group = None;
    opts.export_timestamp = None;
    opts.errors_to = Some(errors.clone());
    let report = run(&opts, &mut NdjsonSink::new(&out), &EtlProgress::default()).unwrap();
    let rows = table(&out, "condition");
    assert_eq!(rows.len(), 2, "c1 and c3 survive");
    let t = &report.tasks[0];
    assert_eq!((t.bad_lines, t.rejected, t.deleted), (3, 1, 1));
    let rejected = std::fs::read_to_string(errors.join("condition/rejected.ndjson")).unwrap();
    assert_eq!(rejected.lines().count(), 4);
    assert!(rejected.contains("Could not parse"), "{rejected}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("Condition.ndjson:2: not JSON"))
    );
    // Group and time from the log; export_url too.
    let done = &table(&out, "etl__completion")[0];
    assert_eq!(done["group_name"], "cohort");
    assert_eq!(done["export_time"], "2025-02-03T04:05:06.123000+00:00");
    assert_eq!(done["export_url"], "http://h/fhir/Group/cohort/$export");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("condition/condition.meta")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["deleted"].as_array().unwrap().len(), 1);
}

#[test]
fn an_encounter_counts_twice_in_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let lines: String = (0..7)
        .map(|i| {
            format!("{{\"resourceType\":\"Encounter\",\"id\":\"e{i}\",\"status\":\"finished\"}}\n")
        })
        .collect();
    std::fs::write(input.join("Encounter.ndjson"), lines).unwrap();
    let out = tmp.path().join("out");
    let phi = phi_with_salt(tmp.path());
    let mut opts = options(&input, &out, &phi);
    opts.batch_size = 6;
    run(&opts, &mut NdjsonSink::new(&out), &EtlProgress::default()).unwrap();
    let files = |t: &str| std::fs::read_dir(out.join(t)).unwrap().count();
    assert_eq!(files("encounter"), 3, "3 + 3 + 1 encounters");
    assert_eq!(files("etl__completion_encounters"), 3);
    assert_eq!(table(&out, "encounter").len(), 7);
}

/// A sink that dies after a number of batches, leaving what it wrote, as a killed process
/// does (a kill cannot be timed to a batch; this can).
struct Dying {
    inner: NdjsonSink,
    left: usize,
}

impl stratus_etl::Sink for Dying {
    fn write_batch(&mut self, t: &str, rows: Vec<Vec<u8>>) -> Result<(), stratus_lake::LakeError> {
        if self.left == 0 {
            return Err(stratus_lake::LakeError::Usage("killed".into()));
        }
        self.left -= 1;
        self.inner.write_batch(t, rows)
    }
    fn touch(&mut self, t: &str) -> Result<(), stratus_lake::LakeError> {
        self.inner.touch(t)
    }
    fn delete(&mut self, t: &str, ids: &[String]) -> Result<(), stratus_lake::LakeError> {
        self.inner.delete(t, ids)
    }
    fn put_file(&mut self, rel: &str, b: &[u8]) -> Result<(), stratus_lake::LakeError> {
        self.inner.put_file(rel, b)
    }
    fn get_file(&mut self, rel: &str) -> Result<Option<Vec<u8>>, stratus_lake::LakeError> {
        self.inner.get_file(rel)
    }
    fn list(&mut self, rel: &str) -> Result<Vec<String>, stratus_lake::LakeError> {
        self.inner.list(rel)
    }
    fn batches(&mut self, t: &str) -> Option<usize> {
        self.inner.batches(t)
    }
    fn rollback(&mut self, t: &str, keep: usize) -> Result<(), stratus_lake::LakeError> {
        self.inner.rollback(t, keep)
    }
}

#[test]
fn an_interrupted_ndjson_run_continues_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let phi = phi_with_salt(tmp.path());
    let mut opts = options(&synthea(), &out, &phi);
    opts.batch_size = 1000;
    // Dies in the middle of the observation task (after encounter, patient, ...).
    let mut dying = Dying {
        inner: NdjsonSink::new(&out),
        left: 25,
    };
    assert!(run(&opts, &mut dying, &EtlProgress::default()).is_err());
    let partial = table(&out, "encounter").len();
    assert_eq!(partial, 3697, "encounter finished before the crash");
    let report = run(&opts, &mut NdjsonSink::new(&out), &EtlProgress::default()).unwrap();
    assert!(report.resumed);
    for (t, n) in [
        ("encounter", 3697),
        ("etl__completion_encounters", 3697),
        ("patient", 100),
        ("observation", 16315),
        ("procedure", 2351),
        ("etl__completion", 12),
    ] {
        let rows = table(&out, t);
        let ids: std::collections::HashSet<String> = rows
            .iter()
            .map(|r| {
                r.get("id")
                    .or(r.get("encounter_id"))
                    .or(r.get("table_name"))
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids.len(), rows.len(), "{t}: duplicates");
        assert_eq!(rows.len(), n, "{t}: rows lost or added");
    }
    assert_eq!(std::fs::read_dir(out.join("JobConfig")).unwrap().count(), 1);
}

#[test]
#[cfg(unix)]
fn a_managed_folder_is_read_through_its_top_level_links() {
    let tmp = tempfile::tempdir().unwrap();
    let managed = tmp.path().join("managed");
    // Two work folders; the top-level links point at the newer one's Condition and the
    // older one's Patient. Work folders sort before the links: they must not hide them.
    for (work, t) in [
        ("001.old", "Condition"),
        ("001.old", "Patient"),
        ("002.new", "Condition"),
    ] {
        std::fs::create_dir_all(managed.join(work)).unwrap();
        std::fs::copy(
            synthea().join(format!("{t}.ndjson.gz")),
            managed.join(work).join(format!("{t}.ndjson.gz")),
        )
        .unwrap();
    }
    std::fs::write(managed.join(".metadata"), r#"{"kind": "managed"}"#).unwrap();
    std::os::unix::fs::symlink(
        "002.new/Condition.ndjson.gz",
        managed.join("Condition.002.ndjson.gz"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "001.old/Patient.ndjson.gz",
        managed.join("Patient.001.ndjson.gz"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    let phi = phi_with_salt(tmp.path());
    let mut opts = options(&managed, &out, &phi);
    opts.tasks = vec!["condition".into(), "patient".into()];
    let report = run(&opts, &mut NdjsonSink::new(&out), &EtlProgress::default()).unwrap();
    assert_eq!(report.bad_input(), 0);
    // Each resource once: the links only, not the work folders as well.
    assert_eq!(table(&out, "condition").len(), 639);
    assert_eq!(table(&out, "patient").len(), 100);
}
