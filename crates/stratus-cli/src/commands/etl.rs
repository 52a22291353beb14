//! `stratus etl INPUT OUTPUT PHI`: flags to `stratus_etl` options, a progress line, and a
//! summary with what was left out and why.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use stratus_etl::NdjsonSink;
use stratus_etl::pipeline::{EtlOptions, EtlProgress};

use crate::exit::Outcome;
use crate::output::{StatusLine, thousands};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EtlArgs {
    #[command(subcommand)]
    pub command: Option<EtlCommand>,
    /// A folder of FHIR NDJSON: a bulk export, a crawl, or a managed export folder (read at
    /// its top level). Gzip and symlinks are fine.
    #[arg(value_name = "INPUT", required = true)]
    pub input: Option<PathBuf>,
    /// Where the tables go: a folder or s3://bucket/prefix (for ndjson output an empty or
    /// new folder).
    #[arg(value_name = "OUTPUT", required = true)]
    pub output: Option<PathBuf>,
    /// The PHI folder: codebook.json (the salt) and the cached id mappings. Created if
    /// missing; keep it private and reuse it for every run.
    #[arg(value_name = "PHI", required = true)]
    pub phi: Option<PathBuf>,
    /// Tasks to run (comma-separated or repeated; default: every type in the input).
    #[arg(long, value_name = "TASK")]
    pub task: Vec<String>,
    /// Tasks to leave out (recorded in the completion tables).
    #[arg(long, value_name = "TASK")]
    pub exclude_resources: Vec<String>,
    /// `deltalake`: one Delta Lake table per table, upserted by id (a folder or
    /// s3://bucket/prefix; reruns update rows, never duplicate them). `ndjson`: cumulus-etl's
    /// ndjson layout (needs an empty OUTPUT). `parquet`: the same layout with one Parquet
    /// file per batch, in the wide R4 schema.
    #[arg(long, default_value = "deltalake", value_parser = ["deltalake", "ndjson", "parquet"])]
    pub output_format: String,
    /// Delta Lake: skip the compaction and vacuum after each table.
    #[arg(long)]
    pub no_table_optimization: bool,
    /// Items per batch (an Encounter counts twice, for its completion row). Delta Lake and
    /// Parquet batches also end at 64 MiB of JSON, which bounds memory whatever the rows.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub batch_size: usize,
    /// The export's group name (default: from the input's log.ndjson).
    #[arg(long, value_name = "NAME")]
    pub export_group: Option<String>,
    /// The export's time (default: from the input's log.ndjson).
    #[arg(long, value_name = "TIMESTAMP")]
    pub export_timestamp: Option<String>,
    /// Write every input line left out, with file, line and reason, under DIR/<task>/.
    #[arg(long, value_name = "DIR")]
    pub errors_to: Option<PathBuf>,
    /// A note stored in the job config.
    #[arg(long, default_value = "")]
    pub comment: String,
    /// Run asked-for tasks even when the input has none of their resources.
    #[arg(long)]
    pub allow_missing_resources: bool,
    /// Not supported: refused with an explanation (see docs/etl.md). cumulus-etl's philter
    /// pass over CodeableConcept.text and Coding.display needs NLTK data that 4.3.6 cannot
    /// install, and it is off by default there.
    #[arg(long, hide = true)]
    pub philter: bool,

    /// INPUT is a FHIR URL: keep the exported files here (default: a folder under the system
    /// temp dir named after the URL, so a rerun resumes the same export).
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Exporting first (INPUT is a FHIR URL)"
    )]
    pub export_to: Option<PathBuf>,
    /// Group to export ([base]/Group/ID/$export; default: system level).
    #[arg(
        long,
        value_name = "ID",
        help_heading = "Exporting first (INPUT is a FHIR URL)"
    )]
    pub group: Option<String>,
    /// Only resources changed since this instant.
    #[arg(
        long,
        value_name = "INSTANT",
        help_heading = "Exporting first (INPUT is a FHIR URL)"
    )]
    pub since: Option<String>,
    /// Only resources changed before this instant.
    #[arg(
        long,
        value_name = "INSTANT",
        help_heading = "Exporting first (INPUT is a FHIR URL)"
    )]
    pub until: Option<String>,
    /// Follow this status URL instead of kicking off a new export.
    #[arg(
        long,
        value_name = "URL",
        help_heading = "Exporting first (INPUT is a FHIR URL)"
    )]
    pub resume: Option<String>,
    #[command(flatten)]
    pub auth: crate::commands::bulk::AuthArgs,
}

/// Runs a bulk export of the tasks' types into a folder, for `stratus etl URL ...`.
/// Where the export of a URL INPUT goes: `--export-to`, or a scratch folder named after the
/// URL and group, so that a rerun resumes the same export.
fn export_dir(a: &EtlArgs, url: &str) -> PathBuf {
    a.export_to.clone().unwrap_or_else(|| {
        crate::commands::bulk::temp_dir_for(
            "stratus-etl-export",
            url.bytes().chain(a.group.iter().flat_map(|g| g.bytes())),
        )
    })
}

/// Exports `url` into `dir` (see [`export_dir`]).
fn export_first(a: &EtlArgs, url: &str, dir: &Path, quiet: bool) -> anyhow::Result<()> {
    use stratus_bulk::{ExportSpec, Level, Options, Progress};
    let tasks =
        stratus_etl::tasks::select(&a.task, &a.exclude_resources).map_err(anyhow::Error::msg)?;
    let mut types: Vec<String> = tasks.iter().map(|(_, t)| (*t).to_owned()).collect();
    types.sort();
    let spec = ExportSpec {
        level: Some(match &a.group {
            Some(g) => Level::Group(g.clone()),
            None => Level::System,
        }),
        types,
        since: a.since.clone(),
        until: a.until.clone(),
        ..ExportSpec::default()
    };
    let client = stratus_http::Client::new(
        url,
        crate::commands::bulk::auth(&a.auth)?,
        stratus_http::HttpConfig::default(),
    )?;
    let opts = Options {
        out: Some(dir.to_path_buf()),
        resume_url: a.resume.clone(),
        ..Options::default()
    };
    if !quiet {
        eprintln!("exporting from {url} into {}", dir.display());
    }
    let summary = stratus_bulk::block_on(stratus_bulk::run(
        &client,
        &spec,
        &opts,
        std::sync::Arc::new(Progress::default()),
    ))??;
    if !quiet {
        eprintln!(
            "exported {} resources in {} files (transaction time {})",
            thousands(summary.resources),
            summary.files,
            summary.transaction_time
        );
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum EtlCommand {
    /// Create every table, empty and with its schema, and an empty JobConfig/ folder, so
    /// SQL tools can see the tables before the first load. Safe to run again.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where the tables go: a folder or s3://bucket/prefix.
    #[arg(value_name = "OUTPUT")]
    pub output: PathBuf,
    #[arg(long, default_value = "deltalake", value_parser = ["deltalake", "ndjson", "parquet"])]
    pub output_format: String,
}

/// The sink for `--output-format`: Delta tables (optimized when asked), Parquet or ndjson files.
fn sink_for(
    format: &str,
    output: &std::path::Path,
    optimize: bool,
) -> anyhow::Result<Box<dyn stratus_etl::Sink>> {
    Ok(match format {
        "ndjson" => Box::new(NdjsonSink::new(output)),
        "parquet" => Box::new(stratus_lake::ParquetSink::new(output)),
        _ => Box::new(stratus_lake::DeltaSink::new(
            &output.to_string_lossy(),
            optimize,
        )?),
    })
}

fn init(a: &InitArgs) -> anyhow::Result<Outcome> {
    let out = a.output.to_string_lossy().into_owned();
    let mut sink = sink_for(&a.output_format, &a.output, false)?;
    let mut n = 0;
    for (table, _) in stratus_etl::tasks::TASKS {
        sink.touch(table)?;
        n += 1;
    }
    for table in [
        stratus_etl::tasks::COMPLETION,
        stratus_etl::tasks::COMPLETION_ENCOUNTERS,
    ] {
        sink.touch(table)?;
        n += 1;
    }
    if !out.contains("://") {
        std::fs::create_dir_all(a.output.join("JobConfig"))?;
    }
    println!("{n} tables ready in {out}");
    Ok(Outcome::Success)
}

pub fn run(a: &EtlArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if let Some(EtlCommand::Init(i)) = &a.command {
        return init(i);
    }
    let (Some(input), Some(output), Some(phi)) = (&a.input, &a.output, &a.phi) else {
        bail!("stratus etl needs INPUT OUTPUT PHI (or: stratus etl init OUTPUT)");
    };
    if a.philter {
        bail!(
            "--philter is not supported: free text in CodeableConcept.text and Coding.display \
             is kept, as cumulus-etl keeps it without --philter (its default); see docs/etl.md"
        );
    }
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    // Every check on the arguments comes before an export that may take hours.
    let input_text = input.to_string_lossy().into_owned();
    let url = input_text.starts_with("http://") || input_text.starts_with("https://");
    let export_to = url.then(|| export_dir(a, &input_text));
    let input = export_to.as_ref().unwrap_or(input);
    let files = matches!(a.output_format.as_str(), "ndjson" | "parquet");
    let unfinished = std::fs::read(output.join(stratus_etl::pipeline::RUN_FILE))
        .ok()
        .and_then(|b| stratus_etl::pipeline::unfinished_run(&b, input))
        .is_some();
    if files && !unfinished && output.exists() && std::fs::read_dir(output)?.next().is_some() {
        bail!(
            "{}: {} output needs an empty folder (the tables of another run are there)",
            output.display(),
            a.output_format
        );
    }
    if let Some(e) = &a.errors_to
        && e.exists()
        && std::fs::read_dir(e)?.next().is_some()
    {
        bail!("--errors-to {}: the folder must be empty", e.display());
    }
    if let Some(dir) = &export_to {
        export_first(a, &input_text, dir, quiet)?;
    }
    let opts = EtlOptions {
        input: input.clone(),
        output: output.clone(),
        phi: phi.clone(),
        tasks: a.task.clone(),
        exclude: a.exclude_resources.clone(),
        batch_size: a.batch_size,
        export_group: a.export_group.clone(),
        export_timestamp: a.export_timestamp.clone(),
        errors_to: a.errors_to.clone(),
        comment: a.comment.clone(),
        allow_missing: a.allow_missing_resources,
        output_format: a.output_format.clone(),
    };
    let progress = Arc::new(EtlProgress::default());
    let done = Arc::new(AtomicBool::new(false));
    let reporter = (!quiet).then(|| {
        let (p, d) = (Arc::clone(&progress), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut status = StatusLine::new(std::io::stderr().is_terminal());
            let start = Instant::now();
            let mut task_start = (String::new(), Instant::now());
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let task = p.task.lock().map(|t| t.clone()).unwrap_or_default();
                if task != task_start.0 {
                    task_start = (task.clone(), Instant::now());
                }
                if !status.due() {
                    continue;
                }
                let n = p.resources.load(Ordering::Relaxed);
                let rate = n as f64 / task_start.1.elapsed().as_secs_f64().max(0.001);
                status.show(&format!(
                    "{task}: {} resources ({:.0}/s), {:.0} s in",
                    thousands(n),
                    rate,
                    start.elapsed().as_secs_f64()
                ));
            }
        })
    });
    let started = Instant::now();
    let mut sink = sink_for(&a.output_format, output, !a.no_table_optimization)?;
    let result = stratus_etl::pipeline::run(&opts, sink.as_mut(), &progress);
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let r = result?;
    let secs = started.elapsed().as_secs_f64();
    if r.resumed {
        println!("continued an interrupted run; finished tasks were kept");
    }
    let total: u64 = r.tasks.iter().map(|t| t.success).sum();
    for p in &r.problems {
        eprintln!("{p}");
    }
    for t in &r.tasks {
        let mut extra = String::new();
        if t.rejected > 0 {
            extra.push_str(&format!(
                ", {} left out by de-identification",
                thousands(t.rejected)
            ));
        }
        if t.bad_lines > 0 {
            extra.push_str(&format!(", {} bad lines", thousands(t.bad_lines)));
        }
        if t.deleted > 0 {
            extra.push_str(&format!(", {} deleted", thousands(t.deleted)));
        }
        println!("  {:<20} {:>10}{extra}", t.table, thousands(t.success));
    }
    for t in &r.skipped_tasks {
        println!("  {t:<20} (no input)");
    }
    if !r.scrub.dropped_extensions.is_empty() {
        println!("unrecognized extensions dropped from resources:");
        for (u, n) in &r.scrub.dropped_extensions {
            println!("  {u} ({n})");
        }
    }
    for (u, n) in &r.scrub.modifier_skips {
        println!("resources skipped for modifier extension {u}: {n}");
    }
    println!(
        "{} resources de-identified into {} in {:.1} s ({:.0}/s); group '{}', export time {}",
        thousands(total),
        output.display(),
        secs,
        total as f64 / secs.max(0.001),
        r.group,
        r.export_time
    );
    Ok(if r.bad_input() > 0 {
        Outcome::BadInput
    } else {
        Outcome::Success
    })
}
