//! The Delta Lake sink: one table per ETL table under the output root (a local folder or
//! `s3://bucket/prefix`). The first batch creates a table; later batches MERGE on the
//! table's keys, so re-running an ETL never duplicates a row: FHIR rows update only when
//! the incoming `meta.lastUpdated` is not older than the stored one, and
//! `etl__completion_encounters` keeps the first export time it saw. Deletes are `id IN`
//! predicates; each finished table is optimized (and vacuumed) unless asked not to.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::arrow::json::ReaderBuilder;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::functions::core::expr_fn::get_field;
use deltalake::datafusion::prelude::{Expr, SessionContext, cast, lit};
use deltalake::protocol::SaveMode;
use serde_json::Value;

use crate::LakeError;
use crate::schema;
use crate::sink::Sink;

const COMPLETION: &str = "etl__completion";
const COMPLETION_ENCOUNTERS: &str = "etl__completion_encounters";

/// Delta tables under one root.
pub struct DeltaSink {
    root: String,
    rt: tokio::runtime::Runtime,
    optimize: bool,
}

impl DeltaSink {
    /// `root`: a folder, or `s3://bucket/prefix` (credentials, region and
    /// `AWS_ENDPOINT_URL` from the usual AWS variables). `optimize`: compact and vacuum each
    /// table when its task is done.
    pub fn new(root: &str, optimize: bool) -> Result<DeltaSink, LakeError> {
        deltalake::aws::register_handlers(None);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| LakeError::Usage(format!("cannot start the runtime: {e}")))?;
        let root = if root.contains("://") {
            root.trim_end_matches('/').to_owned()
        } else {
            std::fs::create_dir_all(root).map_err(|e| LakeError::io(root, e))?;
            std::path::absolute(root)
                .map_err(|e| LakeError::io(root, e))?
                .display()
                .to_string()
        };
        Ok(DeltaSink { root, rt, optimize })
    }

    fn location(&self, table: &str) -> String {
        format!("{}/{table}", self.root)
    }

    async fn open(&self, table: &str) -> Result<DeltaTable, LakeError> {
        let loc = self.location(table);
        if !loc.contains("://") {
            std::fs::create_dir_all(&loc).map_err(|e| LakeError::io(&loc, e))?;
        }
        let url = deltalake::ensure_table_uri(&loc).map_err(|e| err(table, e))?;
        DeltaTable::try_from_url(url)
            .await
            .map_err(|e| err(table, e))
    }

    /// The rows as one Arrow batch with the table's schema.
    pub fn record_batch(table: &str, rows: &[Vec<u8>]) -> Result<RecordBatch, LakeError> {
        let schema = Arc::new(match table {
            COMPLETION => strings(&[
                "table_name",
                "group_name",
                "export_time",
                "export_url",
                "etl_version",
                "etl_time",
                "excluded_resources",
            ]),
            COMPLETION_ENCOUNTERS => strings(&[
                "encounter_id",
                "group_name",
                "export_time",
                "excluded_resources",
            ]),
            _ => {
                let values: Vec<Value> = rows
                    .iter()
                    .filter_map(|r| serde_json::from_slice(r).ok())
                    .collect();
                let rtype = resource_type_of(table);
                schema::for_rows(rtype, &values)
            }
        });
        let mut decoder = ReaderBuilder::new(Arc::clone(&schema))
            .with_batch_size(rows.len().max(1))
            .build_decoder()
            .map_err(|e| err(table, e))?;
        for r in rows {
            decoder.decode(r).map_err(|e| err(table, e))?;
            decoder.decode(b"\n").map_err(|e| err(table, e))?;
        }
        Ok(decoder
            .flush()
            .map_err(|e| err(table, e))?
            .unwrap_or_else(|| RecordBatch::new_empty(schema)))
    }

    async fn upsert(&self, table: &str, batch: RecordBatch) -> Result<(), LakeError> {
        let t = self.open(table).await?;
        if t.version().is_none() {
            t.write(vec![batch])
                .with_save_mode(SaveMode::Append)
                .await
                .map_err(|e| err(table, e))?;
            return Ok(());
        }
        let keys: &[&str] = match table {
            COMPLETION => &["table_name", "group_name", "export_time", "etl_time"],
            COMPLETION_ENCOUNTERS => &["encounter_id", "group_name"],
            _ => &["id"],
        };
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let ctx = SessionContext::new();
        let source = ctx.read_batch(batch).map_err(|e| err(table, e))?;
        let on = keys
            .iter()
            .map(|k| col("target", k).eq(col("source", k)))
            .reduce(Expr::and)
            .unwrap_or_else(|| lit(false));
        let mut merge = t
            .merge(source, on)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_merge_schema(true);
        if table != COMPLETION_ENCOUNTERS {
            let newer = if columns.iter().any(|c| c == "meta") {
                let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                let old = cast(get_field(col("target", "meta"), "lastUpdated"), ts.clone());
                let new = cast(get_field(col("source", "meta"), "lastUpdated"), ts);
                Some(
                    old.clone()
                        .is_null()
                        .or(new.clone().is_null())
                        .or(old.lt_eq(new)),
                )
            } else {
                None
            };
            let cols = columns.clone();
            merge = merge
                .when_matched_update(move |mut u| {
                    if let Some(p) = newer {
                        u = u.predicate(p);
                    }
                    for c in &cols {
                        u = u.update(c.as_str(), col("source", c));
                    }
                    u
                })
                .map_err(|e| err(table, e))?;
        }
        let cols = columns;
        merge = merge
            .when_not_matched_insert(move |mut i| {
                for c in &cols {
                    i = i.set(c.as_str(), col("source", c));
                }
                i
            })
            .map_err(|e| err(table, e))?;
        merge.await.map_err(|e| err(table, e))?;
        Ok(())
    }
}

impl DeltaSink {
    fn is_local(&self) -> bool {
        !self.root.contains("://")
    }

    async fn store(&self) -> Result<deltalake::logstore::ObjectStoreRef, LakeError> {
        let url = deltalake::ensure_table_uri(&self.root).map_err(|e| err("(root)", e))?;
        let t = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| err("(root)", e))?;
        Ok(t.object_store())
    }
}

impl Sink for DeltaSink {
    fn put_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LakeError> {
        if self.is_local() {
            return crate::sink::local::put_file(std::path::Path::new(&self.root), rel, bytes);
        }
        self.rt.block_on(async {
            let store = self.store().await?;
            store
                .put_opts(
                    &deltalake::Path::from(rel),
                    object_store::PutPayload::from(bytes.to_vec()),
                    object_store::PutOptions::default(),
                )
                .await
                .map_err(|e| err(rel, e))?;
            Ok(())
        })
    }

    fn get_file(&mut self, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        if self.is_local() {
            return crate::sink::local::get_file(std::path::Path::new(&self.root), rel);
        }
        self.rt.block_on(async {
            let store = self.store().await?;
            match store
                .get_opts(
                    &deltalake::Path::from(rel),
                    object_store::GetOptions::default(),
                )
                .await
            {
                Ok(r) => Ok(Some(r.bytes().await.map_err(|e| err(rel, e))?.to_vec())),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(err(rel, e)),
            }
        })
    }

    fn list(&mut self, rel: &str) -> Result<Vec<String>, LakeError> {
        if self.is_local() {
            return crate::sink::local::list(std::path::Path::new(&self.root), rel);
        }
        self.rt.block_on(async {
            let store = self.store().await?;
            let prefix = deltalake::Path::from(rel);
            let listed = store
                .list_with_delimiter(Some(&prefix))
                .await
                .map_err(|e| err(rel, e))?;
            let mut out: Vec<String> = listed
                .common_prefixes
                .iter()
                .chain(listed.objects.iter().map(|o| &o.location))
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect();
            out.sort();
            Ok(out)
        })
    }

    fn write_batch(&mut self, table: &str, rows: &[Vec<u8>]) -> Result<(), LakeError> {
        let batch = Self::record_batch(table, rows)?;
        self.rt.block_on(self.upsert(table, batch))
    }

    fn touch(&mut self, table: &str) -> Result<(), LakeError> {
        self.rt.block_on(async {
            let t = self.open(table).await?;
            if t.version().is_none() {
                let batch = Self::record_batch(table, &[])?;
                t.write(vec![batch])
                    .with_save_mode(SaveMode::Append)
                    .await
                    .map_err(|e| err(table, e))?;
            }
            Ok(())
        })
    }

    fn delete(&mut self, table: &str, ids: &[String]) -> Result<(), LakeError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.rt.block_on(async {
            for chunk in ids.chunks(50_000) {
                let t = self.open(table).await?;
                if t.version().is_none() {
                    return Ok(());
                }
                let list: Vec<Expr> = chunk.iter().map(|i| lit(i.as_str())).collect();
                let pred = Expr::Column(Column::new_unqualified("id")).in_list(list, false);
                t.delete()
                    .with_predicate(pred)
                    .await
                    .map_err(|e| err(table, e))?;
            }
            Ok(())
        })
    }

    fn finish_table(&mut self, table: &str) -> Result<(), LakeError> {
        if !self.optimize {
            return Ok(());
        }
        self.rt.block_on(async {
            let t = self.open(table).await?;
            if t.version().is_none() {
                return Ok(());
            }
            let (t, _) = t.optimize().await.map_err(|e| err(table, e))?;
            t.vacuum().await.map_err(|e| err(table, e))?;
            Ok(())
        })
    }
}

fn col(relation: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(relation), name))
}

fn strings(names: &[&str]) -> Schema {
    Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    )
}

/// `observation` → `Observation`.
pub fn resource_type_of(table: &str) -> &'static str {
    stratus_fhir::elements::resource_types()
        .iter()
        .find(|t| t.eq_ignore_ascii_case(table))
        .copied()
        .unwrap_or("Resource")
}

fn err(table: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Table {
        table: table.to_owned(),
        message: e.to_string(),
    }
}
