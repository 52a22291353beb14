//! The core and discovery studies built on the ETL's output of the Synthea sample, in Delta
//! Lake and in the ndjson and Parquet layouts, and what an export may hold.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use stratus_etl::pipeline::{EtlOptions, EtlProgress, run};
use stratus_lake::DeltaSink;
use stratus_lake::deltalake::arrow::array::{Array, RecordBatch};
use stratus_lake::deltalake::arrow::datatypes::{DataType, Field, Schema};
use stratus_lake::deltalake::arrow::util::display::array_value_to_string;
use stratus_lake::deltalake::datafusion::catalog::streaming::StreamingTable;
use stratus_library::{BuildOptions, LibraryError, build, export};

fn synthea() -> PathBuf {
    if let Ok(p) = std::env::var("STRATUS_SYNTHEA_DIR") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/synthea-r4-100")
}

/// The ETL of the Synthea sample into `out` (`deltalake`, `ndjson` or `parquet`; Parquet in
/// small batches, so that a table has several files, each with its own schema).
fn etl(dir: &Path, format: &str) -> PathBuf {
    let out = dir.join(format!("lake-{format}"));
    let phi = dir.join("phi");
    std::fs::create_dir_all(&phi).unwrap();
    std::fs::write(
        phi.join("codebook.json"),
        r#"{"version": 1, "codebook_id": "test-book", "id_salt": "31323334"}"#,
    )
    .unwrap();
    let opts = EtlOptions {
        input: synthea(),
        output: out.clone(),
        phi,
        tasks: vec![],
        exclude: vec![],
        batch_size: if format == "parquet" { 2_000 } else { 100_000 },
        export_group: Some("g".into()),
        export_timestamp: Some("2024-01-01T00:00:00Z".into()),
        errors_to: None,
        comment: String::new(),
        allow_missing: true,
        output_format: format.into(),
    };
    if format == "ndjson" {
        run(
            &opts,
            &mut stratus_lake::NdjsonSink::new(&out),
            &EtlProgress::default(),
        )
        .unwrap();
    } else if format == "parquet" {
        run(
            &opts,
            &mut stratus_lake::ParquetSink::new(&out),
            &EtlProgress::default(),
        )
        .unwrap();
    } else {
        let mut sink = DeltaSink::new(out.to_str().unwrap(), false).unwrap();
        run(&opts, &mut sink, &EtlProgress::default()).unwrap();
    }
    out
}

fn options(lake: &Path, targets: &[&str]) -> BuildOptions {
    BuildOptions {
        lake: lake.display().to_string(),
        targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        study_dirs: vec![],
        min_count: None,
        memory_limit: None,
        merge_joins: None,
        stall_timeout: None,
    }
}

/// `sql` on the lake's study tables, each row as its columns' text joined with `|`.
fn query(lake: &Path, tables: &[&str], sql: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let l = stratus_library::Lake::open(lake.to_str().unwrap()).unwrap();
        let ctx = stratus_library::build::session();
        for t in tables {
            l.register_study_table(&ctx, t).await.unwrap();
        }
        let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        rows(&batches)
    })
}

/// Each row of `batches` as its columns' text joined with `|`.
fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cols: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "NULL".into()
                    } else {
                        array_value_to_string(c, r).unwrap()
                    }
                })
                .collect();
            out.push(cols.join("|"));
        }
    }
    out
}

#[test]
fn core_and_discovery_build_on_a_delta_lake_and_export_only_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "deltalake");
    let summaries = build(&options(&lake, &["core", "discovery"]), |_, _, _| {}).unwrap();
    let core = &summaries[0];
    let rows = |t: &str| {
        core.tables
            .iter()
            .find(|(n, _)| n == t)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no {t}"))
    };
    // Every Synthea patient has a birth date and a gender.
    assert_eq!(rows("core__patient"), 100);
    assert!(rows("core__encounter") > 1000, "{core:?}");
    assert!(rows("core__condition") > 100);
    assert!(rows("core__observation_lab") > 1000);
    assert!(rows("core__observation_vital_signs") > 1000);
    assert!(rows("core__count_patient") > 0);
    assert_eq!(rows("core__meta_version"), 1);

    // Columns are lower case, as Athena gives them; every patient has a 3-digit zip.
    let p = query(
        &lake,
        &["core__patient"],
        "SELECT count(*), count(DISTINCT gender), min(length(postalcode_3)) FROM core__patient",
    );
    assert_eq!(p, ["100|2|3"]);

    // The whole population is the cube's top cell; no cell is under 10.
    let c = query(
        &lake,
        &["core__count_patient"],
        "SELECT cnt, gender, race_display FROM core__count_patient \
         WHERE gender IS NULL AND race_display IS NULL AND ethnicity_display IS NULL",
    );
    assert_eq!(c, ["100|NULL|NULL"]);
    let small = query(
        &lake,
        &[
            "core__count_patient",
            "core__count_encounter_month",
            "core__count_condition_month",
        ],
        "SELECT count(*) FROM (SELECT cnt FROM core__count_patient UNION ALL \
         SELECT cnt FROM core__count_encounter_month UNION ALL \
         SELECT cnt FROM core__count_condition_month) WHERE cnt < 10",
    );
    assert_eq!(small, ["0"]);
    // A real NULL shows as cumulus__none, never as NULL (which means "all").
    let none = query(
        &lake,
        &["core__count_encounter_all_types"],
        "SELECT count(*) FROM core__count_encounter_all_types WHERE priority_display = 'cumulus__none'",
    );
    assert_ne!(none, ["0"]);

    // Encounters with their patient's demographics and an age in whole years.
    let e = query(
        &lake,
        &["core__encounter", "core__patient"],
        "SELECT count(*) FROM core__encounter e JOIN core__patient p ON p.subject_ref = e.subject_ref \
         WHERE e.age_at_visit IS NULL OR e.gender <> p.gender OR e.period_start_month > e.period_start_day",
    );
    assert_eq!(e, ["0"]);

    let d = &summaries[1];
    assert_eq!(d.study, "discovery");
    let codes = query(
        &lake,
        &["discovery__code_sources"],
        "SELECT count(*) FROM discovery__code_sources \
         WHERE table_name = 'condition' AND column_name = 'code' AND system = 'http://snomed.info/sct'",
    );
    assert_ne!(codes, ["0"]);
    // Every one of the 89 fields is there: with its codes, or with one empty row when the
    // data has none (Synthea has no specimens); the working table is gone.
    let fields = query(
        &lake,
        &["discovery__code_sources"],
        "SELECT count(DISTINCT table_name || ' ' || column_name) FROM discovery__code_sources",
    );
    assert_eq!(fields, ["89"]);
    let empty = query(
        &lake,
        &["discovery__code_sources"],
        "SELECT code || display || system FROM discovery__code_sources \
         WHERE table_name = 'specimen' AND column_name = 'collection.bodySite'",
    );
    assert_eq!(empty, [""]);
    assert!(!lake.join("discovery__code_sources_tmp_found").exists());

    // The export: cubes and meta tables, sorted descending with NULLs first; no line-level
    // table; the zip holds the Parquet files and the manifest.
    let out = dir.path().join("export");
    let s = export(lake.to_str().unwrap(), "core", &[], &out).unwrap();
    let names: Vec<&str> = s.files.iter().map(|(f, _)| f.as_str()).collect();
    assert!(names.contains(&"core__count_patient.cube"), "{names:?}");
    assert!(names.contains(&"core__meta_date.meta"), "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".cube") || n.ends_with(".meta"))
    );
    let csv = std::fs::read_to_string(out.join("core/core__count_patient.cube.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("cnt,gender,race_display,ethnicity_display")
    );
    assert_eq!(lines.next(), Some("100,,,"));
    let zip = std::fs::read(&s.zip).unwrap();
    assert_eq!(&zip[..4], b"PK\x03\x04");
    let text = String::from_utf8_lossy(&zip);
    assert!(text.contains("core__count_patient.cube.parquet"));
    assert!(text.contains("manifest.toml"));
    assert!(!text.contains(".csv"));
    assert!(!text.contains("core__patient."));
}

#[test]
fn the_ndjson_layout_builds_too_and_a_missing_table_reads_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "ndjson");
    // No medication requests at all: the table is read as empty, and the study still builds.
    std::fs::remove_dir_all(lake.join("medicationrequest")).unwrap();
    let summaries = build(&options(&lake, &["core"]), |_, _, _| {}).unwrap();
    let core = &summaries[0];
    assert!(
        core.missing.contains(&"medicationrequest".to_owned()),
        "{:?}",
        core.missing
    );
    let get = |t: &str| core.tables.iter().find(|(n, _)| n == t).map(|(_, n)| *n);
    assert_eq!(get("core__patient"), Some(100));
    assert_eq!(get("core__medicationrequest"), Some(0));
    assert!(lake.join("core__patient/core__patient.parquet").is_file());
    let n = query(
        &lake,
        &["core__encounter"],
        "SELECT count(DISTINCT id) FROM core__encounter",
    );
    assert_ne!(n, ["0"]);

    // Under a small memory limit the larger ndjson tables and study tables are streamed
    // from their files instead of held: the same tables come out.
    let tables = [
        "core__encounter",
        "core__observation",
        "core__count_encounter_month",
    ];
    let all = |t: &str| {
        let mut rows = query(&lake, &[t], &format!("SELECT * FROM {t}"));
        rows.sort();
        rows
    };
    let held: Vec<_> = tables.iter().map(|t| all(t)).collect();
    let mut small = options(&lake, &["core"]);
    small.memory_limit = Some(40 << 20);
    small.merge_joins = Some(false);
    build(&small, |_, _, _| {}).unwrap();
    let streamed: Vec<_> = tables.iter().map(|t| all(t)).collect();
    for ((t, a), b) in tables.iter().zip(&held).zip(&streamed) {
        assert!(!a.is_empty(), "{t}");
        assert!(a == b, "{t} differs when streamed");
    }
}

#[test]
fn the_parquet_layout_builds_and_large_tables_stream_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "parquet");
    let files = std::fs::read_dir(lake.join("observation")).unwrap().count();
    assert!(files > 1, "observation should span several files");
    let summaries = build(&options(&lake, &["core"]), |_, _, _| {}).unwrap();
    let get = |t: &str| {
        summaries[0]
            .tables
            .iter()
            .find(|(n, _)| n == t)
            .map(|(_, n)| *n)
    };
    assert_eq!(get("core__patient"), Some(100));
    assert!(get("core__observation").unwrap_or(0) > 0);

    // The same table read held (the default limit) and streamed (a limit a quarter of which
    // is smaller than its files): the same rows, every column, across files whose schemas
    // differ.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let read = |limit: usize| {
        rt.block_on(async {
            let l = stratus_library::Lake::open(lake.to_str().unwrap()).unwrap();
            let ctx = stratus_library::build::session_with_limit(limit);
            let wanted = Schema::new(vec![Field::new("id", DataType::Utf8, true)]);
            l.register(&ctx, "observation", &wanted, true)
                .await
                .unwrap();
            let provider = ctx.table_provider("observation").await.unwrap();
            let streamed = provider.is::<StreamingTable>();
            let batches: Vec<RecordBatch> = ctx
                .sql("SELECT * FROM observation")
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            let mut rows = rows(&batches);
            rows.sort();
            (streamed, rows)
        })
    };
    let (streamed, held) = read(1 << 30);
    assert!(!streamed);
    let (streamed, small) = read(1 << 20);
    assert!(streamed);
    assert!(!held.is_empty());
    assert!(held == small, "observation differs when streamed");
}

#[test]
fn builds_are_logged_in_the_protected_lib_tables() {
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "ndjson");
    let opts = options(&lake, &["core"]);
    let first = build(&opts, |_, _, _| {}).unwrap();
    // A rebuild keeps the log and adds to it; the summary lists only the study's tables.
    build(&opts, |_, _, _| {}).unwrap();
    assert!(
        first[0]
            .tables
            .iter()
            .all(|(n, _)| !n.starts_with("core__lib_")),
        "{:?}",
        first[0].tables
    );
    let log = query(
        &lake,
        &["core__lib_transactions"],
        "SELECT study_name, status, message FROM core__lib_transactions ORDER BY event_time, status DESC",
    );
    assert_eq!(
        log,
        [
            "core|started|NULL",
            "core|finished|NULL",
            "core|started|NULL",
            "core|finished|NULL"
        ]
    );
    let source = query(
        &lake,
        &["core__lib_build_source"],
        "SELECT count(*), count(DISTINCT name), min(stage), min(type), \
         sum(CASE WHEN name = 'core__count_patient' THEN 1 ELSE 0 END) FROM core__lib_build_source",
    );
    let n = first[0].tables.len();
    assert_eq!(source, [format!("{n}|{n}|default|table|1")]);
    // clean leaves them too.
    stratus_library::build::clean(lake.to_str().unwrap(), "core", &[]).unwrap();
    assert!(lake.join("core__lib_transactions").is_dir());
    assert!(!lake.join("core__patient").exists());
}

#[test]
fn a_table_whose_query_uses_no_cpu_for_the_stall_timeout_fails_the_build_naming_it() {
    // DataFusion's deadlock cannot be produced on demand; a timeout far shorter than any
    // query (each uses far less than the guard's second of CPU in a millisecond) makes
    // every query look parked, which goes through the same cancel, retry and failure.
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "ndjson");
    let mut opts = options(&lake, &["core"]);
    opts.stall_timeout = Some(std::time::Duration::from_millis(1));
    let err = build(&opts, |_, _, _| {}).unwrap_err();
    let LibraryError::Stalled { table, .. } = &err else {
        panic!("not a stall: {err}")
    };
    assert!(table.starts_with("core__"), "{table}");
    let message = err.to_string();
    assert!(
        message.contains("no progress") && message.contains("apache/datafusion#24883"),
        "{message}"
    );
    let log = query(
        &lake,
        &["core__lib_transactions"],
        "SELECT status, message FROM core__lib_transactions ORDER BY event_time, status DESC",
    );
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[0], "started|NULL");
    assert_eq!(log[1], format!("error|{message}"));
    // Zero turns the guard off: the same lake builds.
    opts.stall_timeout = Some(std::time::Duration::ZERO);
    build(&opts, |_, _, _| {}).unwrap();
}

#[test]
fn sort_merge_joins_give_the_same_tables_as_hash_joins() {
    // The join kind a large input gets (it spills to disk instead of failing) against the
    // one a small input gets, on the same data: every count cube and flat table equal.
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "deltalake");
    let tables = |merge: bool| {
        let mut o = options(&lake, &["core"]);
        o.merge_joins = Some(merge);
        let s = build(&o, |_, _, _| {}).unwrap();
        let names: Vec<String> = s[0].tables.iter().map(|(n, _)| n.clone()).collect();
        names
            .iter()
            .map(|t| {
                let mut rows = query(&lake, &[t.as_str()], &format!("SELECT * FROM {t}"));
                rows.sort();
                (t.clone(), rows)
            })
            .collect::<Vec<_>>()
    };
    let hash = tables(false);
    let merge = tables(true);
    assert_eq!(hash.len(), merge.len());
    for ((t, a), (_, b)) in hash.iter().zip(&merge) {
        assert_eq!(a.len(), b.len(), "{t}");
        assert!(a == b, "{t} differs between hash and merge joins");
    }
}

#[test]
fn bad_input_gets_a_message_naming_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let err = build(&options(dir.path(), &["core"]), |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("no tables here"), "{err}");
    let err = build(&options(&dir.path().join("nope"), &["core"]), |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("no such folder"), "{err}");
    std::fs::create_dir_all(dir.path().join("patient")).unwrap();
    std::fs::write(dir.path().join("patient/patient.000.ndjson"), "{}\n").unwrap();
    let err = build(&options(dir.path(), &["nosuch"]), |_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("no study \"nosuch\""), "{err}");
}

#[test]
fn only_complete_or_untracked_encounters_reach_core_encounter() {
    let dir = tempfile::tempdir().unwrap();
    let lake = etl(dir.path(), "ndjson");
    let lines = |t: &str| -> Vec<(PathBuf, Vec<String>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(lake.join(t)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "ndjson") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text.lines().map(str::to_owned).collect()));
            }
        }
        out
    };
    // No group loaded conditions: every tracked encounter is incomplete...
    for (p, ls) in lines("etl__completion") {
        let kept: Vec<String> = ls
            .into_iter()
            .filter(|l| !l.contains("\"table_name\":\"condition\""))
            .collect();
        std::fs::write(p, kept.join("\n") + "\n").unwrap();
    }
    // ...except ten that are not tracked at all, which are kept.
    let mut untracked = 10;
    let mut tracked = 0;
    for (p, ls) in lines("etl__completion_encounters") {
        let mut kept = Vec::new();
        for l in ls {
            if untracked > 0 {
                untracked -= 1;
            } else {
                tracked += 1;
                kept.push(l);
            }
        }
        std::fs::write(p, kept.join("\n") + "\n").unwrap();
    }
    build(&options(&lake, &["core"]), |_, _, _| {}).unwrap();
    let kept = query(
        &lake,
        &["core__encounter"],
        "SELECT count(DISTINCT id) FROM core__encounter",
    );
    assert_eq!(kept, ["10"]);
    let incomplete = query(
        &lake,
        &["core__incomplete_encounter"],
        "SELECT count(*) FROM core__incomplete_encounter",
    );
    assert_eq!(incomplete, [tracked.to_string()]);
    // The working table is gone once the study is built.
    assert!(!lake.join("core__tmp_completion").exists());
}

/// Writes `rows` as the ndjson layout's `<table>/<table>.000.ndjson`.
fn table(lake: &Path, name: &str, rows: &[&str]) {
    std::fs::create_dir_all(lake.join(name)).unwrap();
    std::fs::write(
        lake.join(format!("{name}/{name}.000.ndjson")),
        rows.join("\n") + "\n",
    )
    .unwrap();
}

#[test]
fn dispenses_dosages_and_directory_resources_flatten_as_cumulus_library_does() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    let med = r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197361","display":"Amlodipine"}]}"#;
    let taper = r#"[
        {"sequence":1,"timing":{"code":{"text":"BID"}},"doseAndRate":[{"type":{"coding":[{"code":"ordered"}]},"doseQuantity":{"value":2,"unit":"tablet"}}]},
        {"sequence":2,"asNeededBoolean":true,"doseAndRate":[{"doseRange":{"low":{"value":1,"unit":"mg"},"high":{"value":2}}},{"doseQuantity":{"value":1}}]}
    ]"#
    .replace('\n', "");
    table(
        lake,
        "medicationdispense",
        &[
            &format!(
                r##"{{"resourceType":"MedicationDispense","id":"d1","status":"completed","subject":{{"reference":"Patient/p1"}},"contained":[{{"resourceType":"Medication","id":"m1","code":{med}}}],"medicationReference":{{"reference":"#m1"}},"whenHandedOver":"2023-04","authorizingPrescription":[{{"reference":"MedicationRequest/r1"}}],"performer":[{{"actor":{{"reference":"Practitioner/x"}}}}],"dosageInstruction":{taper}}}"##
            ),
            r#"{"resourceType":"MedicationDispense","id":"d2","status":"completed","subject":{"reference":"Patient/p2"},"medicationReference":{"reference":"Medication/m9"},"whenHandedOver":"2023-05-06T23:30:00-05:00"}"#,
            r#"{"resourceType":"MedicationDispense","id":"d3","status":"entered-in-error","subject":{"reference":"Patient/p3"}}"#,
        ],
    );
    table(
        lake,
        "medication",
        &[&format!(
            r#"{{"resourceType":"Medication","id":"m9","code":{med}}}"#
        )],
    );
    table(
        lake,
        "organization",
        &[
            r#"{"resourceType":"Organization","id":"o1","name":"General","alias":["GH","Gen"],"identifier":[{"system":"s","value":"1"},{"system":"s","value":"2"}]}"#,
        ],
    );
    table(
        lake,
        "condition",
        &[
            r#"{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"code":{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"J20.9"},{"system":"http://snomed.info/sct","code":"10509002"}]}}"#,
        ],
    );
    build(&options(lake, &["core"]), |_, _, _| {}).unwrap();

    let dispenses = query(
        lake,
        &["core__medicationdispense"],
        "SELECT id, medication_code, CAST(whenhandedover_day AS VARCHAR), \
         CAST(whenhandedover_month AS VARCHAR), medicationrequest_ref, performer_ref \
         FROM core__medicationdispense ORDER BY id",
    );
    assert_eq!(
        dispenses,
        [
            "d1|197361|2023-04-01|2023-04-01|MedicationRequest/r1|Practitioner/x",
            // The local date written, as Athena reads it.
            "d2|197361|2023-05-06|2023-05-01|NULL|NULL",
        ]
    );
    let dosage = query(
        lake,
        &["core__medicationdispense_dosageinstruction"],
        "SELECT id, \"row\", dose_row, dosage_sequence, dosage_timing_text, \
         dosage_as_needed_bool, dosage_dose_type, dosage_dose_value, dosage_dose_low_value, \
         dosage_dose_unit FROM core__medicationdispense_dosageinstruction \
         ORDER BY \"row\", dose_row",
    );
    assert_eq!(
        dosage,
        [
            "d1|1|1|1|BID|NULL|quantity|2.0|NULL|tablet",
            "d1|2|1|2|NULL|true|range|NULL|1.0|mg",
            "d1|2|2|2|NULL|true|quantity|1.0|NULL|NULL",
        ]
    );
    let rate = query(
        lake,
        &["core__medicationdispense_dn_dose_rate_type"],
        "SELECT id, \"row\", dose_row, code FROM core__medicationdispense_dn_dose_rate_type",
    );
    assert_eq!(rate, ["d1|1|1|ordered"]);
    let orgs = query(
        lake,
        &["core__organization"],
        "SELECT alias, identifier_value FROM core__organization ORDER BY identifier_value",
    );
    assert_eq!(orgs, ["General, GH, Gen|1", "General, GH, Gen|2"]);
    // One coding per condition by system priority (SNOMED first); all of them in _all.
    let picked = query(
        lake,
        &["core__condition_codable_concepts_display"],
        "SELECT code FROM core__condition_codable_concepts_display",
    );
    assert_eq!(picked, ["10509002"]);
    let all = query(
        lake,
        &["core__condition_codable_concepts_all"],
        "SELECT count(*) FROM core__condition_codable_concepts_all",
    );
    assert_eq!(all, ["2"]);
}
