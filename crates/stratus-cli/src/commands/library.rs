//! `stratus library`: studies over the tables `stratus etl` wrote (cumulus-library's build,
//! export and a report page).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use stratus_library::{BuildOptions, Study};

use crate::exit::Outcome;
use crate::output::StatusLine;

#[derive(Debug, Subcommand)]
pub enum LibraryCommand {
    /// Build studies' tables on the ETL's output with SQL (embedded DataFusion).
    ///
    /// Reads the de-identified tables stratus etl wrote to OUTPUT (Delta Lake in a folder
    /// or s3://bucket/prefix, or its ndjson or Parquet layout) and writes each study table
    /// beside them (Delta tables, or OUTPUT/<table>/<table>.parquet), replacing the
    /// study's tables from any earlier build. A table the study reads but the lake lacks
    /// reads as empty; a field the data lacks reads as NULL.
    ///
    /// core: a flat table per resource (core__patient, core__encounter, core__condition,
    /// core__documentreference, core__observation with _lab, _vital_signs and component
    /// tables, core__medicationrequest and core__medicationdispense with their
    /// _dosageinstruction tables, core__procedure, core__diagnosticreport,
    /// core__servicerequest, core__specimen, core__allergyintolerance,
    /// core__episodeofcare, core__organization, core__practitioner,
    /// core__practitionerrole, core__location), their code tables, lookup tables,
    /// core__meta_date and _version, and the 22 core__count_* cubes, where cells counting
    /// fewer than --min-count patients (or encounters, notes, observations) are left out.
    /// discovery: discovery__code_sources.
    ///
    /// Example: stratus library build --target core --target discovery --lake ./lake
    #[command(verbatim_doc_comment)]
    Build(BuildArgs),
    /// Export a study's aggregate tables: CSV, Parquet and a zip for the aggregator.
    ///
    /// Writes OUT/<study>/<table>.<cube|flat|meta>.csv and .parquet for each non-empty
    /// table the study's manifest lists for export (never line-level tables), rows sorted
    /// by every column descending with NULLs first, the study's manifest.toml, and
    /// OUT/<study>/<study>.zip holding the Parquet files and the manifest.
    ///
    /// Example: stratus library export --target core --lake ./lake --out ./export
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),
    /// Write a self-contained HTML page of a study's counts, with charts.
    ///
    /// One file, no script and no network: bar charts of the core counts (patients by
    /// gender, race and ethnicity; encounters by month, class and age; the commonest
    /// conditions, lab tests and medications) and every exported table below them. It
    /// holds only what the export holds: counts, small cells already left out.
    ///
    /// Example: stratus library report --target core --lake ./lake --out core-report.html
    #[command(verbatim_doc_comment)]
    Report(ReportArgs),
    /// List the studies: built in, and those found under --study-dir.
    List(ListArgs),
    /// Drop a study's tables from the lake.
    ///
    /// Removes every <study>__* table (a folder, or the objects under it on S3) except
    /// <study>__lib_* and <study>__etl_* tables, which cumulus-library keeps as well. The
    /// source tables are never touched. Prints the tables dropped.
    ///
    /// Example: stratus library clean --target discovery --lake ./lake
    #[command(verbatim_doc_comment)]
    Clean(CleanArgs),
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// The study whose tables go.
    #[arg(short, long = "target", value_name = "STUDY")]
    pub target: String,
    /// The lake the study was built in.
    #[arg(long, value_name = "OUTPUT", env = "STRATUS_LIBRARY_LAKE")]
    pub lake: String,
    #[command(flatten)]
    pub dirs: StudyDirs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study to show.
    #[arg(short, long = "target", value_name = "STUDY")]
    pub target: String,
    /// The lake the study was built in.
    #[arg(long, value_name = "OUTPUT", env = "STRATUS_LIBRARY_LAKE")]
    pub lake: String,
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dirs: StudyDirs,
}

#[derive(Debug, Args)]
pub struct StudyDirs {
    /// A folder searched (recursively) for more studies: folders with a manifest.toml. A
    /// study here replaces a built-in one with the same prefix. Repeatable.
    #[arg(
        long = "study-dir",
        value_name = "DIR",
        env = "STRATUS_LIBRARY_STUDY_DIR",
        value_delimiter = ','
    )]
    pub study_dirs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// A study to build (core, discovery, or a --study-dir study). Repeatable.
    #[arg(short, long = "target", value_name = "STUDY", required = true)]
    pub targets: Vec<String>,
    /// The ETL's OUTPUT: a folder or s3://bucket/prefix.
    #[arg(long, value_name = "OUTPUT", env = "STRATUS_LIBRARY_LAKE")]
    pub lake: String,
    /// Leave out count cells under N (a workflow's own min_subject wins).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub min_count: u64,
    /// The most memory the SQL engine may hold (e.g. 4G, 512M). Sorts, aggregations and
    /// joins spill to the temporary folder past it: when a source table is too large to
    /// join in memory under this limit, joins sort and merge instead of hashing (a join to
    /// a table known to be small, such as the patients, still hashes).
    #[arg(long, default_value = "4G", value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub memory_limit: usize,
    /// Give up on a table whose query uses no CPU for this many seconds (0: never). Under
    /// a memory limit the SQL engine can, rarely, park for good (a known DataFusion
    /// deadlock); such a table is started over once, then the build fails naming it.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub stall_timeout: u64,
    #[command(flatten)]
    pub dirs: StudyDirs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The study to export.
    #[arg(short, long = "target", value_name = "STUDY")]
    pub target: String,
    /// The lake the study was built in.
    #[arg(long, value_name = "OUTPUT", env = "STRATUS_LIBRARY_LAKE")]
    pub lake: String,
    /// Where the export goes (OUT/<study>/...).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    #[command(flatten)]
    pub dirs: StudyDirs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub dirs: StudyDirs,
}

pub fn run(cmd: &LibraryCommand, quiet: bool) -> anyhow::Result<Outcome> {
    match cmd {
        LibraryCommand::Build(a) => build(a, quiet),
        LibraryCommand::Export(a) => export(a, quiet),
        LibraryCommand::Report(a) => report(a, quiet),
        LibraryCommand::List(a) => list(a),
        LibraryCommand::Clean(a) => clean(a, quiet),
    }
}

fn clean(a: &CleanArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let dropped = stratus_library::clean(&a.lake, &a.target, &a.dirs.study_dirs)
        .with_context(|| format!("cleaning {} from {}", a.target, a.lake))?;
    for t in &dropped {
        println!("{t}");
    }
    if !quiet {
        eprintln!("{}: {} tables dropped", a.target, dropped.len());
    }
    Ok(Outcome::Success)
}

fn report(a: &ReportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let s = stratus_library::report(&a.lake, &a.target, &a.dirs.study_dirs, &a.out)
        .with_context(|| format!("reporting {} from {}", a.target, a.lake))?;
    if !quiet {
        eprintln!("{} charts, {} tables", s.charts, s.tables);
    }
    println!("{}", s.path.display());
    Ok(Outcome::Success)
}

fn build(a: &BuildArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let opts = BuildOptions {
        lake: a.lake.clone(),
        targets: a.targets.clone(),
        study_dirs: a.dirs.study_dirs.clone(),
        min_count: Some(a.min_count),
        memory_limit: Some(a.memory_limit),
        merge_joins: None,
        stall_timeout: Some(std::time::Duration::from_secs(a.stall_timeout)),
    };
    let start = Instant::now();
    let summaries = {
        let mut status = StatusLine::new(std::io::stderr().is_terminal());
        stratus_library::build(&opts, |study, table, rows| {
            if !quiet && status.due() {
                status.show(&format!(
                    "{study}: built {table} ({rows} rows), {:.1} s",
                    start.elapsed().as_secs_f64()
                ));
            }
        })
        .with_context(|| format!("building {} on {}", a.targets.join(", "), a.lake))?
    };
    if !quiet {
        for s in &summaries {
            let rows: usize = s.tables.iter().map(|(_, n)| n).sum();
            eprintln!(
                "{}: {} tables, {rows} rows, in {:.1} s",
                s.study,
                s.tables.len(),
                s.seconds
            );
            for (t, n) in &s.tables {
                if t.contains("__count_") || t.ends_with("__code_sources") {
                    eprintln!("  {t}: {n} rows");
                }
            }
            if !s.missing.is_empty() {
                eprintln!(
                    "  read as empty (not in the lake): {}",
                    s.missing.join(", ")
                );
            }
        }
    }
    Ok(Outcome::Success)
}

fn export(a: &ExportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let s = stratus_library::export(&a.lake, &a.target, &a.dirs.study_dirs, &a.out)
        .with_context(|| format!("exporting {} from {}", a.target, a.lake))?;
    if !quiet {
        for (f, n) in &s.files {
            eprintln!("  {f}: {n} rows");
        }
        if !s.empty.is_empty() {
            eprintln!("  empty, not written: {}", s.empty.join(", "));
        }
    }
    println!("{}", s.zip.display());
    Ok(Outcome::Success)
}

fn list(a: &ListArgs) -> anyhow::Result<Outcome> {
    for s in Study::all(&a.dirs.study_dirs)? {
        println!("{:<12} {}  ({})", s.prefix, s.description, s.origin);
    }
    Ok(Outcome::Success)
}
