//! Building a study: its source tables registered (fitted to the fields it reads), then its
//! actions in order. A `build` action runs the statements of its SQL files; each
//! `CREATE TABLE <prefix>__<name> AS SELECT …` is written to the lake and can be read by
//! the statements after it. A `counts` action makes one CUBE table per workflow entry.

use std::future::Future;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stratus_fhir::sonic_rs;
use stratus_lake::deltalake::arrow::datatypes::Schema;
use stratus_lake::deltalake::datafusion::datasource::MemTable;
use stratus_lake::deltalake::datafusion::execution::SessionStateBuilder;
use stratus_lake::deltalake::datafusion::execution::disk_manager::DiskManagerBuilder;
use stratus_lake::deltalake::datafusion::execution::memory_pool::{
    FairSpillPool, TrackConsumersPool,
};
use stratus_lake::deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use stratus_lake::deltalake::datafusion::logical_expr::{DdlStatement, LogicalPlan};
use stratus_lake::deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use stratus_lake::deltalake::datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use stratus_lake::deltalake::delta_datafusion::planner::DeltaPlanner;
use stratus_lake::schema::Presence;

use crate::counts::{MIN_COUNT, Workflow};
use crate::lake::{Lake, completion_columns, strings};
use crate::stall::{self, STALL_TIMEOUT};
use crate::study::Study;
use crate::{LibraryError, joins, lists, udf};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The lake: the OUTPUT of `stratus etl` (a folder or `s3://…`).
    pub lake: String,
    /// Studies to build, in order.
    pub targets: Vec<String>,
    /// Folders searched for more studies.
    pub study_dirs: Vec<PathBuf>,
    /// Counts cells under this are left out (default 10).
    pub min_count: Option<u64>,
    /// The most memory the SQL engine may hold (default [`MEMORY_LIMIT`]). Sorts and
    /// aggregations spill to disk past it, and so do joins once they sort and merge (see
    /// `merge_joins`); what still cannot fit fails with a message saying so, instead of
    /// the process being killed.
    pub memory_limit: Option<usize>,
    /// Sort-merge joins (true) or hash joins (false); `None` picks by the largest source's
    /// rows against the memory limit (see [`HASH_JOIN_BYTES_PER_ROW`]).
    pub merge_joins: Option<bool>,
    /// How long a table's query may use no CPU before it is taken to have stalled (default
    /// [`STALL_TIMEOUT`]; zero never gives up). A stalled table is tried once more, then
    /// the build fails naming it, where it would otherwise wait forever (see [`crate::stall`]).
    pub stall_timeout: Option<Duration>,
}

/// The most spilled runs one merge reads at once (more are merged in several passes).
const SPILL_MERGE_FAN_IN: usize = 16;

/// The SQL engine's default memory limit.
pub const MEMORY_LIMIT: usize = 4 << 30;

/// What a study's build made.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    pub study: String,
    /// (table, rows), in the order built.
    pub tables: Vec<(String, usize)>,
    /// Source tables the lake lacked, read as empty.
    pub missing: Vec<String>,
    pub seconds: f64,
}

/// Drops a study's tables from the lake, as cumulus-library's `clean`: every
/// `<prefix>__*` table except those named `<prefix>__lib_*` or `<prefix>__etl_*`, which
/// hold bookkeeping a site keeps across builds. Returns the tables dropped.
pub fn clean(
    lake: &str,
    target: &str,
    study_dirs: &[PathBuf],
) -> Result<Vec<String>, LibraryError> {
    let study = Study::find(target, study_dirs)?;
    let rt = runtime()?;
    rt.block_on(async {
        let lake = Lake::open(lake)?;
        lake.drop_prefix(&study.prefix, |t| protected(&study.prefix, t))
            .await
    })
}

/// The runtime each library action runs its async work on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, LibraryError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| LibraryError::Usage(format!("cannot start the runtime: {e}")))
}

/// A table `clean` and a rebuild leave alone: `<prefix>__lib_*` and `<prefix>__etl_*`.
fn protected(prefix: &str, table: &str) -> bool {
    table
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix("__"))
        .is_some_and(|t| t.starts_with("lib_") || t.starts_with("etl_"))
}

/// Builds each target study on the lake.
pub fn build(
    opts: &BuildOptions,
    mut on_table: impl FnMut(&str, &str, usize),
) -> Result<Vec<BuildSummary>, LibraryError> {
    let studies = opts
        .targets
        .iter()
        .map(|t| Study::find(t, &opts.study_dirs))
        .collect::<Result<Vec<_>, _>>()?;
    let rt = runtime()?;
    rt.block_on(async {
        let lake = Lake::open(&opts.lake)?;
        let mut out = Vec::new();
        for study in &studies {
            out.push(build_study(&lake, study, opts, &mut on_table).await?);
        }
        Ok(out)
    })
}

/// A session with this crate's functions, on every core, with the default memory limit.
pub fn session() -> SessionContext {
    session_with_limit(MEMORY_LIMIT)
}

/// A session whose queries hold at most `limit` bytes (spilling sorts and aggregations to
/// the temporary folder past it).
pub fn session_with_limit(limit: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_batch_size(8192);
    let runtime = RuntimeEnvBuilder::new()
        // Fair, not greedy: with joins that sort and merge, many operators spill at once,
        // and a greedy pool lets the first take everything, so the next sort cannot even
        // start its merge.
        // Tracked, so that running out names the operators that held the memory.
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
        )))
        // A merge of spilled runs takes memory for a batch of every run it reads at once;
        // uncapped, one merge can take the whole pool and starve the sorts after it.
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_max_spill_merge_fan_in(SPILL_MERGE_FAN_IN),
        )
        .build_arc()
        .unwrap_or_default();
    let defaults = SessionStateBuilder::new()
        .with_config(config.clone())
        .with_runtime_env(runtime)
        .with_default_features()
        .build();
    // This rule (DataFusion 55) fails to plan struct fields read through a table alias in
    // a CTE ("ambiguous __datafusion_extracted_N"), which is how every study reads FHIR.
    let rules: Vec<_> = defaults
        .optimizers()
        .iter()
        .filter(|r| r.name() != "push_down_leaf_projections")
        .cloned()
        .collect();
    // Before DataFusion's join selection, which then places the small side.
    let mut physical: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
        vec![Arc::new(joins::SmallSideHashJoin::new(limit / 8))];
    physical.extend(defaults.physical_optimizers().iter().cloned());
    // Delta's planner, so that a Delta write can run a plan made in this session.
    let state = SessionStateBuilder::new_from_existing(defaults)
        .with_optimizer_rules(rules)
        .with_physical_optimizer_rules(physical)
        .with_query_planner(DeltaPlanner::new())
        .build();
    let ctx = SessionContext::new_with_state(state);
    udf::register(&ctx);
    lists::register(&ctx);
    ctx
}

async fn build_study(
    lake: &Lake,
    study: &Study,
    opts: &BuildOptions,
    on_table: &mut impl FnMut(&str, &str, usize),
) -> Result<BuildSummary, LibraryError> {
    let start = Instant::now();
    let ctx = session_with_limit(opts.memory_limit.unwrap_or(MEMORY_LIMIT));
    // `pick_coding(field, '<code table>')` keeps the coding that code table's priority
    // keeps, so a flat table need not join the code table back.
    let picks = study
        .codes
        .values()
        .flatten()
        .filter(|t| !t.priority.is_empty())
        .map(|t| (study.table_name(&t.name), t.priority.clone()))
        .collect();
    lists::register_picks(&ctx, picks);
    let have = lake.tables().await?;
    let mut missing = Vec::new();
    let mut counted = Vec::new();
    for (table, paths) in &study.sources {
        let wanted = wanted_schema(table, paths)?;
        let present = have.contains(table);
        if !present {
            missing.push(table.clone());
        }
        counted.push((table, lake.register(&ctx, table, &wanted, present).await?));
    }
    // Other studies' tables (a study may read core's), as they are.
    for t in &have {
        if t.contains("__") && !t.starts_with("etl__") && !study.sources.contains_key(t) {
            let _ = lake.register_study_table(&ctx, t).await;
        }
    }
    lake.drop_prefix(&study.prefix, |t| protected(&study.prefix, t))
        .await?;
    let limit = opts.memory_limit.unwrap_or(MEMORY_LIMIT);
    let merge = match opts.merge_joins {
        Some(m) => m,
        None => {
            let largest = largest_source(&ctx, &counted).await;
            let large = largest.saturating_mul(HASH_JOIN_BYTES_PER_ROW) > limit;
            if large {
                tracing::info!(
                    rows = largest,
                    "large input: joins sort and merge (spilling) instead of hashing in memory"
                );
            }
            large
        }
    };
    if merge {
        merge_joins(&ctx);
    }
    log_transaction(lake, &ctx, study, "started", None).await?;
    let built = run_actions(lake, &ctx, study, opts, on_table).await;
    let tables = match built {
        Ok(tables) => tables,
        Err(e) => {
            let message = e.to_string();
            let _ = log_transaction(lake, &ctx, study, "error", Some(&message)).await;
            return Err(e);
        }
    };
    record_build_source(lake, &ctx, study, &tables).await?;
    log_transaction(lake, &ctx, study, "finished", None).await?;
    Ok(BuildSummary {
        study: study.prefix.clone(),
        tables,
        missing,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Runs a study's actions in order and returns the tables kept, in the order built.
async fn run_actions(
    lake: &Lake,
    ctx: &SessionContext,
    study: &Study,
    opts: &BuildOptions,
    on_table: &mut impl FnMut(&str, &str, usize),
) -> Result<Vec<(String, usize)>, LibraryError> {
    let mut tables = Vec::new();
    let min_count = opts.min_count.unwrap_or(MIN_COUNT);
    let stall = opts.stall_timeout.unwrap_or(STALL_TIMEOUT);
    for action in &study.actions {
        match action.kind.as_str() {
            "build" => {
                for file in &action.files {
                    let sql = study.read(file)?;
                    for stmt in statements(&sql) {
                        if let Some((name, rows)) =
                            run(lake, ctx, study, file, &stmt, stall).await?
                        {
                            on_table(&study.prefix, &name, rows);
                            tables.push((name, rows));
                        }
                    }
                }
            }
            "codes" => {
                for file in &action.files {
                    for t in study.codes.get(file).into_iter().flatten() {
                        for stmt in t.sql(&study.table_name(&t.name))? {
                            if let Some((name, rows)) =
                                run(lake, ctx, study, file, &stmt, stall).await?
                            {
                                on_table(&study.prefix, &name, rows);
                                tables.push((name, rows));
                            }
                        }
                    }
                }
            }
            "code_sources" => {
                for file in &action.files {
                    let Some(f) = study.code_sources.get(file) else {
                        continue;
                    };
                    for stmt in f.sql(&study.table_name(&f.table)) {
                        if let Some((name, rows)) =
                            run(lake, ctx, study, file, &stmt, stall).await?
                        {
                            on_table(&study.prefix, &name, rows);
                            tables.push((name, rows));
                        }
                    }
                }
            }
            "counts" => {
                for file in &action.files {
                    let w = Workflow::parse(&study.read(file)?, &study.path(file))?;
                    for (name, t) in &w.tables {
                        let name = study.table_name(name);
                        let q = crate::counts::query(t, min_count);
                        let started = Instant::now();
                        let cells = guarded(
                            async {
                                crate::cube::powerset(ctx, &q.input, q.ids).await.map_err(
                                    |message| LibraryError::Statement {
                                        study: study.prefix.clone(),
                                        file: file.clone(),
                                        message: format!("{name}: {message}"),
                                    },
                                )
                            },
                            stall,
                            &name,
                        )
                        .await?;
                        tracing::info!(
                            table = name.as_str(),
                            ms = started.elapsed().as_millis() as u64,
                            "cells counted"
                        );
                        let held = cells.is_some();
                        let select = match cells {
                            Some(table) => {
                                ctx.register_table(COUNT_CELLS, Arc::new(table))
                                    .map_err(|e| LibraryError::table(&name, e))?;
                                q.over(COUNT_CELLS)
                            }
                            None => q.inline(),
                        };
                        let stmt = format!("CREATE TABLE {name} AS {select}");
                        let built = run(lake, ctx, study, file, &stmt, stall).await;
                        if held {
                            let _ = ctx.deregister_table(COUNT_CELLS);
                        }
                        if let Some((name, rows)) = built? {
                            on_table(&study.prefix, &name, rows);
                            tables.push((name, rows));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // Working tables (`_tmp_` in the name, `<prefix>__tmp_*` included) go once the study
    // is built, as cumulus-library's discovery drops its tmp tables.
    let (tmp_tables, kept): (Vec<_>, Vec<_>) = tables
        .into_iter()
        .partition(|(name, _): &(String, usize)| name.contains("_tmp_"));
    for (name, _) in &tmp_tables {
        lake.drop_table(name).await?;
    }
    Ok(kept)
}

/// The stage a build runs: the manifest's `default`, or all of its stages in order.
const STAGE: &str = "default";

/// Adds a row to `<prefix>__lib_transactions` (study_name, library_version, status,
/// event_time, message), the log of a study's builds cumulus-library keeps: `started`,
/// then `finished` or `error`. The library version is Stratus's.
async fn log_transaction(
    lake: &Lake,
    ctx: &SessionContext,
    study: &Study,
    status: &str,
    message: Option<&str>,
) -> Result<(), LibraryError> {
    let row = format!(
        "SELECT {} AS study_name, {} AS library_version, {} AS status, \
         arrow_cast(now(), 'Timestamp(Microsecond, Some(\"UTC\"))') AS event_time, \
         CAST({} AS VARCHAR) AS message",
        quote(&study.prefix),
        quote(env!("CARGO_PKG_VERSION")),
        quote(status),
        message.map_or("NULL".to_owned(), quote),
    );
    let table = study.table_name("lib_transactions");
    rewrite_lib_table(lake, ctx, &table, "true", &row).await
}

/// Replaces this stage's rows of `<prefix>__lib_build_source` (stage, name, type) with the
/// tables the build made, which `clean` and a site's tooling read to know what a study owns.
async fn record_build_source(
    lake: &Lake,
    ctx: &SessionContext,
    study: &Study,
    tables: &[(String, usize)],
) -> Result<(), LibraryError> {
    let rows = tables
        .iter()
        .map(|(name, _)| {
            format!(
                "SELECT {} AS stage, {} AS name, 'table' AS type",
                quote(STAGE),
                quote(name)
            )
        })
        .collect::<Vec<_>>();
    let rows = if rows.is_empty() {
        "SELECT CAST(NULL AS VARCHAR) AS stage, CAST(NULL AS VARCHAR) AS name, \
         CAST(NULL AS VARCHAR) AS type WHERE false"
            .to_owned()
    } else {
        rows.join(" UNION ALL ")
    };
    let table = study.table_name("lib_build_source");
    let keep = format!("stage <> {}", quote(STAGE));
    rewrite_lib_table(lake, ctx, &table, &keep, &rows).await
}

/// Writes `table` as its old rows that `keep` (SQL) selects followed by `new_rows` (a
/// SELECT of the same columns). The old rows are read into memory first: these tables are
/// small, and a local lake's table is removed before it is written again.
async fn rewrite_lib_table(
    lake: &Lake,
    ctx: &SessionContext,
    table: &str,
    keep: &str,
    new_rows: &str,
) -> Result<(), LibraryError> {
    const OLD: &str = "stratus_lib_old";
    let fail = |e: &dyn std::fmt::Display| LibraryError::table(table, e);
    let mut select = new_rows.to_owned();
    // As the lake has it now (an earlier study's build may have registered it).
    let _ = ctx.deregister_table(table);
    if lake.register_study_table(ctx, table).await.is_ok() {
        let df = ctx
            .sql(&format!("SELECT * FROM {table} WHERE {keep}"))
            .await
            .map_err(|e| fail(&e))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| fail(&e))?;
        let old = MemTable::try_new(schema, vec![batches]).map_err(|e| fail(&e))?;
        let _ = ctx.deregister_table(OLD);
        ctx.register_table(OLD, Arc::new(old))
            .map_err(|e| fail(&e))?;
        select = format!("SELECT * FROM {OLD} UNION ALL {new_rows}");
    }
    let df = ctx.sql(&select).await.map_err(|e| fail(&e))?;
    let stored = lake.store_table(ctx, table, df).await;
    let _ = ctx.deregister_table(OLD);
    stored.map(|_| ())
}

/// `s` as a SQL string literal.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Bytes a hash join holds per row of its build side, roughly, for the wide tables the
/// core study joins (measured: `core__observation` at 16 million rows asked for more than
/// 10 GiB). A source larger than the memory limit allows at this rate is joined by sorting
/// and merging, which spills to disk, so memory stays bounded at any input size.
pub const HASH_JOIN_BYTES_PER_ROW: usize = 512;

/// The rows of the largest of `tables`: counted when they were registered, or else read
/// from file metadata (Delta, Parquet).
async fn largest_source(ctx: &SessionContext, tables: &[(&String, Option<usize>)]) -> usize {
    let mut largest = 0;
    for (t, rows) in tables {
        let n = match rows {
            Some(n) => *n,
            None => match ctx.table(t.as_str()).await {
                Ok(df) => df.count().await.unwrap_or(0),
                Err(_) => 0,
            },
        };
        largest = largest.max(n);
    }
    largest
}

/// Switches `ctx` from hash joins, which hold a whole side in memory and cannot spill, to
/// sort-merge joins, whose sorts and buffers spill past the memory limit.
///
/// Round-robin repartitioning goes too: with two input partitions spilling into it at
/// once, DataFusion 55's repartition spill pool can park every thread for good
/// (apache/datafusion#24883), and a merge-join plan needs only the hash repartitioning on
/// its keys. (One partition would avoid it entirely, but DataFusion plans sort-merge joins
/// only with more than one.)
fn merge_joins(ctx: &SessionContext) {
    let state = ctx.state_ref();
    let mut state = state.write();
    let options = state.config_mut().options_mut();
    options.optimizer.prefer_hash_join = false;
    options.optimizer.enable_round_robin_repartition = false;
}

fn hash_joins(ctx: &SessionContext) -> bool {
    ctx.state_ref()
        .read()
        .config()
        .options()
        .optimizer
        .prefer_hash_join
}

/// The table name a counts table's cells are held under while the kept ones are chosen.
const COUNT_CELLS: &str = "stratus_count_cells";

/// Runs one statement; a `CREATE TABLE … AS` is stored in the lake and gives its name and
/// row count.
async fn run(
    lake: &Lake,
    ctx: &SessionContext,
    study: &Study,
    file: &str,
    stmt: &str,
    stall: Duration,
) -> Result<Option<(String, usize)>, LibraryError> {
    let fail = |message: String| LibraryError::Statement {
        study: study.prefix.clone(),
        file: file.to_owned(),
        message,
    };
    let started = Instant::now();
    let plan = ctx
        .state()
        .create_logical_plan(stmt)
        .await
        .map_err(|e| fail(format!("{e}\n  in: {}", first_line(stmt))))?;
    let fail_table = |name: &str, e: LibraryError| match e {
        LibraryError::Table { message, .. } if message.contains("Resources exhausted") => fail(
            format!("{name}: needs more memory than --memory-limit allows ({message})"),
        ),
        e => e,
    };
    if let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(c)) = &plan {
        let name = c.name.table().to_owned();
        let prefix = format!("{}__", study.prefix);
        if !name.starts_with(&prefix) || name[prefix.len()..].contains("__") {
            return Err(fail(format!(
                "table {name}: a study's tables are named {prefix}<name>, with no other __"
            )));
        }
        let input = c.input.as_ref().clone();
        let mut stalled = false;
        let rows = loop {
            // Athena lower-cases every column name; so do the study's tables.
            let df = DataFrame::new(ctx.state(), input.clone());
            let df = lower_case_columns(df).map_err(|e| fail(format!("{name}: {e}")))?;
            match guarded(lake.store_table(ctx, &name, df), stall, &name).await {
                Ok(rows) => break rows,
                // The engine's deadlock is a race between its tasks: a second run of the
                // same query rarely meets it again. (A rebuild overwrites the table.)
                Err(LibraryError::Stalled { seconds, .. }) if !stalled => {
                    tracing::warn!(
                        table = name.as_str(),
                        seconds,
                        "no progress (no CPU used); cancelled and started again"
                    );
                    stalled = true;
                }
                // A small-side hash join that was not small: the rest of the build sorts
                // and merges all its joins.
                Err(LibraryError::Table { message, .. })
                    if message.contains("Resources exhausted")
                        && message.contains("HashJoin")
                        && !hash_joins(ctx)
                        && joins::rule(&ctx.state()).is_some_and(|r| r.is_on()) =>
                {
                    tracing::warn!(
                        table = name.as_str(),
                        "out of memory in a hash join of a side estimated small; \
                         retrying with every join sorted and merged"
                    );
                    if let Some(r) = joins::rule(&ctx.state()) {
                        r.turn_off();
                    }
                }
                // A hash join that did not fit: the rest of the build merges instead.
                Err(LibraryError::Table { message, .. })
                    if message.contains("Resources exhausted") && hash_joins(ctx) =>
                {
                    tracing::warn!(
                        table = name.as_str(),
                        "out of memory in a hash join; retrying with sort-merge joins"
                    );
                    // The join is chosen when the plan is made physical, at the write.
                    merge_joins(ctx);
                }
                Err(e) => return Err(fail_table(&name, e)),
            }
        };
        tracing::info!(
            table = name.as_str(),
            rows,
            ms = started.elapsed().as_millis() as u64,
            "table built"
        );
        return Ok(Some((name, rows)));
    }
    let df = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let what = first_line(stmt);
    guarded(
        async { df.collect().await.map_err(|e| fail(e.to_string())) },
        stall,
        &what,
    )
    .await?;
    Ok(None)
}

/// Runs `work` under the stall guard: if the process uses no CPU for `stall` (zero: no
/// guard) while it runs, it is cancelled and the answer is [`LibraryError::Stalled`] for
/// `table`.
async fn guarded<T>(
    work: impl Future<Output = Result<T, LibraryError>>,
    stall: Duration,
    table: &str,
) -> Result<T, LibraryError> {
    match stall::guard(work, stall, stall::cpu_time).await {
        Ok(out) => out,
        Err(s) => Err(LibraryError::Stalled {
            table: table.to_owned(),
            seconds: s.seconds,
        }),
    }
}

fn lower_case_columns(
    df: DataFrame,
) -> Result<DataFrame, stratus_lake::deltalake::datafusion::common::DataFusionError> {
    use stratus_lake::deltalake::datafusion::common::Column;
    use stratus_lake::deltalake::datafusion::prelude::Expr;
    let exprs: Vec<Expr> = df
        .schema()
        .columns()
        .into_iter()
        .map(|c: Column| {
            let lower = c.name.to_lowercase();
            Expr::Column(c).alias(lower)
        })
        .collect();
    df.select(exprs)
}

/// The schema a study wants of a source table: the wide schema of the fields it names.
fn wanted_schema(table: &str, paths: &[String]) -> Result<Schema, LibraryError> {
    if let Some(cols) = completion_columns(table) {
        return Ok(strings(cols));
    }
    // A row holding every named path: the wide schema builder then keeps each of them.
    let mut row = serde_json::Map::new();
    for p in paths {
        let mut at = &mut row;
        // `contained.<Type>.<path>`: a field of contained resources of that type.
        let mut owned: Vec<String> = p.split('.').map(str::to_owned).collect();
        if owned.first().is_some_and(|f| f == "contained") && owned.len() > 2 {
            let t = owned.remove(1);
            let contained = row
                .entry("contained")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(items) = contained.as_array_mut() {
                let mut item = serde_json::Map::new();
                item.insert("resourceType".into(), serde_json::Value::String(t));
                let mut cur = &mut item;
                for (i, part) in owned[1..].iter().enumerate() {
                    if i + 2 == owned.len() {
                        cur.insert(part.clone(), serde_json::Value::String("x".into()));
                    } else {
                        cur = match cur
                            .entry(part.clone())
                            .or_insert_with(|| serde_json::Value::Object(Default::default()))
                            .as_object_mut()
                        {
                            Some(o) => o,
                            None => break,
                        };
                    }
                }
                items.push(serde_json::Value::Object(item));
            }
            continue;
        }
        let parts: Vec<&str> = owned.iter().map(String::as_str).collect();
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                at.entry(part.to_string())
                    .or_insert_with(|| serde_json::Value::String("x".into()));
            } else {
                let next = at
                    .entry(part.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if !next.is_object() {
                    *next = serde_json::Value::Object(Default::default());
                }
                at = match next.as_object_mut() {
                    Some(o) => o,
                    None => break,
                };
            }
        }
    }
    let text = serde_json::Value::Object(row).to_string();
    let v: sonic_rs::Value =
        sonic_rs::from_str(&text).map_err(|e| LibraryError::table(table, e))?;
    let mut presence = Presence::default();
    presence.add_value(&v);
    Ok(stratus_lake::schema::for_presence(
        stratus_lake::delta::resource_type_of(table),
        &presence,
    ))
}

/// The statements of a SQL file: `--` comments dropped, split on `;` outside quotes.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_owned());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or_default();
    if l.len() > 100 {
        format!("{}…", &l[..l.floor_char_boundary(100)])
    } else {
        l.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn statements_split_on_semicolons_outside_quotes_and_comments() {
        let s = statements("-- a; comment\nSELECT 'a;b'; SELECT \"x;\" -- c;\n;\n\n");
        assert_eq!(s, ["SELECT 'a;b'", "SELECT \"x;\""]);
    }
}
