//! Whole-population tests: determinism across runs and thread counts, referential
//! integrity, id rules, coverage of resource types, Groups, and embedded PDFs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::reference;
use stratus_fhir::sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};
use stratus_fhir::{Compression, Resource};

use super::*;

fn config(patients: u64, seed: u64) -> PopulationConfig {
    PopulationConfig {
        patients,
        seed,
        compression: Compression::None,
    }
}

fn run_in_pool(threads: usize, patients: u64, seed: u64, out: &Path) -> Summary {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| generate(&config(patients, seed), out, &|_| {}).unwrap())
}

/// Every file of a folder, name → bytes.
fn read_folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Every resource of a folder, by type.
fn resources(summary: &Summary) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for path in &summary.files {
        let mut reader = NdjsonReader::open(path, ReaderOptions::default()).unwrap();
        while let Some(line) = reader.next_line().unwrap() {
            let Line::Data { bytes, number } = line else {
                panic!("{}: line too long", path.display());
            };
            let r = Resource::parse(bytes)
                .unwrap_or_else(|e| panic!("{}:{number}: {e:?}", path.display()));
            out.entry(r.resource_type().to_owned())
                .or_default()
                .push(r.into_value());
        }
    }
    out
}

/// FHIR JSON rules every element must follow: no empty arrays, objects or strings, no
/// padded strings, and every time with a time zone.
fn check_shape(v: &Value, path: &mut Vec<String>) {
    if let Some(arr) = v.as_array() {
        assert!(!arr.is_empty(), "empty array at {}", path.join("."));
        for x in arr.iter() {
            check_shape(x, path);
        }
    } else if let Some(obj) = v.as_object() {
        assert!(!obj.is_empty(), "empty object at {}", path.join("."));
        for (k, x) in obj.iter() {
            path.push(k.to_owned());
            check_shape(x, path);
            path.pop();
        }
    } else if let Some(s) = v.as_str() {
        assert!(
            !s.is_empty() && s.trim() == s,
            "bad string {s:?} at {}",
            path.join(".")
        );
        let b = s.as_bytes();
        let looks_like_time = b.len() >= 16
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T';
        if looks_like_time {
            let tz = &b[b.len() - 6..];
            assert!(
                s.ends_with('Z') || ((tz[0] == b'-' || tz[0] == b'+') && tz[3] == b':'),
                "time without zone {s} at {}",
                path.join(".")
            );
        }
    }
}

#[test]
fn zero_patients_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        generate(&config(0, 1), dir.path(), &|_| {}),
        Err(SynthError::Invalid(_))
    ));
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let again = dir.path().join("again");
    let a = run_in_pool(1, 200, 42, &one);
    let b = run_in_pool(2, 200, 42, &two);
    run_in_pool(2, 200, 42, &again);
    assert_eq!(a.counts, b.counts);
    assert_eq!(a.bytes, b.bytes);
    let (fa, fb, fc) = (read_folder(&one), read_folder(&two), read_folder(&again));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between 1 and 2 threads");
        assert!(bytes == &fc[name], "{name} differs between runs");
    }
    // A different seed is a different population.
    let other = dir.path().join("other");
    run_in_pool(2, 200, 43, &other);
    assert_ne!(read_folder(&other)["Patient.ndjson"], fa["Patient.ndjson"]);
}

#[test]
fn progress_counts_every_patient() {
    let dir = tempfile::tempdir().unwrap();
    let seen = std::sync::atomic::AtomicU64::new(0);
    generate(&config(300, 5), dir.path(), &|n| {
        seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(seen.into_inner(), 300);
}

#[test]
fn references_resolve_and_ids_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let patients = 300;
    let summary = generate(&config(patients, 7), dir.path(), &|_| {}).unwrap();
    let all = resources(&summary);

    // Counts and files agree with what was read.
    for (t, list) in &all {
        assert_eq!(summary.counts[t], list.len() as u64, "{t}");
        assert!(
            summary
                .files
                .iter()
                .any(|f| f.file_name().unwrap().to_string_lossy() == format!("{t}.ndjson"))
        );
    }

    // Ids: unique per type, FHIR-valid.
    for (t, list) in &all {
        let mut ids = HashSet::new();
        for r in list {
            let id = r["id"].as_str().unwrap();
            assert!(reference::is_valid_id(id), "{t}/{id}");
            assert!(ids.insert(id.to_owned()), "duplicate {t}/{id}");
        }
    }

    // Every reference and Binary URL is relative and resolves.
    let files = stratus_fhir::scan::scan(dir.path(), ReaderOptions::default()).unwrap();
    let report = stratus_fhir::integrity::check(&files, ReaderOptions::default()).unwrap();
    assert_eq!(report.dangling, 0, "{:?}", report.examples);
    assert_eq!(report.external, 0, "every reference is relative");
    assert!(
        report.checked > 10_000,
        "only {} references",
        report.checked
    );

    // Every type the issue asks for is there.
    for t in [
        "AllergyIntolerance",
        "Binary",
        "Condition",
        "Device",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "EpisodeOfCare",
        "Group",
        "Immunization",
        "Location",
        "Medication",
        "MedicationDispense",
        "MedicationRequest",
        "Observation",
        "Organization",
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "ServiceRequest",
        "Specimen",
    ] {
        assert!(all.get(t).is_some_and(|l| !l.is_empty()), "no {t}");
    }

    // Every resource carries meta.lastUpdated with a time zone, and follows FHIR JSON rules.
    for (t, list) in &all {
        for r in list {
            check_shape(r, &mut vec![t.clone()]);
            let lu = r["meta"]["lastUpdated"].as_str().unwrap_or_default();
            assert!(
                lu.len() >= 25
                    && (lu.ends_with('Z')
                        || lu.as_bytes()[lu.len() - 6] == b'-'
                        || lu.as_bytes()[lu.len() - 6] == b'+'),
                "{t}: {lu}"
            );
        }
    }

    // Patients: MRNs unique and under MRN_SYSTEM; current patients are the Group.
    let mut mrns = HashSet::new();
    let mut active = 0;
    for p in &all["Patient"] {
        let ident = p["identifier"].as_array().unwrap();
        let mrn = ident
            .iter()
            .find(|i| i["system"].as_str() == Some(MRN_SYSTEM))
            .expect("MRN");
        assert_eq!(mrn["type"]["coding"][0]["code"].as_str(), Some("MR"));
        assert!(mrns.insert(mrn["value"].as_str().unwrap().to_owned()));
        if !p["active"].as_bool().unwrap() {
            assert_eq!(p["link"][0]["type"].as_str(), Some("replaced-by"));
            continue;
        }
        active += 1;
        let ext = p["extension"].as_array().unwrap();
        assert!(
            ext.iter()
                .any(|e| e["url"].as_str().unwrap().ends_with("us-core-race"))
        );
        assert!(
            ext.iter()
                .any(|e| e["url"].as_str().unwrap().ends_with("us-core-ethnicity"))
        );
    }
    assert_eq!(active, patients);
    assert!(
        all["Patient"].len() as u64 > patients,
        "some duplicates replaced"
    );
    assert_eq!(mrn(7, 0), {
        let first = &all["Patient"][0];
        first["identifier"][0]["value"].as_str().unwrap().to_owned()
    });

    // Groups.
    let groups: HashMap<&str, &Value> = all["Group"]
        .iter()
        .map(|g| (g["id"].as_str().unwrap(), g))
        .collect();
    let everyone = groups["all-patients"];
    assert_eq!(everyone["quantity"].as_u64(), Some(patients));
    assert_eq!(
        everyone["member"].as_array().unwrap().len() as u64,
        patients
    );
    assert_eq!(everyone["type"].as_str(), Some("person"));
    assert_eq!(everyone["actual"].as_bool(), Some(true));
    let diabetics: HashSet<String> = all["Condition"]
        .iter()
        .filter(|c| {
            c["code"]["coding"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["code"].as_str() == Some("44054006"))
        })
        .map(|c| c["subject"]["reference"].as_str().unwrap().to_owned())
        .collect();
    let members: HashSet<String> = groups["diabetes"]["member"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["entity"]["reference"].as_str().unwrap().to_owned())
        .collect();
    assert!(!members.is_empty());
    assert_eq!(
        members, diabetics,
        "diabetes Group = patients with the Condition"
    );
    let sample = groups["sample-10pct"]["quantity"].as_u64().unwrap();
    assert!((10..=60).contains(&sample), "{sample}");
}

#[test]
fn pdf_binaries_are_valid_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate(&config(120, 11), dir.path(), &|_| {}).unwrap();
    let all = resources(&summary);
    let mut pdfs = 0;
    for b in &all["Binary"] {
        if b["contentType"].as_str() != Some("application/pdf") {
            continue;
        }
        let bytes = decode_base64(b["data"].as_str().unwrap());
        super::pdf::tests::check_structure(&bytes);
        let text = super::pdf::tests::extract_text(&bytes).join("\n");
        assert!(text.contains("MRN: "), "{text}");
        pdfs += 1;
    }
    assert!(pdfs > 10, "{pdfs} PDFs");
    // Inline note text mentions the patient and a plan.
    let doc = all["DocumentReference"]
        .iter()
        .find(|d| {
            d["content"][0]["attachment"]["contentType"].as_str() == Some("text/plain")
                && d["content"][0]["attachment"]["data"].is_str()
        })
        .expect("an inline plain-text note");
    let text = String::from_utf8(decode_base64(
        doc["content"][0]["attachment"]["data"].as_str().unwrap(),
    ))
    .unwrap();
    assert!(
        text.contains("ASSESSMENT AND PLAN") || text.contains("Assessment and plan"),
        "{text}"
    );
    assert_eq!(
        doc["content"][0]["attachment"]["size"].as_u64(),
        Some(text.len() as u64)
    );
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

/// Release-mode measurement: `cargo test --release -p stratus-synth -- --ignored --nocapture
/// population_throughput`.
#[test]
#[ignore]
fn population_throughput() {
    let patients: u64 = std::env::var("STRATUS_SYNTH_PATIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    for compression in [Compression::None, Compression::FAST_GZIP] {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        let s = generate(
            &PopulationConfig {
                patients,
                seed: 7,
                compression,
            },
            dir.path(),
            &|_| {},
        )
        .unwrap();
        let secs = started.elapsed().as_secs_f64();
        let total: u64 = s.counts.values().sum();
        let disk: u64 = s
            .files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        println!(
            "{compression:?}: {patients} patients, {total} resources ({:.1}/patient) in {secs:.2}s on {} threads: {:.0} resources/s, {:.0} patients/s; {:.1} MB uncompressed, {:.1} MB on disk",
            total as f64 / patients as f64,
            rayon::current_num_threads(),
            total as f64 / secs,
            patients as f64 / secs,
            s.bytes as f64 / 1e6,
            disk as f64 / 1e6,
        );
        for (t, n) in &s.counts {
            println!("  {t:<20} {n:>10}");
        }
    }
}
