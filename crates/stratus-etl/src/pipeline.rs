//! One ETL run. Tasks run in cumulus-etl's order; each streams its files line by line,
//! scrubs chunks of lines on every core (rayon), cuts batches of `batch_size` items
//! (an Encounter counts twice, for its completion row), deduplicates each batch by id (the
//! last row wins, order kept), and hands it to the sink; then deletions, the completion
//! row and the task summary. Memory is one batch plus one chunk, whatever the input size.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use stratus_deid::{Codebook, ScrubReport, Scrubber};
use stratus_fhir::reader::{Line, NdjsonReader, ReaderOptions};
use stratus_fhir::resource::first_line;
use stratus_fhir::sonic_rs::{self, JsonValueTrait};
use stratus_fhir::writer::AtomicFile;

use crate::EtlError;
use crate::Sink;
use crate::input::Input;
use crate::tasks::{self, COMPLETION, COMPLETION_ENCOUNTERS};
use crate::time;

/// Where a run records its progress, under OUTPUT, so an interrupted run can continue.
pub const RUN_FILE: &str = ".stratus-etl-run.json";

/// The version written into `etl__completion.etl_version`.
pub const ETL_VERSION: &str = concat!("stratus-", env!("CARGO_PKG_VERSION"));

const CHUNK: usize = 4096;
/// The most JSON a batch holds for table outputs (Delta Lake, Parquet), whatever
/// `--batch-size` says. A batch there is Arrow and Parquet pages on top of its JSON, two
/// batches are in flight, and rows vary fifty-fold in size (a DiagnosticReport with its
/// note against a vital sign), so a bound in rows alone let 100,000 large rows take over a
/// gigabyte. ndjson output keeps batches of exactly `--batch-size`, as cumulus-etl's layout
/// has them; it holds only the JSON.
const TABLE_BATCH_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct EtlOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub phi: PathBuf,
    pub tasks: Vec<String>,
    pub exclude: Vec<String>,
    pub batch_size: usize,
    pub export_group: Option<String>,
    pub export_timestamp: Option<String>,
    pub errors_to: Option<PathBuf>,
    pub comment: String,
    pub allow_missing: bool,
    pub output_format: String,
}

/// What one task did.
#[derive(Debug, Clone, Default)]
pub struct TaskSummary {
    pub table: String,
    /// Rows scrubbed and written (before deduplication within batches).
    pub attempt: u64,
    pub success: u64,
    /// Resources the scrubber left out (shape, modifier extension, reference).
    pub rejected: u64,
    /// Lines that were not usable resources (not JSON, wrong type, no id).
    pub bad_lines: u64,
    pub deleted: u64,
}

#[derive(Debug, Clone, Default)]
pub struct EtlReport {
    pub tasks: Vec<TaskSummary>,
    pub skipped_tasks: Vec<String>,
    /// This run continued an interrupted one.
    pub resumed: bool,
    pub scrub: ScrubReport,
    pub job_dir: PathBuf,
    pub group: String,
    pub export_time: String,
    /// The first problems, as `file:line: reason`.
    pub problems: Vec<String>,
}

impl EtlReport {
    pub fn bad_input(&self) -> u64 {
        self.tasks.iter().map(|t| t.bad_lines + t.rejected).sum()
    }
}

/// Live counters.
#[derive(Debug, Default)]
pub struct EtlProgress {
    pub task: Mutex<String>,
    pub resources: AtomicU64,
}

#[derive(Serialize)]
struct JobConfig<'a> {
    dir_input: String,
    dir_output: String,
    dir_phi: String,
    path: String,
    input_format: &'a str,
    output_format: &'a str,
    comment: &'a str,
    batch_size: usize,
    tasks: String,
    export_group_name: &'a str,
    export_timestamp: &'a str,
    export_url: Option<&'a str>,
    codebook_id: &'a str,
    exclusions: String,
}

#[derive(Serialize)]
struct Summary<'a> {
    label: &'a str,
    attempt: u64,
    success: u64,
    success_rate: f64,
    had_errors: bool,
    timestamp: String,
    hostname: String,
}

/// Runs the ETL into `sink`.
pub fn run(
    opts: &EtlOptions,
    sink: &mut dyn Sink,
    progress: &EtlProgress,
) -> Result<EtlReport, EtlError> {
    let input = Input::open(&opts.input)?;
    let mut report = EtlReport::default();
    let chosen = tasks::select(&opts.tasks, &opts.exclude).map_err(EtlError::Usage)?;
    let mut run_tasks = Vec::new();
    for (name, rtype) in chosen {
        if input.files.contains_key(rtype) || opts.allow_missing {
            run_tasks.push((name, rtype));
        } else if !opts.tasks.is_empty() {
            return Err(EtlError::Usage(format!(
                "task {name} was asked for but the input has no {rtype} files (--allow-missing-resources runs it anyway)"
            )));
        } else {
            tracing::warn!("No {rtype} files found in input");
            report.skipped_tasks.push(name.to_owned());
        }
    }
    if run_tasks.is_empty() {
        return Err(EtlError::Usage(format!(
            "no supported resources found in {}",
            opts.input.display()
        )));
    }

    let group = opts
        .export_group
        .clone()
        .filter(|g| !g.is_empty())
        .or(input.log.group.clone());
    let when = opts
        .export_timestamp
        .clone()
        .filter(|t| !t.is_empty())
        .or(input.log.time.clone());
    let (group, when) = match (group, when) {
        (Some(g), Some(t)) => (g, t),
        (g, t) => {
            let missing: Vec<&str> = [
                g.is_none().then_some("--export-group"),
                t.is_none().then_some("--export-timestamp"),
            ]
            .into_iter()
            .flatten()
            .collect();
            return Err(EtlError::Completion(format!(
                "the input has no usable log.ndjson to say which export it is; give {}",
                missing.join(" and ")
            )));
        }
    };
    let export_time = time::python_isoformat(&when).ok_or_else(|| {
        EtlError::Usage(format!("export timestamp '{when}' is not an ISO date-time"))
    })?;
    report.group = group.clone();
    report.export_time = export_time.clone();

    let book = Codebook::open(&opts.phi)?;
    check_phi(sink, &opts.output, book.codebook_id())?;
    // An unfinished run of the same input continues: same job folder and ETL time, the
    // finished tasks skipped, and what the interrupted task wrote rolled back.
    let previous = sink
        .get_file(RUN_FILE)?
        .and_then(|b| unfinished_run(&b, &opts.input));
    let stamp = stratus_fhir::date::format_instant(stratus_fhir::date::now_ms());
    let (etl_time, job_name, done_tasks) = match &previous {
        Some(v) => {
            if let Some(files) = v.get("files").and_then(|f| f.as_object()) {
                for (table, n) in files {
                    sink.rollback(table, n.as_u64().unwrap_or(0) as usize)?;
                }
            }
            tracing::info!("continuing the interrupted run");
            (
                v.get("etl_time")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                v.get("job")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                v.get("tasks_done")
                    .and_then(|t| t.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
        None => (
            time::now_isoformat(),
            format!(
                "{}__{}.{}.{}",
                &stamp[..10],
                &stamp[11..13],
                &stamp[14..16],
                &stamp[17..19]
            ),
            Vec::<String>::new(),
        ),
    };
    report.resumed = previous.is_some();
    let job_rel = format!("JobConfig/{job_name}");
    let job_dir = opts.output.join("JobConfig").join(&job_name);
    report.job_dir = job_dir.clone();
    let exclusions = opts.exclude.join(",");
    let config = JobConfig {
        dir_input: opts.input.display().to_string(),
        dir_output: opts.output.display().to_string(),
        dir_phi: opts.phi.display().to_string(),
        path: job_dir.join("job_config.json").display().to_string(),
        input_format: "ndjson",
        output_format: &opts.output_format,
        comment: &opts.comment,
        batch_size: opts.batch_size,
        tasks: run_tasks
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(","),
        export_group_name: &group,
        export_timestamp: &export_time,
        export_url: input.log.url.as_deref(),
        codebook_id: book.codebook_id(),
        exclusions: exclusions.clone(),
    };
    sink.put_file(&format!("{job_rel}/job_config.json"), &json4(&config)?)?;

    let scrubber = Scrubber::new(&book);
    let ctx = TaskCtx {
        opts,
        scrubber: &scrubber,
        group: &group,
        export_time: &export_time,
        exclusions: &exclusions,
        progress,
    };
    let mut finished: Vec<String> = done_tasks;
    let mut batch_files = serde_json::Map::new();
    let save_run = |sink: &mut dyn Sink,
                    finished: &[String],
                    files: &mut serde_json::Map<String, serde_json::Value>,
                    complete: bool|
     -> Result<(), EtlError> {
        for t in run_tasks
            .iter()
            .map(|(n, _)| *n)
            .chain([COMPLETION, COMPLETION_ENCOUNTERS])
        {
            if let Some(n) = sink.batches(t) {
                files.insert(t.to_owned(), json!(n));
            }
        }
        let state = json!({
            "input": opts.input.display().to_string(),
            "job": job_name,
            "etl_time": etl_time,
            "tasks_done": finished,
            "files": files,
            "complete": complete,
        });
        sink.put_file(RUN_FILE, state.to_string().as_bytes())?;
        Ok(())
    };
    save_run(sink, &finished, &mut batch_files, false)?;
    for (name, rtype) in &run_tasks {
        if finished.iter().any(|f| f == name) {
            continue;
        }
        *progress.task.lock().unwrap_or_else(|p| p.into_inner()) = (*name).to_owned();
        let files = input.files.get(*rtype).cloned().unwrap_or_default();
        let mut summary = run_task(&ctx, sink, name, rtype, &files, &mut report.problems)?;
        // Deletions, after this run's rows (an id both exported and deleted ends deleted).
        let ids: Vec<String> = input
            .deleted
            .get(*rtype)
            .into_iter()
            .flatten()
            .map(|id| book.fake_id(rtype, id.trim(), false))
            .collect();
        summary.deleted = ids.len() as u64;
        sink.delete(name, &ids)?;
        let mut row = json!({
            "table_name": name,
            "group_name": group,
            "export_time": export_time,
            "etl_version": ETL_VERSION,
            "etl_time": etl_time,
            "excluded_resources": exclusions,
        });
        if let Some(u) = &input.log.url {
            row["export_url"] = json!(u);
        }
        sink.write_batch(COMPLETION, vec![row.to_string().into_bytes()])?;
        sink.finish_table(name)?;
        if *name == "encounter" {
            // Only the encounter task writes it: done now, its keys need not be held on.
            sink.finish_table(COMPLETION_ENCOUNTERS)?;
        }
        let tables: &[&str] = if *name == "encounter" {
            &[COMPLETION_ENCOUNTERS, "encounter"]
        } else {
            std::slice::from_ref(name)
        };
        for t in tables {
            sink.put_file(
                &format!("{job_rel}/{t}.json"),
                &json4(&Summary {
                    label: t,
                    attempt: summary.attempt,
                    success: summary.success,
                    success_rate: if summary.attempt == 0 {
                        1.0
                    } else {
                        summary.success as f64 / summary.attempt as f64
                    },
                    had_errors: false,
                    timestamp: stamp[..19].replace('T', " "),
                    hostname: hostname(),
                })?,
            )?;
        }
        report.tasks.push(summary);
        book.save()?;
        finished.push((*name).to_owned());
        save_run(sink, &finished, &mut batch_files, false)?;
    }
    sink.finish_table(COMPLETION)?;
    book.save()?;
    save_run(sink, &finished, &mut batch_files, true)?;
    let context = json!({
        "last_successful_datetime": time::now_isoformat(),
        "last_successful_input_dir": opts.input.display().to_string(),
        "last_successful_output_dir": opts.output.display().to_string(),
    });
    stratus_lake::sink::local::put_file(&opts.phi, "context.json", &json4(&context)?)?;
    report.scrub = scrubber.report();
    Ok(report)
}

/// The run file's state if it records an unfinished run of `input`: the only case in which
/// a run continues in a non-empty output (and the CLI lets ndjson and Parquet output into
/// one).
pub fn unfinished_run(run_file: &[u8], input: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(run_file)
        .ok()
        .filter(|v| {
            v.get("complete") == Some(&json!(false))
                && v.get("input").and_then(|i| i.as_str()) == Some(&input.display().to_string())
        })
}

struct TaskCtx<'a> {
    opts: &'a EtlOptions,
    scrubber: &'a Scrubber<'a>,
    group: &'a str,
    export_time: &'a str,
    exclusions: &'a str,
    progress: &'a EtlProgress,
}

/// One scrubbed row: its fake id and its JSON.
type Row = (String, Vec<u8>);

/// A line's outcome: a row, or (rejected by the scrubber?, why).
type Scrubbed = Result<Row, (bool, String)>;

fn run_task(
    ctx: &TaskCtx,
    sink: &mut dyn Sink,
    name: &str,
    rtype: &str,
    files: &[PathBuf],
    problems: &mut Vec<String>,
) -> Result<TaskSummary, EtlError> {
    let mut summary = TaskSummary {
        table: name.to_owned(),
        ..TaskSummary::default()
    };
    let encounter = name == "encounter";
    let mut errors = ErrorLog::new(ctx.opts.errors_to.as_deref(), name);
    // Batches are written on a thread of their own while the next one is read and scrubbed;
    // the channel holds none, so at most two batches are in memory.
    let sink = std::thread::scope(|scope| -> Result<_, EtlError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Row>>(0);
        let writer = scope.spawn(move || -> Result<&mut dyn Sink, EtlError> {
            for mut batch in rx {
                flush(ctx, sink, name, &mut batch)?;
            }
            Ok(sink)
        });
        // A closed channel means the writer failed; its error is reported below.
        let read = read_task(
            ctx,
            name,
            rtype,
            files,
            problems,
            &mut summary,
            &mut errors,
            |batch| Ok(tx.send(batch).is_ok()),
        );
        drop(tx);
        let sink = writer
            .join()
            .map_err(|_| EtlError::Usage(format!("the writer of {name} panicked")))??;
        read?;
        Ok(sink)
    })?;
    // Every accepted row was in some batch, so no row means no batch was written.
    if summary.attempt == 0 {
        if encounter {
            sink.touch(COMPLETION_ENCOUNTERS)?;
        }
        sink.touch(name)?;
    }
    summary.success = summary.attempt;
    errors.finish()?;
    Ok(summary)
}

/// Reads a task's files, scrubs their lines on every core and hands each full batch (and
/// the last one) to `emit`, which answers whether to go on.
#[allow(clippy::too_many_arguments)]
fn read_task(
    ctx: &TaskCtx,
    name: &str,
    rtype: &str,
    files: &[PathBuf],
    problems: &mut Vec<String>,
    summary: &mut TaskSummary,
    errors: &mut ErrorLog,
    mut emit: impl FnMut(Vec<Row>) -> Result<bool, EtlError>,
) -> Result<(), EtlError> {
    let cost = if name == "encounter" { 2 } else { 1 };
    let max_bytes = if ctx.opts.output_format == "ndjson" {
        usize::MAX
    } else {
        TABLE_BATCH_BYTES
    };
    let mut batch: Vec<Row> = Vec::new();
    let mut bytes = 0;
    std::thread::scope(|scope| -> Result<(), EtlError> {
        // Files are read and decompressed a chunk ahead on a thread of their own, so that
        // the cores scrubbing never wait for the disk or for gzip.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(2);
        let reader = scope.spawn(move || read_chunks(files, &tx));
        let scrubbed = (|| -> Result<(), EtlError> {
            for (f, chunk) in rx.iter() {
                let path = &files[f];
                let results: Vec<(u64, Scrubbed)> = chunk
                    .into_par_iter()
                    .map(|(n, line)| {
                        (
                            n,
                            line.map_err(|e| (false, e))
                                .and_then(|b| scrub_line(ctx, rtype, &b)),
                        )
                    })
                    .collect();
                for (n, r) in results {
                    match r {
                        Ok(row) => {
                            summary.attempt += 1;
                            bytes += row.1.len();
                            batch.push(row);
                            if (batch.len() * cost >= ctx.opts.batch_size.max(cost)
                                || bytes >= max_bytes)
                                && !emit(std::mem::take(&mut batch))?
                            {
                                return Ok(());
                            }
                            if batch.is_empty() {
                                bytes = 0;
                            }
                        }
                        Err((rejected, why)) => {
                            if rejected {
                                summary.rejected += 1;
                            } else {
                                summary.bad_lines += 1;
                            }
                            if problems.len() < 20 {
                                problems.push(format!("{}:{n}: {why}", path.display()));
                            }
                            errors.record(&path.display().to_string(), n, &why)?;
                        }
                    }
                }
                ctx.progress
                    .resources
                    .store(summary.attempt, Ordering::Relaxed);
            }
            Ok(())
        })();
        // Stop the reader if scrubbing stopped first, then report the first failure.
        drop(rx);
        let read = reader
            .join()
            .map_err(|_| EtlError::Usage(format!("the reader of {name} panicked")))?;
        scrubbed?;
        read
    })?;
    if !batch.is_empty() {
        emit(batch)?;
    }
    Ok(())
}

/// A chunk of lines of one file (its index in the task's list): line number and bytes, or
/// why the line cannot be used.
type Chunk = (usize, Vec<(u64, Result<Vec<u8>, String>)>);

/// Reads `files` in chunks of [`CHUNK`] lines into `tx`, until done or the receiver is gone.
fn read_chunks(files: &[PathBuf], tx: &std::sync::mpsc::SyncSender<Chunk>) -> Result<(), EtlError> {
    for (f, path) in files.iter().enumerate() {
        let mut reader = NdjsonReader::open(path, ReaderOptions::default())?;
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            while chunk.len() < CHUNK {
                match reader.next_line()? {
                    None => break,
                    Some(Line::Data { bytes, number }) => chunk.push((number, Ok(bytes.to_vec()))),
                    Some(Line::TooLong { number, .. }) => {
                        chunk.push((number, Err("line too long".into())))
                    }
                }
            }
            if chunk.is_empty() {
                break;
            }
            if tx.send((f, chunk)).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parses and scrubs one line. `Err((true, why))`: the scrubber rejected it;
/// `Err((false, why))`: not a usable resource at all.
fn scrub_line(ctx: &TaskCtx, rtype: &str, bytes: &[u8]) -> Scrubbed {
    let mut v: sonic_rs::Value = sonic_rs::from_slice(bytes)
        .map_err(|e| (false, format!("not JSON: {}", first_line(&e.to_string()))))?;
    match v.get("resourceType").and_then(|t| t.as_str()) {
        Some(t) if t == rtype => {}
        Some(t) => return Err((false, format!("a {t} in a {rtype} file"))),
        None => return Err((false, "no resourceType".into())),
    }
    if v.get("id")
        .and_then(|i| i.as_str())
        .is_none_or(|i| i.trim().is_empty())
    {
        return Err((false, format!("a {rtype} without an id")));
    }
    ctx.scrubber.scrub(&mut v).map_err(|e| (true, e.0))?;
    let id = v
        .get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_default()
        .to_owned();
    let mut out = sonic_rs::to_vec(&v).map_err(|e| (false, e.to_string()))?;
    // The writer grows its buffer by doubling; a batch holds tens of thousands of these,
    // and the slack was a fifth of the ETL's heap.
    out.shrink_to_fit();
    Ok((id, out))
}

fn flush(
    ctx: &TaskCtx,
    sink: &mut dyn Sink,
    table: &str,
    batch: &mut Vec<Row>,
) -> Result<(), EtlError> {
    let mut seen = HashSet::new();
    let mut rows: Vec<Row> = batch
        .drain(..)
        .rev()
        .filter(|(id, _)| seen.insert(id.clone()))
        .collect();
    rows.reverse();
    if table == "encounter" {
        let completion: Vec<Vec<u8>> = rows
            .iter()
            .map(|(id, _)| {
                json!({
                    "encounter_id": id,
                    "group_name": ctx.group,
                    "export_time": ctx.export_time,
                    "excluded_resources": ctx.exclusions,
                })
                .to_string()
                .into_bytes()
            })
            .collect();
        sink.write_batch(COMPLETION_ENCOUNTERS, completion)?;
    }
    let data: Vec<Vec<u8>> = rows.into_iter().map(|(_, b)| b).collect();
    Ok(sink.write_batch(table, data)?)
}

/// The newest job config in OUTPUT names the PHI folder it was made with; another PHI folder
/// would give other fake ids for the same people, so it is refused.
fn check_phi(sink: &mut dyn Sink, output: &Path, codebook_id: &str) -> Result<(), EtlError> {
    let jobs = sink.list("JobConfig")?;
    for job in jobs.iter().rev() {
        let Some(bytes) = sink.get_file(&format!("JobConfig/{job}/job_config.json"))? else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if let Some(old) = v.get("codebook_id").and_then(|c| c.as_str())
            && old != codebook_id
        {
            return Err(EtlError::WrongPhi(format!(
                "{} was written with another PHI folder (codebook {old}, this one is {codebook_id}); use the PHI folder of the earlier runs",
                output.display()
            )));
        }
        break;
    }
    Ok(())
}

/// JSON indented by 4 spaces, as cumulus-etl writes its job files.
fn json4<T: Serialize>(value: &T) -> Result<Vec<u8>, EtlError> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value
        .serialize(&mut ser)
        .map_err(|e| EtlError::Usage(e.to_string()))?;
    Ok(buf)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// `--errors-to DIR/<task>/rejected.ndjson`: one line per input line left out, with where it
/// was and why.
struct ErrorLog {
    path: Option<PathBuf>,
    lines: Vec<String>,
}

impl ErrorLog {
    fn new(dir: Option<&Path>, task: &str) -> ErrorLog {
        ErrorLog {
            path: dir.map(|d| d.join(task).join("rejected.ndjson")),
            lines: Vec::new(),
        }
    }

    fn record(&mut self, file: &str, line: u64, why: &str) -> Result<(), EtlError> {
        if self.path.is_some() {
            self.lines
                .push(json!({"file": file, "line": line, "reason": why}).to_string());
        }
        Ok(())
    }

    fn finish(self) -> Result<(), EtlError> {
        let Some(path) = self.path else { return Ok(()) };
        if self.lines.is_empty() {
            return Ok(());
        }
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| EtlError::io(d, e))?;
        }
        let mut f = AtomicFile::create(&path)?;
        for l in &self.lines {
            f.write_all(l.as_bytes())
                .and_then(|()| f.write_all(b"\n"))
                .map_err(|e| EtlError::io(&path, e))?;
        }
        f.commit()?;
        Ok(())
    }
}
