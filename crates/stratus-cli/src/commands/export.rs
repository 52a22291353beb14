//! `stratus export` and `stratus hydrate`: flags to `stratus_fetch` options, Ctrl-C that
//! keeps finished work, a progress line, and a summary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use stratus_bulk::attachments::InlineOptions;
use stratus_fetch::export::{ExportOptions, ExportProgress, Mode};
use stratus_fetch::hydrate::{self, HydrateOptions};
use stratus_fetch::{FetchError, cohort, types};
use stratus_fhir::writer::Compression;
use stratus_http::{Client, HttpConfig};

use crate::commands::bulk::{AuthArgs, auth};
use crate::exit::Outcome;
use crate::output::{StatusLine, thousands};

/// Connection and politeness options shared by export and hydrate.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The FHIR server's base URL.
    #[arg(long, env = "STRATUS_FHIR_URL", value_name = "URL")]
    pub fhir_url: String,
    /// Most requests in flight at once: the budget EHR operators agree to. 5 is what
    /// smart-fetch uses and what operators are used to.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_in_flight: usize,
    /// Most requests per second, all together (default: no cap). 429 answers with
    /// Retry-After pause every request, whatever this says.
    #[arg(long, value_name = "N")]
    pub max_rate: Option<f64>,
    /// Retries per request on 429, 5xx and broken connections.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// Extra request header "Name: value" (repeatable), e.g. Epic-Client-ID.
    #[arg(long = "header", short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

/// What to inline (shared by export and hydrate).
#[derive(Debug, Args)]
pub struct InlineArgs {
    /// MIME types of attachments to inline (comma-separated; default text/plain,
    /// text/html, application/xhtml+xml).
    #[arg(long, value_delimiter = ',', value_name = "MIME")]
    pub mimetypes: Vec<String>,
    /// Inline PDF attachments as their text (contentType text/plain).
    #[arg(long)]
    pub pdf_to_text: bool,
    /// Attachments larger than this stay as URLs (suffixes K, M, G).
    #[arg(long, default_value = "10M", value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub inline_max_size: usize,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The managed export folder (created if missing). Each run works in a numbered
    /// folder NNN.nickname inside it; the top level links to the current files.
    #[arg(value_name = "OUTPUT_DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,

    /// Group to export (bulk: [base]/Group/ID/$export; crawl: the Patient bulk export).
    #[arg(long, value_name = "ID", help_heading = "Cohort")]
    pub group: Option<String>,
    /// The group name written into a crawl's log.ndjson (cumulus-etl's group).
    #[arg(long, value_name = "NAME", help_heading = "Cohort")]
    pub group_nickname: Option<String>,
    /// Patient ids or MRNs, comma-separated (crawl).
    #[arg(long, value_name = "IDS", help_heading = "Cohort")]
    pub id_list: Option<String>,
    /// A file of patient ids or MRNs, one per line, or a .csv with an `id` or `mrn` column.
    #[arg(long, alias = "mrn-file", value_name = "FILE", help_heading = "Cohort")]
    pub id_file: Option<PathBuf>,
    /// The identifier system of the values (then Patient?identifier=SYSTEM|value; without
    /// it, values are ids: Patient?_id=value).
    #[arg(
        long,
        alias = "mrn-system",
        value_name = "SYSTEM",
        help_heading = "Cohort"
    )]
    pub id_system: Option<String>,

    /// Resource types (repeatable or comma-separated; default all).
    #[arg(long = "type", value_name = "TYPE", help_heading = "Resources")]
    pub types: Vec<String>,
    /// A search filter "Type?param=value" (repeatable; several for a type are ORed).
    #[arg(long, value_name = "FILTER", help_heading = "Resources")]
    pub type_filter: Vec<String>,
    /// Do not add the default Observation category filter.
    #[arg(long, help_heading = "Resources")]
    pub no_default_filters: bool,

    /// Name of the work folder (default: today's date). The newest folder with this name is
    /// resumed; a new name starts a new export.
    #[arg(long, value_name = "NAME")]
    pub nickname: Option<String>,
    /// `crawl` searches patient by patient; `bulk` runs one $export; `auto` crawls on Epic
    /// or when an id list is given, and bulk-exports otherwise.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bulk", "crawl"])]
    pub export_mode: String,
    /// Only what changed since this instant, or `auto`: per type, since the last export of
    /// it in this folder.
    #[arg(long, value_name = "TIMESTAMP|auto")]
    pub since: Option<String>,
    /// `updated` (_lastUpdated, bulk _since), `created` (per-type creation dates), or
    /// `auto` (updated when the server can search by _lastUpdated).
    #[arg(long, default_value = "auto", value_parser = ["auto", "updated", "created"])]
    pub since_mode: String,
    /// Hydration task groups after the export (comma-separated), `all` or `none`.
    #[arg(long, default_value = "all", value_name = "NAMES")]
    pub hydration_tasks: String,
    #[command(flatten)]
    pub inline: InlineArgs,
    /// Write plain .ndjson instead of .ndjson.gz.
    #[arg(long)]
    pub no_compression: bool,
    /// How often a crawl commits finished patients to disk (e.g. 500ms, 2s): at most this
    /// much work is fetched again after a crash.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub checkpoint_every: Duration,
}

#[derive(Debug, Args)]
pub struct HydrateArgs {
    /// The folder to hydrate: a work folder, or any folder of NDJSON.
    #[arg(value_name = "OUTPUT_DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Task groups (comma-separated): episodeofcare, inline, medication, observation,
    /// specimen, practitioner, location, organization; or `all`.
    #[arg(long, default_value = "all", value_name = "NAMES")]
    pub tasks: String,
    /// Where to read the resources that point elsewhere (default: OUTPUT_DIR).
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
    #[command(flatten)]
    pub inline: InlineArgs,
    /// Write plain .ndjson instead of .ndjson.gz.
    #[arg(long)]
    pub no_compression: bool,
}

fn client(s: &ServerArgs) -> anyhow::Result<Arc<Client>> {
    if s.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    let config = HttpConfig {
        headers: crate::commands::bulk::parse_headers(&s.headers)?,
        max_retries: s.retries,
        max_in_flight: s.max_in_flight,
        max_rate: s.max_rate,
        ..HttpConfig::default()
    };
    Ok(Arc::new(Client::new(&s.fhir_url, auth(&s.auth)?, config)?))
}

/// `--no-compression`: plain NDJSON; otherwise gzip at the fast level.
pub(crate) fn compression(no_compression: bool) -> Compression {
    if no_compression {
        Compression::None
    } else {
        Compression::FAST_GZIP
    }
}

fn inline_options(a: &InlineArgs) -> InlineOptions {
    crate::commands::bulk::inline_options(&a.mimetypes, a.pdf_to_text, a.inline_max_size)
}

/// Ctrl-C once: stop taking new work, keep what is finished. Twice: leave at once.
async fn watch_ctrl_c(stop: Arc<AtomicBool>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("\ninterrupted: finishing what is in flight (Ctrl-C again to quit now)");
        stop.store(true, Ordering::Relaxed);
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    }
}

fn today_utc() -> String {
    let s = stratus_fhir::date::format_instant(stratus_fhir::date::now_ms());
    s[..10].to_owned()
}

pub fn export(a: &ExportArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let client = client(&a.server)?;
    if a.types.iter().any(|t| t.eq_ignore_ascii_case("help")) {
        println!("{}", types::PATIENT_TYPES.join("\n"));
        return Ok(Outcome::Success);
    }
    let cohort = match (&a.id_list, &a.id_file) {
        (Some(_), Some(_)) => bail!("give --id-list or --id-file, not both"),
        (Some(l), None) => Some(cohort::from_list(l)),
        (None, Some(f)) => Some(cohort::from_file(f)?),
        (None, None) => None,
    };
    if cohort.as_ref().is_some_and(Vec::is_empty) {
        bail!("the id list is empty");
    }
    // "none" gives no group.
    let hydration = hydrate::parse_groups(std::slice::from_ref(&a.hydration_tasks))
        .map_err(anyhow::Error::msg)?;
    let opts = ExportOptions {
        out: a.out.clone(),
        group: a.group.clone(),
        group_nickname: a.group_nickname.clone(),
        cohort,
        id_file: a.id_file.clone(),
        id_system: a.id_system.clone(),
        nickname: a.nickname.clone(),
        mode: match a.export_mode.as_str() {
            "bulk" => Mode::Bulk,
            "crawl" => Mode::Crawl,
            _ => Mode::Auto,
        },
        since: a.since.clone(),
        since_mode: a.since_mode.clone(),
        types: a.types.clone(),
        type_filters: a.type_filter.clone(),
        default_filters: !a.no_default_filters,
        hydration,
        compression: compression(a.no_compression),
        inline: inline_options(&a.inline),
        workers: a.server.max_in_flight * 2,
        policy: stratus_fetch::chunks::CommitPolicy {
            max_age: a.checkpoint_every,
            ..Default::default()
        },
        bulk_parallel: a.server.max_in_flight,
        today: today_utc(),
    };
    let progress = Arc::new(ExportProgress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let reporter = (!quiet).then(|| {
        let (p, d, c) = (
            Arc::clone(&progress),
            Arc::clone(&done),
            Arc::clone(&client),
        );
        std::thread::spawn(move || report(&p, &d, &c))
    });
    let result = stratus_bulk::block_on({
        let (client, progress, stop) = (
            Arc::clone(&client),
            Arc::clone(&progress),
            Arc::clone(&stop),
        );
        async move {
            tokio::spawn(watch_ctrl_c(Arc::clone(&stop)));
            stratus_fetch::export::run(client, &opts, progress, stop).await
        }
    })?;
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let r = match result {
        Ok(r) => r,
        Err(FetchError::Interrupted) => {
            eprintln!(
                "interrupted: finished work is kept in {}; run the same command again to continue",
                a.out.display()
            );
            return Ok(Outcome::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    let name = r
        .workdir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    println!(
        "{} export into {} ({} requests in {:.1} s)",
        r.mode,
        r.workdir.display(),
        thousands(client.budget().requests()),
        started.elapsed().as_secs_f64()
    );
    for t in &r.skipped_types {
        println!("  skipped {t}: the server does not support it");
    }
    for (t, v) in &r.since_values {
        println!("  {t}: since {v}");
    }
    let mut line = Vec::new();
    for o in &r.outcomes {
        line.push(format!("{} {}", o.resource_type, thousands(o.resources)));
    }
    if !line.is_empty() {
        println!("  {}", line.join(", "));
    }
    let errors: u64 = r.outcomes.iter().map(|o| o.errors).sum();
    if !r.lookups.not_found.is_empty() {
        println!(
            "  {} ids matched no patient: {}",
            r.lookups.not_found.len(),
            preview(&r.lookups.not_found)
        );
    }
    if !r.lookups.several.is_empty() {
        println!(
            "  {} ids matched several patients (all kept): {}",
            r.lookups.several.len(),
            preview(&r.lookups.several)
        );
    }
    if let Some(f) = &r.errors_file {
        println!("  {} error records in {}", thousands(errors), f.display());
    }
    if r.new_patients > 0 {
        println!(
            "  {} new or merged patients",
            thousands(r.new_patients as u64)
        );
    }
    for h in r.hydration.iter().filter(|h| h.new > 0 || h.failed > 0) {
        println!(
            "  hydration {}: {} new, {} already there, {} failed",
            h.name,
            thousands(h.new),
            thousands(h.already),
            thousands(h.failed)
        );
        for m in &h.messages {
            println!("    {m}");
        }
    }
    for (t, n) in &r.deleted {
        println!(
            "  {} {t} deleted since the last export (deleted/Bundle.{t})",
            thousands(*n as u64)
        );
    }
    for m in r.bulk_messages.iter().take(20) {
        println!("  message: {m}");
    }
    println!("  {} links at the top level; {name} is complete", r.links);
    Ok(Outcome::Success)
}

fn preview(v: &[String]) -> String {
    let mut s = v.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > 10 {
        s.push_str(", ...");
    }
    s
}

pub fn hydrate(a: &HydrateArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let client = client(&a.server)?;
    let groups =
        hydrate::parse_groups(std::slice::from_ref(&a.tasks)).map_err(anyhow::Error::msg)?;
    if !a.out.is_dir() {
        bail!("{}: no such folder", a.out.display());
    }
    let opts = HydrateOptions {
        groups,
        compression: compression(a.no_compression),
        inline: inline_options(&a.inline),
        workers: a.server.max_in_flight * 2,
    };
    let source = a.source_dir.clone().unwrap_or_else(|| a.out.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let result = stratus_bulk::block_on({
        let (client, stop) = (Arc::clone(&client), Arc::clone(&stop));
        let out = a.out.clone();
        async move {
            tokio::spawn(watch_ctrl_c(Arc::clone(&stop)));
            let print = |r: &hydrate::TaskReport| {
                if !quiet && (r.new > 0 || r.failed > 0 || r.already > 0) {
                    eprintln!(
                        "{}: {} examined, {} already there, {} new, {} failed",
                        r.name,
                        thousands(r.examined),
                        thousands(r.already),
                        thousands(r.new),
                        thousands(r.failed)
                    );
                }
            };
            hydrate::run(client, &out, &source, &opts, stop, &print).await
        }
    })?;
    let reports = match result {
        Ok(r) => r,
        Err(FetchError::Interrupted) => {
            eprintln!("interrupted: run the same command again to continue");
            return Ok(Outcome::Failure);
        }
        Err(e) => return Err(e.into()),
    };
    let new: u64 = reports.iter().map(|r| r.new).sum();
    let failed: u64 = reports.iter().map(|r| r.failed).sum();
    for r in reports.iter().filter(|r| r.failed > 0) {
        for m in &r.messages {
            eprintln!("{}: {m}", r.name);
        }
    }
    println!(
        "hydrated {}: {} new, {} failed ({} requests in {:.1} s)",
        a.out.display(),
        thousands(new),
        thousands(failed),
        thousands(client.budget().requests()),
        started.elapsed().as_secs_f64()
    );
    Ok(if failed > 0 {
        Outcome::BadInput
    } else {
        Outcome::Success
    })
}

/// A live line on a terminal; a line every 10 s otherwise.
fn report(p: &ExportProgress, done: &AtomicBool, client: &Client) {
    let mut status = StatusLine::new(std::io::stderr().is_terminal());
    let start = Instant::now();
    let mut crawl_start: Option<(Instant, u64)> = None;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if !status.due() {
            continue;
        }
        let phase = p.phase.lock().map(|s| s.clone()).unwrap_or_default();
        let c = &p.crawl;
        let total = c.units_total.load(Ordering::Relaxed);
        let units = c.units_done.load(Ordering::Relaxed);
        let requests = client.budget().requests();
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let mut line = phase;
        if total > 0 {
            let (t0, u0) = *crawl_start.get_or_insert((Instant::now(), units));
            let rate = (units - u0) as f64 / t0.elapsed().as_secs_f64().max(0.001);
            let eta = if rate > 0.0 {
                format!(", ETA {:.0} s", (total - units) as f64 / rate)
            } else {
                String::new()
            };
            let per = c.types.load(Ordering::Relaxed).max(1);
            line.push_str(&format!(
                ": patients {}/{} ({} of {} searches), {} resources, {} errors{eta}",
                thousands(units / per),
                thousands(total / per),
                thousands(units),
                thousands(total),
                thousands(c.resources.load(Ordering::Relaxed)),
                thousands(c.errors.load(Ordering::Relaxed)),
            ));
        }
        line.push_str(&format!(
            "; {} requests ({:.0}/s)",
            thousands(requests),
            requests as f64 / secs
        ));
        status.show(&line);
    }
}
