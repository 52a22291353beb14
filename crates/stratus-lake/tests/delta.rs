//! The Delta sink on a local folder: create, upsert guarded by meta.lastUpdated, insert-only
//! completion rows, deletes, optimize; read back with DataFusion.

#![allow(clippy::unwrap_used)]

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, StringArray};
use deltalake::datafusion::prelude::SessionContext;
use stratus_lake::{DeltaSink, Sink};

fn row(id: &str, updated: &str, status: &str) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"Condition","id":"{id}","meta":{{"lastUpdated":"{updated}"}},"clinicalStatus":{{"coding":[{{"code":"{status}"}}]}},"recordedDate":"2020-01-01"}}"#
    )
    .into_bytes()
}

fn query(root: &std::path::Path, table: &str, sql: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = deltalake::ensure_table_uri(root.join(table).to_str().unwrap()).unwrap();
        let t = DeltaTable::try_from_url(url).await.unwrap();
        let ctx = SessionContext::new();
        t.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", t.table_provider().await.unwrap())
            .unwrap();
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let c = b.column(0);
            let s =
                deltalake::arrow::compute::cast(c, &deltalake::arrow::datatypes::DataType::Utf8)
                    .unwrap();
            let s = s.as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..s.len() {
                out.push(s.value(i).to_owned());
            }
        }
        out
    })
}

#[test]
fn upserts_respect_last_updated_and_deletes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let mut sink = DeltaSink::new(root.to_str().unwrap(), true).unwrap();
    sink.write_batch(
        "condition",
        vec![
            row("a", "2024-01-01T00:00:00Z", "active"),
            row("b", "2024-01-01T00:00:00Z", "active"),
        ],
    )
    .unwrap();
    // A newer row for a, an older one for b, a new c.
    sink.write_batch(
        "condition",
        vec![
            row("a", "2025-01-01T00:00:00Z", "resolved"),
            row("b", "2023-01-01T00:00:00Z", "resolved"),
            row("c", "2024-01-01T00:00:00Z", "active"),
        ],
    )
    .unwrap();
    let q = "select concat(id, '=', \"clinicalStatus\"['coding'][1]['code']) from t order by id";
    assert_eq!(
        query(&root, "condition", q),
        ["a=resolved", "b=active", "c=active"]
    );
    sink.delete("condition", &["c".into()]).unwrap();
    sink.finish_table("condition").unwrap();
    assert_eq!(
        query(&root, "condition", "select id from t order by id"),
        ["a", "b"]
    );

    // A rerun (a new sink) learns which ids the table holds: an older `a` changes nothing,
    // and a new `d` with elements no earlier row had is appended under a merged schema.
    let mut rerun = DeltaSink::new(root.to_str().unwrap(), false).unwrap();
    rerun
        .write_batch(
            "condition",
            vec![
                row("a", "2020-01-01T00:00:00Z", "inactive"),
                br#"{"resourceType":"Condition","id":"d","onsetAge":{"value":3,"unit":"a"},"note":[{"text":"n"}]}"#.to_vec(),
            ],
        )
        .unwrap();
    rerun.finish_table("condition").unwrap();
    let q = "select concat(id, '=', coalesce(\"clinicalStatus\"['coding'][1]['code'], \"onsetAge\"['unit'])) from t order by id";
    assert_eq!(
        query(&root, "condition", q),
        ["a=resolved", "b=active", "d=a"]
    );

    // Completion encounters keep the first export time.
    let enc = |t: &str| {
        format!(r#"{{"encounter_id":"e1","group_name":"g","export_time":"{t}","excluded_resources":""}}"#).into_bytes()
    };
    sink.write_batch("etl__completion_encounters", vec![enc("2024")])
        .unwrap();
    sink.write_batch("etl__completion_encounters", vec![enc("2025")])
        .unwrap();
    assert_eq!(
        query(
            &root,
            "etl__completion_encounters",
            "select export_time from t"
        ),
        ["2024"]
    );
    // An empty table still exists, with the wide schema.
    sink.touch("observation").unwrap();
    assert_eq!(query(&root, "observation", "select count(*) from t"), ["0"]);
}

#[test]
fn parquet_files_hold_each_batch() {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use stratus_lake::ParquetSink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pq");
    let mut sink = ParquetSink::new(&root);
    sink.write_batch(
        "condition",
        vec![
            row("a", "2024-01-01T00:00:00Z", "active"),
            row("b", "2024-01-01T00:00:00Z", "active"),
        ],
    )
    .unwrap();
    sink.write_batch(
        "condition",
        vec![row("c", "2024-01-01T00:00:00Z", "active")],
    )
    .unwrap();
    sink.touch("observation").unwrap();
    let rows = |p: &std::path::Path| -> usize {
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum()
    };
    assert_eq!(rows(&root.join("condition/condition.000.parquet")), 2);
    assert_eq!(rows(&root.join("condition/condition.001.parquet")), 1);
    assert_eq!(rows(&root.join("observation/observation.000.parquet")), 0);
}
