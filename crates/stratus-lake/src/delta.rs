//! The Delta Lake sink: one table per ETL table under the output root (a local folder or
//! `s3://bucket/prefix`). Re-running an ETL never duplicates a row: a batch's rows whose key
//! the table may already hold are MERGEd on the table's keys (FHIR rows update only when the
//! incoming `meta.lastUpdated` is not older than the stored one; `etl__completion_encounters`
//! keeps the first export time it saw), and the rest, usually all of them, are appended,
//! which costs a Parquet write instead of a scan of the table. Which keys a table holds is
//! tracked as 64-bit fingerprints, read from the table when it already existed; a false
//! match only sends a row through MERGE. Deletes are `id IN` predicates; each finished table
//! is optimized (and vacuumed) unless asked not to.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, RecordBatch, StringArray};
use deltalake::arrow::compute::concat_batches;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::json::ReaderBuilder;
use deltalake::arrow::json::reader::Decoder;
use deltalake::datafusion::catalog::streaming::StreamingTable;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::datasource::provider_as_source;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use deltalake::datafusion::functions::core::expr_fn::get_field;
use deltalake::datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::datafusion::physical_plan::streaming::PartitionStream;
use deltalake::datafusion::prelude::{Expr, SessionContext, cast, lit};
use deltalake::operations::write::SchemaMode;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::SaveMode;
use futures_util::TryStreamExt;
use rayon::prelude::*;
use stratus_fhir::sonic_rs::{self, JsonValueTrait};

use crate::LakeError;
use crate::schema::{self, Presence};
use crate::sink::Sink;

const COMPLETION: &str = "etl__completion";
const COMPLETION_ENCOUNTERS: &str = "etl__completion_encounters";
/// Rows per Arrow batch: small enough that decoding and writing stream through the cache
/// and memory, large enough for Parquet pages to compress well.
const ARROW_ROWS: usize = 8_192;
/// Rows per Arrow batch of an append, decoded as the writer pulls them: the Parquet writer
/// takes batches of 1,024 rows anyway, and the JSON decoder's tape grows with this.
const SLICE_ROWS: usize = 2_048;
/// Rows per Parquet row group (and, for Parquet output, turned into Arrow at a time). The
/// wide schema has hundreds of columns, each with offsets and validity for every row even
/// where null, so a row group of the default million rows is a lot to buffer.
pub const WRITE_ROWS: usize = 4 * ARROW_ROWS;
/// The most key fingerprints kept for one table (8 bytes each, 200 MB at most). Past this the table
/// stops being tracked and every later batch goes through MERGE: slower, never wrong, and
/// memory stays bounded whatever the input's size.
const MAX_TRACKED: usize = 25_000_000;

/// Delta tables under one root.
pub struct DeltaSink {
    root: String,
    rt: Arc<tokio::runtime::Runtime>,
    optimize: bool,
    open: HashMap<String, Open>,
    /// The object store of an `s3://` root, for the job files beside the tables; made once.
    store: Option<deltalake::logstore::ObjectStoreRef>,
}

/// A table this run has written to, with what it holds.
struct Open {
    table: DeltaTable,
    keys: Keys,
}

/// What this run knows of the keys a table holds.
enum Keys {
    /// Not read yet: the table existed before the run and nothing was upserted into it (a
    /// `touch` or a `delete` needs no keys, so neither pays for reading them).
    Unread,
    Tracked(KeySet),
    /// More than [`MAX_TRACKED`]: any row may be in the table.
    Untracked,
}

/// Fingerprints of the keys a table holds, sorted: 8 bytes a key, where a `HashSet` took 9
/// to 18 and, while growing, twice that (300 MB and more for an observation table of 16
/// million rows). Looked up and extended a batch at a time, by walking the batch's sorted
/// keys through the set.
#[derive(Debug, Default)]
struct KeySet(Vec<u64>);

impl KeySet {
    /// Whether the set holds each of `keys` (in any order), in the order given.
    fn holds(&self, keys: &[u64]) -> Vec<bool> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by_key(|&i| keys[i]);
        let mut out = vec![false; keys.len()];
        let set = &self.0;
        let mut at = 0;
        for i in order {
            let k = keys[i];
            // Gallop from the last position: consecutive sorted keys land close together.
            let mut step = 1;
            while at + step < set.len() && set[at + step] < k {
                step *= 2;
            }
            let end = (at + step + 1).min(set.len());
            at += set[at..end].partition_point(|&x| x < k);
            out[i] = set.get(at) == Some(&k);
        }
        out
    }

    /// Adds `keys`, merging in place from the back (no second copy of the set).
    fn insert(&mut self, keys: &[u64]) {
        let mut new = keys.to_vec();
        new.sort_unstable();
        new.dedup();
        let held = self.holds(&new);
        let mut held = held.into_iter();
        new.retain(|_| !held.next().unwrap_or(false));
        let set = &mut self.0;
        let (mut i, mut j) = (set.len(), new.len());
        set.reserve_exact(new.len());
        set.resize(i + j, 0);
        let mut w = set.len();
        while j > 0 {
            w -= 1;
            if i > 0 && set[i - 1] > new[j - 1] {
                set[w] = set[i - 1];
                i -= 1;
            } else {
                set[w] = new[j - 1];
                j -= 1;
            }
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What a batch's rows have in common: one schema (the wide R4 schema narrowed to what the
/// rows have) and each row's key fingerprint, in row order.
pub struct Plan {
    pub schema: SchemaRef,
    pub keys: Vec<u64>,
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
        Ok(DeltaSink {
            root,
            rt: Arc::new(rt),
            optimize,
            open: HashMap::new(),
            store: None,
        })
    }

    fn location(&self, table: &str) -> String {
        format!("{}/{table}", self.root)
    }

    async fn load(&self, table: &str) -> Result<DeltaTable, LakeError> {
        let loc = self.location(table);
        if !loc.contains("://") {
            std::fs::create_dir_all(&loc).map_err(|e| LakeError::io(&loc, e))?;
        }
        let url = deltalake::ensure_table_uri(&loc).map_err(|e| err(table, e))?;
        DeltaTable::try_from_url(url)
            .await
            .map_err(|e| err(table, e))
    }

    /// The table as this run last left it, loading it on first use.
    async fn open(&mut self, table: &str) -> Result<&mut Open, LakeError> {
        if !self.open.contains_key(table) {
            let t = self.load(table).await?;
            let keys = if t.version().is_none() {
                Keys::Tracked(KeySet::default())
            } else {
                Keys::Unread
            };
            self.open.insert(table.to_owned(), Open { table: t, keys });
        }
        self.open
            .get_mut(table)
            .ok_or_else(|| LakeError::Usage(format!("table {table} vanished")))
    }

    /// One pass over the rows (on every core): their common schema and their keys, without
    /// keeping any parsed row.
    pub fn plan(table: &str, rows: &[Vec<u8>]) -> Result<Plan, LakeError> {
        let key_names = key_columns(table);
        let fixed = match table {
            COMPLETION => Some(strings(&[
                "table_name",
                "group_name",
                "export_time",
                "export_url",
                "etl_version",
                "etl_time",
                "excluded_resources",
            ])),
            COMPLETION_ENCOUNTERS => Some(strings(&[
                "encounter_id",
                "group_name",
                "export_time",
                "excluded_resources",
            ])),
            _ => None,
        };
        let folded: Vec<(Vec<u64>, Presence)> = rows
            .par_chunks(ARROW_ROWS)
            .map(|chunk| {
                let mut keys = Vec::with_capacity(chunk.len());
                let mut presence = Presence::default();
                for r in chunk {
                    let v: sonic_rs::Value = sonic_rs::from_slice(r).map_err(|e| err(table, e))?;
                    keys.push(fingerprint(
                        key_names
                            .iter()
                            .map(|k| v.get(*k).and_then(|x| x.as_str()).unwrap_or("")),
                    ));
                    if fixed.is_none() {
                        presence.add_value(&v);
                    }
                }
                Ok((keys, presence))
            })
            .collect::<Result<_, LakeError>>()?;
        let mut keys = Vec::with_capacity(rows.len());
        let mut presence = Presence::default();
        for (k, p) in folded {
            keys.extend(k);
            presence.merge(p);
        }
        let schema = Arc::new(
            fixed.unwrap_or_else(|| schema::for_presence(resource_type_of(table), &presence)),
        );
        Ok(Plan { schema, keys })
    }

    /// The rows as Arrow batches of at most [`ARROW_ROWS`] rows with `schema`, decoded on
    /// every core.
    pub fn decode(
        table: &str,
        schema: &SchemaRef,
        rows: &[Vec<u8>],
    ) -> Result<Vec<RecordBatch>, LakeError> {
        let decoded: Vec<Option<RecordBatch>> = rows
            .par_chunks(ARROW_ROWS)
            .map(|chunk| {
                ReaderBuilder::new(Arc::clone(schema))
                    .with_batch_size(ARROW_ROWS)
                    .build_decoder()
                    .and_then(|mut decoder| decode_rows(&mut decoder, chunk))
                    .map_err(|e| err(table, e))
            })
            .collect::<Result<_, LakeError>>()?;
        Ok(decoded.into_iter().flatten().collect())
    }

    /// Appends the rows with new keys in one commit and MERGEs the others in another. A
    /// crash between the two leaves the appended rows written; the rerun finds their keys
    /// and MERGEs them, so nothing is doubled.
    async fn upsert(&mut self, table: &str, rows: Vec<Vec<u8>>) -> Result<(), LakeError> {
        let Plan { schema, keys } = Self::plan(table, &rows)?;
        let open = self.open(table).await?;
        if matches!(open.keys, Keys::Unread) {
            open.keys = match stored_keys(&open.table, table).await? {
                Some(set) => Keys::Tracked(set),
                None => Keys::Untracked,
            };
        }
        // A table not yet created is tracked, and holds nothing.
        let held = match &open.keys {
            Keys::Tracked(set) => set.holds(&keys),
            Keys::Unread | Keys::Untracked => vec![true; keys.len()],
        };
        let row_count = rows.len();
        let (mut fresh, mut known) = (Vec::new(), Vec::new());
        for (row, held) in rows.into_iter().zip(held) {
            if held {
                known.push(row);
            } else {
                fresh.push(row);
            }
        }
        let merged = known.len();
        if !fresh.is_empty() {
            open.table = append_rows(open.table.clone(), table, &schema, fresh).await?;
        }
        if open.table.version().is_none() {
            // No row came: the table still exists afterwards, with its schema.
            let empty = vec![RecordBatch::new_empty(Arc::clone(&schema))];
            open.table = append(open.table.clone(), table, empty).await?;
        }
        tracing::debug!(table, rows = row_count, merged, "batch written");
        if !known.is_empty() {
            let batches = Self::decode(table, &schema, &known)?;
            drop(known);
            let known = concat_batches(&schema, &batches).map_err(|e| err(table, e))?;
            drop(batches);
            open.table = merge(open.table.clone(), table, known).await?;
        }
        if let Keys::Tracked(set) = &mut open.keys {
            set.insert(&keys);
            if set.len() > MAX_TRACKED {
                tracing::info!(table, "too many rows to track; later batches MERGE");
                open.keys = Keys::Untracked;
            }
        }
        Ok(())
    }
}

/// Appends JSON rows to `t` in one commit, decoded into Arrow only as the writer pulls them,
/// a slice of [`SLICE_ROWS`] at a time, the JSON of each slice freed once decoded. Decoding
/// the whole batch first held its Arrow form entirely (for wide rows, 2.9 KB a row in
/// Arrow, about half the ETL's heap at its peak). Two partitions, so that two writer
/// workers decode at once.
async fn append_rows(
    t: DeltaTable,
    table: &str,
    schema: &SchemaRef,
    rows: Vec<Vec<u8>>,
) -> Result<DeltaTable, LakeError> {
    const PARTITIONS: usize = 2;
    let per = rows.len().div_ceil(PARTITIONS).max(1);
    let mut rows = rows.into_iter();
    let mut partitions: Vec<Arc<dyn PartitionStream>> = Vec::new();
    loop {
        let part: Vec<Vec<u8>> = rows.by_ref().take(per).collect();
        if part.is_empty() {
            break;
        }
        partitions.push(Arc::new(JsonRows {
            schema: Arc::clone(schema),
            rows: std::sync::Mutex::new(Some(part)),
        }));
    }
    let source =
        StreamingTable::try_new(Arc::clone(schema), partitions).map_err(|e| err(table, e))?;
    let plan = LogicalPlanBuilder::scan("source", provider_as_source(Arc::new(source)), None)
        .and_then(LogicalPlanBuilder::build)
        .map_err(|e| err(table, e))?;
    t.write(Vec::new())
        .with_input_plan(plan)
        .with_save_mode(SaveMode::Append)
        .with_schema_mode(SchemaMode::Merge)
        .with_writer_properties(writer_properties())
        .await
        .map_err(|e| err(table, e))
}

/// One partition of an append: JSON rows, handed over once, decoded a slice at a time.
#[derive(Debug)]
struct JsonRows {
    schema: SchemaRef,
    rows: std::sync::Mutex<Option<Vec<Vec<u8>>>>,
}

impl PartitionStream for JsonRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let rows = self
            .rows
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .unwrap_or_default();
        let schema = Arc::clone(&self.schema);
        let mut rows = rows.into_iter();
        let mut decoder = None;
        let mut failed = false;
        let batches = std::iter::from_fn(move || {
            if failed {
                return None;
            }
            match next_slice(&schema, &mut decoder, &mut rows) {
                Ok(b) => b.map(Ok),
                Err(e) => {
                    failed = true;
                    Some(Err(DataFusionError::External(Box::new(e))))
                }
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures_util::stream::iter(batches),
        ))
    }
}

/// The next [`SLICE_ROWS`] rows as one batch; `None` when none are left. One decoder for
/// the whole partition: making one reserves its tape for the batch size times every
/// nested field of the wide schema, 30 MB and more at [`ARROW_ROWS`].
fn next_slice(
    schema: &SchemaRef,
    decoder: &mut Option<Decoder>,
    rows: &mut std::vec::IntoIter<Vec<u8>>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let decoder = match decoder {
        Some(d) => d,
        None => decoder.insert(
            ReaderBuilder::new(Arc::clone(schema))
                .with_batch_size(SLICE_ROWS)
                .build_decoder()?,
        ),
    };
    decode_rows(decoder, rows.by_ref().take(SLICE_ROWS))
}

/// Feeds JSON rows to `decoder` and takes them out as one batch; `None` for no rows.
fn decode_rows<R: AsRef<[u8]>>(
    decoder: &mut Decoder,
    rows: impl IntoIterator<Item = R>,
) -> Result<Option<RecordBatch>, ArrowError> {
    for r in rows {
        decoder.decode(r.as_ref())?;
        decoder.decode(b"\n")?;
    }
    decoder.flush()
}

/// Appends `batches` to `t` in one commit, adding any new columns to the table's schema.
async fn append(
    t: DeltaTable,
    table: &str,
    batches: Vec<RecordBatch>,
) -> Result<DeltaTable, LakeError> {
    t.write(batches)
        .with_save_mode(SaveMode::Append)
        .with_schema_mode(SchemaMode::Merge)
        .with_writer_properties(writer_properties())
        .await
        .map_err(|e| err(table, e))
}

/// Snappy as delta-rs writes by default, in row groups of [`WRITE_ROWS`]: the Parquet writer
/// holds a whole row group's encoded pages for every one of the wide schema's hundreds of
/// columns, which at the default million rows was most of the ETL's memory.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(WRITE_ROWS))
        .build()
}

/// The columns that identify a row of `table`.
fn key_columns(table: &str) -> &'static [&'static str] {
    match table {
        COMPLETION => &["table_name", "group_name", "export_time", "etl_time"],
        COMPLETION_ENCOUNTERS => &["encounter_id", "group_name"],
        _ => &["id"],
    }
}

/// A row's key as 64 bits, from its key columns' text (a missing one counts as empty). The
/// same function for incoming rows and stored ones, so that they match.
fn fingerprint<'a>(parts: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// Fingerprints of the keys an existing table holds; `None` if more than [`MAX_TRACKED`].
async fn stored_keys(t: &DeltaTable, table: &str) -> Result<Option<KeySet>, LakeError> {
    let names = key_columns(table);
    let ctx = SessionContext::new();
    t.update_datafusion_session(&ctx.state())
        .map_err(|e| err(table, e))?;
    let provider = t.table_provider().await.map_err(|e| err(table, e))?;
    let df = ctx
        .read_table(provider)
        .map_err(|e| err(table, e))?
        .select_columns(names)
        .map_err(|e| err(table, e))?;
    let mut stream = df.execute_stream().await.map_err(|e| err(table, e))?;
    let mut set = Vec::new();
    while let Some(b) = stream.try_next().await.map_err(|e| err(table, e))? {
        let cols: Vec<StringArray> = (0..names.len())
            .map(|i| {
                deltalake::arrow::compute::cast(b.column(i), &DataType::Utf8)
                    .map_err(|e| err(table, e))
                    .and_then(|a| {
                        a.as_any()
                            .downcast_ref::<StringArray>()
                            .cloned()
                            .ok_or_else(|| err(table, "a key column is not text"))
                    })
            })
            .collect::<Result<_, _>>()?;
        for row in 0..b.num_rows() {
            set.push(fingerprint(
                cols.iter()
                    .map(|c| if c.is_null(row) { "" } else { c.value(row) }),
            ));
        }
        if set.len() > MAX_TRACKED {
            return Ok(None);
        }
    }
    set.sort_unstable();
    set.dedup();
    Ok(Some(KeySet(set)))
}

/// MERGEs `batch` into `t` on the table's keys.
async fn merge(t: DeltaTable, table: &str, batch: RecordBatch) -> Result<DeltaTable, LakeError> {
    let keys = key_columns(table);
    let columns: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    // The source (one batch) on the build side of the join, never the table: DataFusion's
    // join selection chose the table whenever it looked smaller, and a MERGE of 60,000
    // organizations into a table of 200,000 then held 1.3 GB (886 MB with partitioned
    // joins, 775 MB with one partition too; the build time did not change).
    let config = deltalake::datafusion::prelude::SessionConfig::new()
        .set_usize(
            "datafusion.optimizer.hash_join_single_partition_threshold",
            0,
        )
        .set_usize(
            "datafusion.optimizer.hash_join_single_partition_threshold_rows",
            0,
        )
        .set_bool("datafusion.optimizer.join_reordering", false)
        .with_target_partitions(1);
    let ctx = SessionContext::new_with_config(config);
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
        .with_merge_schema(true)
        .with_session_state(Arc::new(ctx.state()))
        // The rewritten files in bounded row groups too: with delta-rs's default of a
        // million-row group, a MERGE into a table of a few hundred thousand wide rows
        // buffered all of it (2.7 GB at 100,000 patients).
        .with_writer_properties(writer_properties());
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
    let (t, _) = merge.await.map_err(|e| err(table, e))?;
    Ok(t)
}

impl DeltaSink {
    fn is_local(&self) -> bool {
        !self.root.contains("://")
    }

    fn store(&mut self) -> Result<deltalake::logstore::ObjectStoreRef, LakeError> {
        if let Some(s) = &self.store {
            return Ok(Arc::clone(s));
        }
        let url = deltalake::ensure_table_uri(&self.root).map_err(|e| err("(root)", e))?;
        let t = self
            .rt
            .block_on(DeltaTable::try_from_url(url))
            .map_err(|e| err("(root)", e))?;
        let store = t.object_store();
        self.store = Some(Arc::clone(&store));
        Ok(store)
    }
}

impl Sink for DeltaSink {
    fn put_file(&mut self, rel: &str, bytes: &[u8]) -> Result<(), LakeError> {
        if self.is_local() {
            return crate::sink::local::put_file(std::path::Path::new(&self.root), rel, bytes);
        }
        let store = self.store()?;
        self.rt.block_on(async {
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
        let store = self.store()?;
        self.rt.block_on(async {
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
        let store = self.store()?;
        self.rt.block_on(async {
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

    fn write_batch(&mut self, table: &str, rows: Vec<Vec<u8>>) -> Result<(), LakeError> {
        let rt = Arc::clone(&self.rt);
        rt.block_on(self.upsert(table, rows))
    }

    fn touch(&mut self, table: &str) -> Result<(), LakeError> {
        let rt = Arc::clone(&self.rt);
        rt.block_on(async {
            if self.open(table).await?.table.version().is_none() {
                self.upsert(table, Vec::new()).await?;
            }
            Ok(())
        })
    }

    fn delete(&mut self, table: &str, ids: &[String]) -> Result<(), LakeError> {
        if ids.is_empty() {
            return Ok(());
        }
        let rt = Arc::clone(&self.rt);
        rt.block_on(async {
            for chunk in ids.chunks(50_000) {
                let open = self.open(table).await?;
                if open.table.version().is_none() {
                    return Ok(());
                }
                let list: Vec<Expr> = chunk.iter().map(|i| lit(i.as_str())).collect();
                let pred = Expr::Column(Column::new_unqualified("id")).in_list(list, false);
                let (t, _) = open
                    .table
                    .clone()
                    .delete()
                    .with_predicate(pred)
                    .with_writer_properties(writer_properties())
                    .await
                    .map_err(|e| err(table, e))?;
                open.table = t;
            }
            Ok(())
        })
    }

    fn finish_table(&mut self, table: &str) -> Result<(), LakeError> {
        // The table's key fingerprints are not needed any more; a later write reloads them.
        let Some(open) = self.open.remove(table) else {
            return Ok(());
        };
        if !self.optimize || open.table.version().is_none() {
            return Ok(());
        }
        self.rt.block_on(optimize(open.table, table))
    }
}

async fn optimize(t: DeltaTable, table: &str) -> Result<(), LakeError> {
    // Snappy, as the appends and as Spark (cumulus-etl's Delta writer) compact, in bounded
    // row groups, two files at a time. Not zstd, delta-rs's default: parquet-rs keeps a zstd
    // context (megabytes at level 4) for every column being written, and the wide schema has
    // hundreds. Its default row groups of a million rows buffered gigabytes too. Compacting
    // a 16-million-row observation table holds about 310 MB of heap; most of what RSS showed
    // beyond that (up to 1.8 GB) was mimalloc keeping freed pages, hence jemalloc.
    let (t, _) = t
        .optimize()
        .with_writer_properties(writer_properties())
        .with_max_concurrent_tasks(2)
        .await
        .map_err(|e| err(table, e))?;
    t.vacuum().await.map_err(|e| err(table, e))?;
    Ok(())
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

pub(crate) fn err(table: &str, e: impl std::fmt::Display) -> LakeError {
    LakeError::Table {
        table: table.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::KeySet;

    #[test]
    fn the_key_set_finds_what_it_holds_and_nothing_else() {
        let mut set = KeySet::default();
        assert_eq!(set.holds(&[1, 2]), [false, false]);
        set.insert(&[50, 10, 30, 10]);
        set.insert(&[20, 30, 60, u64::MAX, 0]);
        assert_eq!(set.0, [0, 10, 20, 30, 50, 60, u64::MAX]);
        assert_eq!(
            set.holds(&[60, 5, 0, 30, u64::MAX, 31, 10, 61]),
            [true, false, true, true, true, false, true, false]
        );
        // Larger, in random order, against a plain set.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 100_000
        };
        let mut plain = std::collections::HashSet::new();
        let mut set = KeySet::default();
        for _ in 0..20 {
            let batch: Vec<u64> = (0..2_000).map(|_| next()).collect();
            let probe: Vec<u64> = (0..500).map(|_| next()).collect();
            let want: Vec<bool> = probe.iter().map(|k| plain.contains(k)).collect();
            assert_eq!(set.holds(&probe), want);
            set.insert(&batch);
            plain.extend(batch);
            assert_eq!(set.len(), plain.len());
        }
        assert!(set.0.windows(2).all(|w| w[0] < w[1]));
    }
}
