//! `stratus etl INPUT OUTPUT PHI`: flags to `stratus_etl` options, a progress line, and a
//! summary with what was left out and why.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use stratus_etl::pipeline::{EtlOptions, EtlProgress};
use stratus_etl::sink::NdjsonSink;

use crate::exit::Outcome;
use crate::output::thousands;

#[derive(Debug, Args)]
pub struct EtlArgs {
    /// A folder of FHIR NDJSON: a bulk export, a crawl, or a managed export folder (read at
    /// its top level). Gzip and symlinks are fine.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where the tables go (for ndjson output it must be empty or new).
    #[arg(value_name = "OUTPUT")]
    pub output: PathBuf,
    /// The PHI folder: codebook.json (the salt) and the cached id mappings. Created if
    /// missing; keep it private and reuse it for every run.
    #[arg(value_name = "PHI")]
    pub phi: PathBuf,
    /// Tasks to run (comma-separated or repeated; default: every type in the input).
    #[arg(long, value_name = "TASK")]
    pub task: Vec<String>,
    /// Tasks to leave out (recorded in the completion tables).
    #[arg(long, value_name = "TASK")]
    pub exclude_resources: Vec<String>,
    /// Output format. Delta Lake and Parquet are being built (see docs/etl.md); ndjson writes
    /// cumulus-etl's ndjson layout, which `cumulus-etl convert` turns into Delta Lake.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson"])]
    pub output_format: String,
    /// Items per batch (an Encounter counts twice, for its completion row).
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
}

pub fn run(a: &EtlArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.output.exists() && std::fs::read_dir(&a.output)?.next().is_some() {
        bail!(
            "{}: ndjson output needs an empty folder (the tables of another run are there)",
            a.output.display()
        );
    }
    if let Some(e) = &a.errors_to
        && e.exists()
        && std::fs::read_dir(e)?.next().is_some()
    {
        bail!("--errors-to {}: the folder must be empty", e.display());
    }
    let opts = EtlOptions {
        input: a.input.clone(),
        output: a.output.clone(),
        phi: a.phi.clone(),
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
    let reporter = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let (p, d) = (Arc::clone(&progress), Arc::clone(&done));
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let task = p.task.lock().map(|t| t.clone()).unwrap_or_default();
                eprint!(
                    "\r\x1b[2K{task}: {} resources",
                    thousands(p.resources.load(Ordering::Relaxed))
                );
            }
            eprint!("\r\x1b[2K");
        })
    });
    let started = Instant::now();
    let mut sink = NdjsonSink::new(&a.output);
    let result = stratus_etl::pipeline::run(&opts, &mut sink, &progress);
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let r = result?;
    let secs = started.elapsed().as_secs_f64();
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
        a.output.display(),
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
