//! Managed exports against `stratus serve` on 127.0.0.1 with a synthetic population: every
//! resource of the cohort arrives exactly once (also under injected faults and after an
//! interruption), deletions and new patients are found, hydration fetches each reference
//! once, and the layout is the one smart-fetch and cumulus-etl read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use stratus_fetch::export::{ExportOptions, ExportProgress, ExportReport, Mode, run};
use stratus_fetch::{FetchError, files, hydrate};
use stratus_fhir::writer::Compression;
use stratus_http::{Auth, Client, HttpConfig};
use stratus_server::{Faults, ServeConfig, Server};
use stratus_synth::population::{MRN_SYSTEM, PopulationConfig, generate};

struct World {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    out: PathBuf,
    server: Server,
}

fn world(patients: u64, faults: Faults) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    generate(
        &PopulationConfig {
            patients,
            seed: 11,
            compression: Compression::None,
        },
        &data,
        &|_| {},
    )
    .unwrap();
    let mut c = ServeConfig::new(&data);
    c.port = 0;
    c.open = true;
    c.faults = faults;
    c.work_dir = Some(tmp.path().join("serve"));
    let server = stratus_server::start(c).unwrap();
    World {
        out: tmp.path().join("out"),
        data,
        _tmp: tmp,
        server,
    }
}

fn client(w: &World, headers: Vec<(String, String)>) -> Arc<Client> {
    let config = HttpConfig {
        headers,
        backoff: Duration::from_millis(10),
        max_delay: Duration::from_secs(1),
        max_retries: 10,
        max_in_flight: 5,
        ..HttpConfig::default()
    };
    Arc::new(Client::new(&w.server.base_url, Auth::None, config).unwrap())
}

fn read(path: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    files::for_each(&[path.to_path_buf()], |v| out.push(v.clone())).unwrap();
    out
}

/// MRN -> Patient ids holding it, in file order.
fn mrns(w: &World) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for p in read(&w.data.join("Patient.ndjson")) {
        let id = p["id"].as_str().unwrap().to_owned();
        for i in p["identifier"].as_array().unwrap() {
            if i["system"] == MRN_SYSTEM {
                let mrn = i["value"].as_str().unwrap().to_owned();
                match out.iter_mut().find(|(m, _)| *m == mrn) {
                    Some((_, ids)) => ids.push(id.clone()),
                    None => out.push((mrn, vec![id.clone()])),
                }
            }
        }
    }
    out
}

/// What the server holds for these patients, per patient-compartment type.
fn truth(w: &World, patients: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in stratus_fetch::types::PATIENT_TYPES {
        let path = w.data.join(format!("{t}.ndjson"));
        if !path.exists() {
            continue;
        }
        for r in read(&path) {
            let owner = if t == "Patient" {
                r["id"].as_str().map(str::to_owned)
            } else {
                ["subject", "patient"].iter().find_map(|f| {
                    r[f]["reference"]
                        .as_str()
                        .and_then(|s| s.strip_prefix("Patient/"))
                        .map(str::to_owned)
                })
            };
            if owner.is_some_and(|o| patients.contains(&o)) {
                out.entry(t.to_owned())
                    .or_default()
                    .insert(r["id"].as_str().unwrap().to_owned());
            }
        }
    }
    out
}

/// Ids per type in a work folder's crawl files, failing on any duplicate.
fn crawled(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in stratus_fetch::types::PATIENT_TYPES {
        let path = dir.join(format!("{t}.ndjson.gz"));
        if !path.exists() {
            continue;
        }
        let set = out.entry(t.to_owned()).or_default();
        for r in read(&path) {
            let id = r["id"].as_str().unwrap().to_owned();
            assert!(set.insert(id.clone()), "{t}/{id} written twice");
        }
    }
    out
}

fn options(w: &World, cohort: Vec<String>, nickname: &str) -> ExportOptions {
    ExportOptions {
        out: w.out.clone(),
        group: None,
        group_nickname: None,
        cohort: Some(cohort),
        id_file: None,
        id_system: Some(MRN_SYSTEM.into()),
        nickname: Some(nickname.into()),
        mode: Mode::Crawl,
        since: None,
        since_mode: "auto".into(),
        types: vec![],
        type_filters: vec![],
        default_filters: false,
        hydration: vec![],
        compression: Compression::FAST_GZIP,
        inline: Default::default(),
        workers: 10,
        policy: Default::default(),
        bulk_parallel: 4,
        today: "2026-11-23".into(),
    }
}

async fn export(
    client: &Arc<Client>,
    opts: &ExportOptions,
    stop: Arc<AtomicBool>,
) -> Result<ExportReport, FetchError> {
    run(
        Arc::clone(client),
        opts,
        Arc::new(ExportProgress::default()),
        stop,
    )
    .await
}

fn cohort_of(list: &[(String, Vec<String>)]) -> (Vec<String>, BTreeSet<String>) {
    (
        list.iter().map(|(m, _)| m.clone()).collect(),
        list.iter()
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crawl_under_faults_gets_every_resource_exactly_once() {
    let w = world(
        40,
        Faults {
            seed: 3,
            latency_ms: Some([0, 2]),
            rate_429: 0.04,
            rate_500: 0.04,
            rate_503: 0.04,
            retry_after: Some(0),
            ..Faults::default()
        },
    );
    let c = client(&w, vec![]);
    let all = mrns(&w);
    let (cohort, patients) = cohort_of(&all[..30]);
    let report = export(&c, &options(&w, cohort, "first"), Arc::default())
        .await
        .unwrap();
    let dir = w.out.join("001.first");
    assert_eq!(report.workdir, dir);
    let want = truth(&w, &patients);
    let got = crawled(&dir);
    assert_eq!(got, want, "the crawl differs from the server's data");
    assert!(want["Observation"].len() > 100);
    // The managed layout.
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".metadata")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "output");
    assert_eq!(meta["complete"], true);
    assert_eq!(meta["done"].as_object().unwrap().len(), 15);
    assert!(
        !dir.join(".crawl").exists(),
        "crawl state is removed when done"
    );
    let top: Value =
        serde_json::from_str(&std::fs::read_to_string(w.out.join(".metadata")).unwrap()).unwrap();
    assert_eq!(top["kind"], "managed");
    assert_eq!(top["fhir-url"], w.server.base_url.as_str());
    let log = std::fs::read_to_string(dir.join("log.ndjson")).unwrap();
    let kickoff: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(kickoff["exportId"], "fake-log");
    assert!(
        kickoff["eventDetail"]["exportUrl"]
            .as_str()
            .unwrap()
            .ends_with("/Group/out/$export")
    );
    let link = std::fs::read_link(w.out.join("Condition.001.ndjson.gz")).unwrap();
    assert_eq!(link, Path::new("001.first/Condition.ndjson.gz"));
    assert!(report.lookups.not_found.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_crawl_resumes_per_patient_without_duplicates() {
    let w = world(
        40,
        Faults {
            latency_ms: Some([1, 3]),
            ..Faults::default()
        },
    );
    let all = mrns(&w);
    let (cohort, patients) = cohort_of(&all[..30]);
    let opts = options(&w, cohort, "q1");

    // A clean run elsewhere gives the request count of a full crawl.
    let full_client = client(&w, vec![]);
    let mut clean = opts.clone();
    clean.out = w.out.with_file_name("clean");
    export(&full_client, &clean, Arc::default()).await.unwrap();
    let full_requests = full_client.budget().requests();

    // Stop once a third of the work is done, as Ctrl-C does.
    let c1 = client(&w, vec![]);
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(ExportProgress::default());
    let watcher = {
        let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
        tokio::spawn(async move {
            loop {
                let total = progress.crawl.units_total.load(Ordering::Relaxed);
                let done = progress.crawl.units_done.load(Ordering::Relaxed);
                if total > 100 && done * 3 >= total {
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let first = run(Arc::clone(&c1), &opts, progress, Arc::clone(&stop)).await;
    watcher.await.unwrap();
    assert!(
        matches!(first, Err(FetchError::Interrupted)),
        "{:?}",
        first.map(|r| r.workdir)
    );
    let dir = w.out.join("001.q1");
    assert!(dir.join(".crawl").exists());

    let c2 = client(&w, vec![]);
    export(&c2, &opts, Arc::default()).await.unwrap();
    assert_eq!(crawled(&dir), truth(&w, &patients));
    let (r1, r2) = (c1.budget().requests(), c2.budget().requests());
    assert!(
        r2 < full_requests * 9 / 10,
        "the rerun should skip finished patients: {r2} requests against {full_requests} for a full crawl ({r1} before the stop)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_export_finds_deleted_and_new_patients_and_relinks() {
    let w = world(40, Faults::default());
    let c = client(&w, vec![]);
    let all = mrns(&w);
    let (a, a_patients) = cohort_of(&all[0..20]);
    let (b, b_patients) = cohort_of(&all[2..22]);
    export(&c, &options(&w, a, "a"), Arc::default())
        .await
        .unwrap();
    let report = export(&c, &options(&w, b, "b"), Arc::default())
        .await
        .unwrap();

    let gone: BTreeSet<String> = a_patients.difference(&b_patients).cloned().collect();
    let new: BTreeSet<String> = b_patients.difference(&a_patients).cloned().collect();
    let dir = w.out.join("002.b");
    let deleted: BTreeSet<String> = read(&dir.join("deleted/Bundle.Patient.ndjson.gz"))
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "transaction");
            let url = b["entry"][0]["request"]["url"].as_str().unwrap();
            url.strip_prefix("Patient/").unwrap().to_owned()
        })
        .collect();
    assert_eq!(deleted, gone);
    let gone_conditions = truth(&w, &gone).remove("Condition").unwrap_or_default();
    let deleted_conditions = read(&dir.join("deleted/Bundle.Condition.ndjson.gz")).len();
    assert_eq!(deleted_conditions, gone_conditions.len());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".metadata")).unwrap()).unwrap();
    let listed: BTreeSet<String> = meta["newPatients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, new);
    assert_eq!(report.new_patients, new.len());
    // Every top-level link points into the newest full export.
    for entry in std::fs::read_dir(&w.out).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            assert!(target.starts_with("002.b"), "{target:?}");
        }
    }
    // A nickname of an older folder is refused.
    let err = export(&c, &options(&w, vec!["x".into()], "a"), Arc::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("too old"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_mrns_and_outcomes_in_bundles_are_recorded_not_fatal() {
    let w = world(10, Faults::default());
    // Lenient handling makes the server ignore the unknown parameter and say so with an
    // OperationOutcome entry in each search Bundle.
    let c = client(&w, vec![("Prefer".into(), "handling=lenient".into())]);
    let all = mrns(&w);
    let mut cohort: Vec<String> = all[..3].iter().map(|(m, _)| m.clone()).collect();
    cohort.push("no-such-mrn".into());
    let mut opts = options(&w, cohort, "errs");
    opts.types = vec!["Patient,Condition".into()];
    opts.type_filters = vec!["Condition?no-such-param=1".into()];
    let report = export(&c, &opts, Arc::default()).await.unwrap();
    assert_eq!(report.lookups.not_found, ["no-such-mrn"]);
    let errors = read(&w.out.join("001.errs/error/OperationOutcome.ndjson.gz"));
    let text = serde_json::to_string(&errors).unwrap();
    assert!(text.contains("No patient matches identifier"), "{text}");
    assert!(text.contains("no-such-param"), "{text}");
    assert!(
        errors
            .iter()
            .all(|e| e["resourceType"] == "OperationOutcome")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydration_fetches_each_reference_once() {
    let w = world(20, Faults::default());
    let c = client(&w, vec![]);
    let all = mrns(&w);
    let (cohort, _) = cohort_of(&all[..15]);
    let mut opts = options(&w, cohort, "h");
    opts.hydration = hydrate::parse_groups(&["all".into()]).unwrap();
    export(&c, &opts, Arc::default()).await.unwrap();
    let dir = w.out.join("001.h");
    let mut meds = BTreeSet::new();
    for t in ["MedicationRequest", "MedicationDispense"] {
        for r in read(&dir.join(format!("{t}.ndjson.gz"))) {
            if let Some(m) = r["medicationReference"]["reference"].as_str() {
                meds.insert(m.strip_prefix("Medication/").unwrap().to_owned());
            }
        }
    }
    let got: Vec<String> = read(&dir.join("Medication.referenced.ndjson.gz"))
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), meds);
    assert_eq!(got.len(), meds.len(), "no Medication twice");
    // Notes are inlined.
    let docs = read(&dir.join("DocumentReference.ndjson.gz"));
    assert!(
        docs.iter()
            .any(|d| d["content"][0]["attachment"]["data"].is_string())
    );
    // A second pass has nothing left to fetch.
    let before = c.budget().requests();
    let hopts = hydrate::HydrateOptions {
        groups: opts.hydration.clone(),
        compression: Compression::FAST_GZIP,
        inline: Default::default(),
        workers: 10,
    };
    let again = hydrate::run(Arc::clone(&c), &dir, &dir, &hopts, Arc::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.iter().map(|r| r.new).sum::<u64>(), 0);
    assert!(c.budget().requests() - before < 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_mode_export_fills_the_same_layout() {
    let w = world(15, Faults::default());
    let c = client(&w, vec![]);
    let mut opts = options(&w, vec![], "bulk");
    opts.cohort = None;
    opts.mode = Mode::Bulk;
    opts.types = vec!["Patient,Condition,Encounter".into()];
    let report = export(&c, &opts, Arc::default()).await.unwrap();
    assert_eq!(report.mode, "bulk");
    let dir = w.out.join("001.bulk");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".metadata")).unwrap()).unwrap();
    let done = meta["done"].as_object().unwrap();
    assert_eq!(done.len(), 3);
    assert!(done.values().all(|v| *v == done["Patient"]));
    let conditions: usize = files::of_type(&dir, "Condition")
        .unwrap()
        .iter()
        .map(|p| read(p).len())
        .sum();
    assert_eq!(conditions, read(&w.data.join("Condition.ndjson")).len());
    assert!(w.out.join("Condition.001.ndjson.gz").exists());
    assert!(dir.join("log.ndjson").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_auto_fetches_only_changes_and_deletes_nothing() {
    let w = world(20, Faults::default());
    let c = client(&w, vec![]);
    let all = mrns(&w);
    let (cohort, patients) = cohort_of(&all[..12]);

    let mut opts = options(&w, cohort.clone(), "first");
    opts.since = Some("auto".into());
    let err = export(&c, &opts, Arc::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("could not detect a since value"),
        "{err}"
    );
    std::fs::remove_dir_all(&w.out).unwrap();

    export(&c, &options(&w, cohort.clone(), "full"), Arc::default())
        .await
        .unwrap();
    let mut next = options(&w, cohort.clone(), "next");
    next.since = Some("auto".into());
    let report = export(&c, &next, Arc::default()).await.unwrap();
    // Nothing changed on the server: every type but the cohort lookup comes back empty,
    // and no patient is taken for deleted.
    // Every exported type but Patient (types absent from the server are skipped).
    assert_eq!(
        report.since_values.len() + report.skipped_types.len(),
        14,
        "{:?} {:?}",
        report.since_values.keys(),
        report.skipped_types
    );
    assert!(!report.since_values.contains_key("Patient"));
    for o in &report.outcomes {
        let want = if o.resource_type == "Patient" {
            patients.len() as u64
        } else {
            0
        };
        assert_eq!(o.resources, want, "{}", o.resource_type);
    }
    let dir = w.out.join("002.next");
    assert!(!dir.join("deleted").exists());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".metadata")).unwrap()).unwrap();
    assert_eq!(meta["since"], "auto");
    assert_eq!(meta["sinceMode"], "updated");
    // The links still reach the full export for the types the since-export left empty.
    let target = std::fs::read_link(w.out.join("Condition.001.ndjson.gz")).unwrap();
    assert!(target.starts_with("001.full"), "{target:?}");

    // Created mode uses the per-type date parameters the server lists, and only those.
    let mut created = options(&w, cohort, "created");
    created.since = Some("1900-01-01".into());
    created.since_mode = "created".into();
    let report = export(&c, &created, Arc::default()).await.unwrap();
    let with_since: BTreeSet<&str> = report.since_values.keys().map(String::as_str).collect();
    assert!(with_since.contains("Condition") && with_since.contains("Observation"));
    assert!(!with_since.contains("Encounter") && !with_since.contains("Patient"));
    // gt 1900 keeps every resource that has the date; types without a parameter come in full.
    let dir = w.out.join("003.created");
    let (got, want) = (crawled(&dir), truth(&w, &patients));
    for (t, ids) in &want {
        let have = got.get(t).cloned().unwrap_or_default();
        if with_since.contains(t.as_str()) {
            assert!(have.is_subset(ids), "{t}: ids the server does not hold");
            assert!(!have.is_empty() || ids.is_empty(), "{t}: nothing came back");
        } else {
            assert!(have == *ids, "{t}: {} of {}", have.len(), ids.len());
        }
    }
}
