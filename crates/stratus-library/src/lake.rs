//! The lake a study reads and writes: the output folder of `stratus etl` in any of its
//! formats. Delta Lake (a folder or `s3://bucket/prefix`) is read in place, streaming, and
//! study tables are written beside the input as Delta tables. The ndjson and Parquet layouts
//! (`<table>/<table>.NNN.<ext>`) get study tables beside them as `<table>/<table>.parquet`;
//! their tables are held in memory while small against the memory limit (a study reads
//! some several times) and streamed from their files when larger.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use stratus_fhir::sonic_rs;
use stratus_lake::deltalake::arrow::array::RecordBatch;
use stratus_lake::deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use stratus_lake::deltalake::arrow::json::ReaderBuilder;
use stratus_lake::deltalake::datafusion::catalog::TableProvider;
use stratus_lake::deltalake::datafusion::catalog::streaming::StreamingTable;
use stratus_lake::deltalake::datafusion::datasource::MemTable;
use stratus_lake::deltalake::datafusion::datasource::file_format::json::JsonFormat;
use stratus_lake::deltalake::datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use stratus_lake::deltalake::datafusion::error::DataFusionError;
use stratus_lake::deltalake::datafusion::execution::memory_pool::MemoryLimit;
use stratus_lake::deltalake::datafusion::execution::{SendableRecordBatchStream, TaskContext};
use stratus_lake::deltalake::datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use stratus_lake::deltalake::datafusion::physical_plan::streaming::PartitionStream;
use stratus_lake::deltalake::datafusion::prelude::{DataFrame, SessionContext};
use stratus_lake::deltalake::operations::write::SchemaMode;
use stratus_lake::deltalake::parquet::arrow::ArrowWriter;
use stratus_lake::deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use stratus_lake::deltalake::protocol::SaveMode;
use stratus_lake::deltalake::{self, DeltaTable};
use stratus_lake::schema::Presence;

use crate::LibraryError;
use crate::conform::{ConformTable, conform_batch, merge_fields};

/// How the lake's tables are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Delta,
    Ndjson,
    Parquet,
}

/// The ETL's bookkeeping tables, all text, with the columns a study may read.
const COMPLETION: &[(&str, &[&str])] = &[
    (
        "etl__completion",
        &[
            "table_name",
            "group_name",
            "export_time",
            "export_url",
            "etl_version",
            "etl_time",
            "excluded_resources",
        ],
    ),
    (
        "etl__completion_encounters",
        &[
            "encounter_id",
            "group_name",
            "export_time",
            "excluded_resources",
        ],
    ),
];

/// An opened lake.
#[derive(Debug, Clone)]
pub struct Lake {
    root: String,
    pub format: Format,
}

impl Lake {
    /// Opens `root` (a folder or `s3://…`, which is always Delta) and works out its format.
    pub fn open(root: &str) -> Result<Lake, LibraryError> {
        deltalake::aws::register_handlers(None);
        if root.contains("://") {
            return Ok(Lake {
                root: root.trim_end_matches('/').to_owned(),
                format: Format::Delta,
            });
        }
        let dir = Path::new(root);
        if !dir.is_dir() {
            return Err(LibraryError::Usage(format!(
                "{root}: no such folder (give the OUTPUT folder of stratus etl)"
            )));
        }
        let abs = std::path::absolute(dir).map_err(|e| LibraryError::io(dir, e))?;
        let mut format = None;
        for t in local_tables(&abs)? {
            let d = abs.join(&t);
            if d.join("_delta_log").is_dir() {
                format = Some(Format::Delta);
                break;
            }
            if has_ext(&d, "ndjson") {
                format = format.or(Some(Format::Ndjson));
            } else if has_ext(&d, "parquet") {
                format = format.or(Some(Format::Parquet));
            }
        }
        let format = format.ok_or_else(|| {
            LibraryError::Usage(format!(
                "{root}: no tables here (expected the OUTPUT folder of stratus etl: one folder per table)"
            ))
        })?;
        Ok(Lake {
            root: abs.display().to_string(),
            format,
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    fn location(&self, table: &str) -> String {
        format!("{}/{table}", self.root)
    }

    /// The names of the lake's tables.
    pub async fn tables(&self) -> Result<Vec<String>, LibraryError> {
        if !self.root.contains("://") {
            let root = PathBuf::from(&self.root);
            return Ok(local_tables(&root)?
                .into_iter()
                .filter(|t| {
                    let d = root.join(t);
                    d.join("_delta_log").is_dir() || has_ext(&d, "ndjson") || has_ext(&d, "parquet")
                })
                .collect());
        }
        let store = self.store().await?;
        let listed = store
            .list_with_delimiter(None)
            .await
            .map_err(|e| LibraryError::table("(root)", e))?;
        let mut out: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn store(&self) -> Result<deltalake::logstore::ObjectStoreRef, LibraryError> {
        let url = deltalake::ensure_table_uri(&self.root)
            .map_err(|e| LibraryError::table("(root)", e))?;
        let t = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| LibraryError::table("(root)", e))?;
        Ok(t.object_store())
    }

    /// Registers `table` in `ctx` with its own schema merged with `wanted`; a table the
    /// lake lacks (`present` false) is registered empty, with `wanted`. Returns the table's
    /// rows when they were counted on the way (ndjson), so no one reads it again for them.
    pub async fn register(
        &self,
        ctx: &SessionContext,
        table: &str,
        wanted: &Schema,
        present: bool,
    ) -> Result<Option<usize>, LibraryError> {
        let mut rows = None;
        let provider: Arc<dyn TableProvider> = if !present {
            let schema = Arc::new(wanted.clone());
            Arc::new(
                MemTable::try_new(schema, vec![vec![]])
                    .map_err(|e| LibraryError::table(table, e))?,
            )
        } else {
            match self.format {
                Format::Delta => {
                    let t = self.load_delta(table).await?;
                    t.update_datafusion_session(&ctx.state())
                        .map_err(|e| LibraryError::table(table, e))?;
                    let inner = t
                        .table_provider()
                        .await
                        .map_err(|e| LibraryError::table(table, e))?;
                    Arc::new(ConformTable::new(inner, wanted))
                }
                Format::Ndjson => {
                    let (provider, n) = self.read_ndjson(ctx, table, wanted)?;
                    rows = Some(n);
                    provider
                }
                Format::Parquet => self.read_parquet(ctx, table, wanted)?,
            }
        };
        ctx.deregister_table(table)
            .map_err(|e| LibraryError::table(table, e))?;
        ctx.register_table(table, provider)
            .map_err(|e| LibraryError::table(table, e))?;
        Ok(rows)
    }

    async fn load_delta(&self, table: &str) -> Result<DeltaTable, LibraryError> {
        let url = deltalake::ensure_table_uri(self.location(table))
            .map_err(|e| LibraryError::table(table, e))?;
        let mut t = DeltaTable::try_from_url(url)
            .await
            .map_err(|e| LibraryError::table(table, e))?;
        t.load().await.map_err(|e| LibraryError::table(table, e))?;
        Ok(t)
    }

    /// Every ndjson file of `table`, decoded with the data's wide schema merged with
    /// `wanted`, and its rows. A table of up to a quarter of the session's memory limit is
    /// decoded once and held in memory (the study reads some tables several times); a
    /// larger one is decoded as each query streams it, so memory stays bounded.
    fn read_ndjson(
        &self,
        ctx: &SessionContext,
        table: &str,
        wanted: &Schema,
    ) -> Result<(Arc<dyn TableProvider>, usize), LibraryError> {
        let files = table_files(&PathBuf::from(self.location(table)), "ndjson")?;
        let mut presence = Presence::default();
        let mut rows = 0;
        let mut bytes = 0u64;
        let mut line = Vec::new();
        for f in &files {
            let file = std::fs::File::open(f).map_err(|e| LibraryError::io(f, e))?;
            let mut reader = std::io::BufReader::new(file);
            let mut n = 0;
            loop {
                line.clear();
                let read = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| LibraryError::io(f, e))?;
                if read == 0 {
                    break;
                }
                n += 1;
                bytes += read as u64;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let v: sonic_rs::Value = sonic_rs::from_slice(&line).map_err(|e| {
                    LibraryError::Usage(format!("{}:{n}: not JSON: {e}", f.display()))
                })?;
                presence.add_value(&v);
                rows += 1;
            }
        }
        let own = match completion_columns(table) {
            Some(cols) => strings(cols),
            None => stratus_lake::schema::for_presence(
                stratus_lake::delta::resource_type_of(table),
                &presence,
            ),
        };
        let schema: SchemaRef = Arc::new(Schema::new(merge_fields(own.fields(), wanted.fields())));
        if bytes > held_budget(ctx) as u64 {
            let dir = self.location(table);
            let url = ListingTableUrl::parse(&dir).map_err(|e| LibraryError::table(table, e))?;
            let options =
                ListingOptions::new(Arc::new(JsonFormat::default())).with_file_extension(".ndjson");
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema);
            let t = ListingTable::try_new(config).map_err(|e| LibraryError::table(table, e))?;
            return Ok((Arc::new(t), rows));
        }
        let mut batches = Vec::new();
        for f in &files {
            let file = std::fs::File::open(f).map_err(|e| LibraryError::io(f, e))?;
            let reader = ReaderBuilder::new(Arc::clone(&schema))
                .with_batch_size(8192)
                .build(std::io::BufReader::new(file))
                .map_err(|e| LibraryError::table(table, e))?;
            for b in reader {
                batches.push(b.map_err(|e| LibraryError::Usage(format!("{}: {e}", f.display())))?);
            }
        }
        let t =
            MemTable::try_new(schema, vec![batches]).map_err(|e| LibraryError::table(table, e))?;
        Ok((Arc::new(t), rows))
    }

    /// Every Parquet file of `table` (each may have its own schema), conformed to one: the
    /// union of the files' schemas, read from their footers, merged with `wanted`. Held in
    /// memory while the files come to at most a quarter of the memory limit, as ndjson
    /// tables are; a larger table is read file by file as each query streams it.
    fn read_parquet(
        &self,
        ctx: &SessionContext,
        table: &str,
        wanted: &Schema,
    ) -> Result<Arc<dyn TableProvider>, LibraryError> {
        let files = table_files(&PathBuf::from(self.location(table)), "parquet")?;
        let mut fields = wanted.fields().clone();
        let mut bytes = 0u64;
        for f in &files {
            let file = std::fs::File::open(f).map_err(|e| LibraryError::io(f, e))?;
            bytes += file.metadata().map_err(|e| LibraryError::io(f, e))?.len();
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| LibraryError::Usage(format!("{}: {e}", f.display())))?;
            fields = merge_fields(builder.schema().fields(), &fields);
        }
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        if bytes > held_budget(ctx) as u64 {
            // One partition per file, so DataFusion reads several at once.
            let partitions = files
                .into_iter()
                .map(|file| {
                    Arc::new(ParquetFileStream {
                        file,
                        schema: Arc::clone(&schema),
                    }) as Arc<dyn PartitionStream>
                })
                .collect();
            let t = StreamingTable::try_new(Arc::clone(&schema), partitions)
                .map_err(|e| LibraryError::table(table, e))?;
            return Ok(Arc::new(t));
        }
        let mut batches = Vec::new();
        for f in &files {
            for b in parquet_batches(f, &schema)? {
                batches.push(b?);
            }
        }
        Ok(Arc::new(
            MemTable::try_new(schema, vec![batches]).map_err(|e| LibraryError::table(table, e))?,
        ))
    }

    /// Writes the result of `df` as study table `table`, replacing any earlier one, and
    /// registers it in `ctx` for the statements after. Returns its row count.
    pub async fn store_table(
        &self,
        ctx: &SessionContext,
        table: &str,
        df: DataFrame,
    ) -> Result<usize, LibraryError> {
        let fail = |e: &dyn std::fmt::Display| LibraryError::table(table, e);
        match self.format {
            Format::Delta => {
                let loc = self.location(table);
                if !loc.contains("://") {
                    // A rebuild starts the table over: its history belongs to an older build.
                    let _ = std::fs::remove_dir_all(&loc);
                    std::fs::create_dir_all(&loc).map_err(|e| LibraryError::io(&loc, e))?;
                }
                let url = deltalake::ensure_table_uri(&loc).map_err(|e| fail(&e))?;
                let t = DeltaTable::try_from_url(url).await.map_err(|e| fail(&e))?;
                let t = t
                    .write(Vec::<RecordBatch>::new())
                    .with_input_plan(df.logical_plan().clone())
                    .with_session_state(Arc::new(ctx.state()))
                    .with_save_mode(SaveMode::Overwrite)
                    .with_schema_mode(SchemaMode::Overwrite)
                    .with_writer_properties(stratus_lake::delta::writer_properties())
                    .await
                    .map_err(|e| fail(&e))?;
                t.update_datafusion_session(&ctx.state())
                    .map_err(|e| fail(&e))?;
                let provider = t.table_provider().await.map_err(|e| fail(&e))?;
                ctx.deregister_table(table).map_err(|e| fail(&e))?;
                ctx.register_table(table, provider).map_err(|e| fail(&e))?;
            }
            Format::Ndjson | Format::Parquet => {
                let dir = PathBuf::from(self.location(table));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).map_err(|e| LibraryError::io(&dir, e))?;
                let path = dir.join(format!("{table}.parquet"));
                let mut stream = df.execute_stream().await.map_err(|e| fail(&e))?;
                // The stream's schema, not the plan's: they can differ in nullability.
                let schema: SchemaRef = stream.schema();
                let file = stratus_fhir::writer::AtomicFile::create(&path)
                    .map_err(|e| LibraryError::Usage(format!("{}: {e}", path.display())))?;
                let mut w = ArrowWriter::try_new(
                    file,
                    Arc::clone(&schema),
                    Some(stratus_lake::delta::writer_properties()),
                )
                .map_err(|e| fail(&e))?;
                // Held in memory for the statements after, up to a quarter of the memory
                // limit; a larger table is read back from its file.
                let budget = held_budget(ctx);
                let mut batches = Some(Vec::new());
                let mut held = 0usize;
                while let Some(b) = stream.try_next().await.map_err(|e| fail(&e))? {
                    w.write(&b).map_err(|e| fail(&e))?;
                    held += b.get_array_memory_size();
                    match &mut batches {
                        Some(kept) if held <= budget => kept.push(b),
                        _ => batches = None,
                    }
                }
                let file = w.into_inner().map_err(|e| fail(&e))?;
                file.commit()
                    .map_err(|e| LibraryError::Usage(format!("{}: {e}", path.display())))?;
                ctx.deregister_table(table).map_err(|e| fail(&e))?;
                match batches {
                    Some(batches) => {
                        let mem = MemTable::try_new(schema, vec![batches]).map_err(|e| fail(&e))?;
                        ctx.register_table(table, Arc::new(mem))
                            .map_err(|e| fail(&e))?;
                    }
                    None => ctx
                        .register_parquet(table, path.display().to_string(), Default::default())
                        .await
                        .map_err(|e| fail(&e))?,
                }
            }
        }
        let n = ctx
            .table(table)
            .await
            .map_err(|e| fail(&e))?
            .count()
            .await
            .map_err(|e| fail(&e))?;
        Ok(n)
    }

    /// Registers an already-built study table for reading (export, report).
    pub async fn register_study_table(
        &self,
        ctx: &SessionContext,
        table: &str,
    ) -> Result<(), LibraryError> {
        let fail = |e: &dyn std::fmt::Display| LibraryError::table(table, e);
        match self.format {
            Format::Delta => {
                let t = self.load_delta(table).await.map_err(|_| {
                    LibraryError::Usage(format!(
                        "{}: no table {table} (run stratus library build first)",
                        self.root
                    ))
                })?;
                t.update_datafusion_session(&ctx.state())
                    .map_err(|e| fail(&e))?;
                let provider = t.table_provider().await.map_err(|e| fail(&e))?;
                ctx.register_table(table, provider).map_err(|e| fail(&e))?;
            }
            Format::Ndjson | Format::Parquet => {
                let path = PathBuf::from(self.location(table)).join(format!("{table}.parquet"));
                if !path.is_file() {
                    return Err(LibraryError::Usage(format!(
                        "{}: no table {table} (run stratus library build first)",
                        self.root
                    )));
                }
                ctx.register_parquet(table, path.display().to_string(), Default::default())
                    .await
                    .map_err(|e| fail(&e))?;
            }
        }
        Ok(())
    }

    /// Removes one study table: a local lake's folder, or every object under the table's
    /// prefix on S3.
    pub async fn drop_table(&self, table: &str) -> Result<(), LibraryError> {
        if self.root.contains("://") {
            let store = self.store().await?;
            let prefix = deltalake::Path::from(table);
            let objects = store.list(Some(&prefix)).map_ok(|o| o.location).boxed();
            let _: Vec<_> = store
                .delete_stream(objects)
                .try_collect()
                .await
                .map_err(|e| LibraryError::table(table, e))?;
            return Ok(());
        }
        let d = PathBuf::from(self.location(table));
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(|e| LibraryError::io(&d, e))?;
        }
        Ok(())
    }

    /// Removes the study tables whose name starts with `prefix__`, except those `keep`
    /// accepts, and returns their names.
    pub async fn drop_prefix(
        &self,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, LibraryError> {
        let mut dropped = Vec::new();
        let p = format!("{prefix}__");
        for t in self.tables().await? {
            if t.starts_with(&p) && !keep(&t) {
                self.drop_table(&t).await?;
                dropped.push(t);
            }
        }
        Ok(dropped)
    }
}

/// The batches of one Parquet file, each conformed to `schema`.
fn parquet_batches(
    file: &Path,
    schema: &SchemaRef,
) -> Result<impl Iterator<Item = Result<RecordBatch, LibraryError>> + use<>, LibraryError> {
    let name = file.display().to_string();
    let f = std::fs::File::open(file).map_err(|e| LibraryError::io(file, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .and_then(|b| b.build())
        .map_err(|e| LibraryError::Usage(format!("{name}: {e}")))?;
    let schema = Arc::clone(schema);
    Ok(reader.map(move |b| {
        let b = b.map_err(|e| LibraryError::Usage(format!("{name}: {e}")))?;
        conform_batch(&b, &schema).map_err(|e| LibraryError::Usage(format!("{name}: {e}")))
    }))
}

/// One Parquet file of a streamed Parquet-layout table: a partition that reads it again
/// each time a query scans the table.
#[derive(Debug)]
struct ParquetFileStream {
    file: PathBuf,
    schema: SchemaRef,
}

impl PartitionStream for ParquetFileStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let to_df = |e: LibraryError| DataFusionError::External(Box::new(e));
        let batches: Box<dyn Iterator<Item = _> + Send> =
            match parquet_batches(&self.file, &self.schema) {
                Ok(it) => Box::new(it.map(move |b| b.map_err(to_df))),
                Err(e) => Box::new(std::iter::once(Err(to_df(e)))),
            };
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            futures_util::stream::iter(batches),
        ))
    }
}

/// The most bytes of one table the ndjson and Parquet layouts hold in memory: a quarter of
/// the session's memory limit (held tables are outside the engine's accounting).
fn held_budget(ctx: &SessionContext) -> usize {
    match ctx.runtime_env().memory_pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit / 4,
        MemoryLimit::Infinite | MemoryLimit::Unknown => usize::MAX,
    }
}

/// The columns of an ETL bookkeeping table.
pub fn completion_columns(table: &str) -> Option<&'static [&'static str]> {
    COMPLETION
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, c)| *c)
}

/// An all-text schema.
pub fn strings(names: &[&str]) -> Schema {
    Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    )
}

fn local_tables(root: &Path) -> Result<Vec<String>, LibraryError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root)
        .map_err(|e| LibraryError::io(root, e))?
        .flatten()
    {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && name != "JobConfig" {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_ext(dir: &Path, ext: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == ext))
    })
}

fn table_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, LibraryError> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LibraryError::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    Ok(out)
}
