//! `stratus import`: Bulk Data Import ("ping and pull"). `server` runs the data consumer;
//! `register`, `kickoff`, `status` and `cancel` are the data provider's side.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use stratus_import::mediator::{JobStatus, Mediator, Outcomes};
use stratus_import::params::ExportType;
use stratus_import::{ImportConfig, Store};

use crate::commands::bulk::{AuthArgs, ExportParams};
use crate::exit::Outcome;
use crate::output::StatusLine;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Run a data consumer: providers ping it with $import, and it pulls their exports.
    ///
    /// Serves, at http://HOST:PORT:
    ///
    ///   POST /$import (FHIR Parameters: exportUrl, exportType dynamic|static, and any
    ///   export kick-off parameter, passed on to the provider); GET /job/[id] for status
    ///   (202 with X-Progress, then 200 with the import manifest); DELETE /job/[id] to
    ///   cancel (the provider's export is deleted too); /job/[id]/outcome.ndjson.
    ///
    ///   SMART Backend Services for providers: /auth/token, /auth/register,
    ///   /.well-known/smart-configuration, and /jwks, this consumer's own public key to
    ///   register at providers. Every job endpoint needs the token of the provider that
    ///   started the job.
    ///
    ///   Pages for people: / (register a provider) and /keys (a key generator).
    ///
    /// Each job's files go to STORE/[job id]/ (or s3://bucket/prefix/[job id]/) only when
    /// the whole export is down and validated. Registrations and jobs are kept in --state;
    /// after a restart, running jobs resume where they stopped.
    ///
    /// Example: stratus import server --store ./imports --port 9445
    #[command(verbatim_doc_comment)]
    Server(Box<ServerArgs>),
    /// Register a data provider at a consumer (what the consumer's / page does).
    ///
    /// Prints the provider's new client id at the consumer.
    ///
    /// Example: stratus import register --consumer http://localhost:9445 \
    ///            --jwks provider-public.jwks --consumer-client-id ID-AT-PROVIDER \
    ///            --provider-base https://ehr.example.org/fhir
    #[command(verbatim_doc_comment)]
    Register(RegisterArgs),
    /// Ping a consumer to import an export, then follow it to the end.
    ///
    /// Sends POST /$import, shows the consumer's progress, and at the end prints the
    /// outcome counts by severity (--details lists every issue). Ctrl-C cancels the job at
    /// the consumer; --no-wait prints the job URL and returns at once.
    ///
    /// Exit code: 0 when the import completes with no error issues, 3 when it completes
    /// with some, 1 when it fails or is refused.
    ///
    /// Example: stratus import kickoff --consumer http://localhost:9445 \
    ///            --export-url https://ehr.example.org/fhir/Group/g1/\$export --type Patient,Condition \
    ///            --smart-client-id ID-AT-CONSUMER --smart-key provider.jwks
    #[command(verbatim_doc_comment)]
    Kickoff(Box<KickoffArgs>),
    /// Show an import job's status (--wait: follow it to the end).
    Status(JobArgs),
    /// Cancel an import job (or, once it is finished, let the consumer clean it up).
    Cancel(JobArgs),
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where imported files go: a folder, s3://bucket/prefix, or none (pull, validate,
    /// count, discard).
    #[arg(long, value_name = "DIR|s3://...|none")]
    pub store: String,
    /// Registrations, jobs, partial downloads and the consumer's key [default: STORE/.import-state
    /// for a folder store; required otherwise].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 9445)]
    pub port: u16,
    /// The origin providers reach this server by, if not http://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// The key this consumer signs its token requests to providers with (JWKS or PEM)
    /// [default: an ES384 key made on first start, kept in --state].
    #[arg(long, env = "STRATUS_IMPORT_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Jobs one provider may run at once; more are answered 429.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub max_jobs_per_client: usize,
    /// Jobs at once, all providers together.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub max_jobs: usize,
    /// How long a finished job's status and outcome stay (sent as Expires).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub job_ttl: Duration,
    /// Lifetime of the access tokens this consumer issues.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub token_lifetime: Duration,
    /// Downloads at once within one job.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// Refuse new registrations (the ones in --state keep working).
    #[arg(long)]
    pub no_registration: bool,
    /// Registrations must carry this secret (the page has a field for it). Whoever can
    /// register decides which hosts this consumer pulls from: set one on any network you
    /// do not fully trust.
    #[arg(
        long,
        env = "STRATUS_IMPORT_REGISTRATION_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub registration_secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The consumer's URL (where $import lives).
    #[arg(long, env = "STRATUS_IMPORT_CONSUMER", value_name = "URL")]
    pub consumer: String,
    /// The provider's public keys (a JWKS file; private members are dropped before sending).
    #[arg(long, value_name = "FILE", required_unless_present = "jwks_uri")]
    pub jwks: Option<PathBuf>,
    /// ...or the URL the consumer fetches them from.
    #[arg(long, value_name = "URL", conflicts_with = "jwks")]
    pub jwks_uri: Option<String>,
    /// The client id the provider gave the consumer (for the pull).
    #[arg(long, value_name = "ID")]
    pub consumer_client_id: String,
    /// A FHIR base URL the consumer may pull from (repeat for several).
    #[arg(long = "provider-base", value_name = "URL", required = true)]
    pub provider_bases: Vec<String>,
    /// The provider's token endpoint when it is not discoverable, or none.
    #[arg(long, value_name = "URL|none")]
    pub token_endpoint: Option<String>,
    /// The consumer's registration secret, if it has one.
    #[arg(
        long,
        env = "STRATUS_IMPORT_REGISTRATION_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub registration_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportTypeArg {
    Dynamic,
    Static,
}

#[derive(Debug, Args)]
pub struct KickoffArgs {
    /// The consumer's URL (where $import lives).
    #[arg(long, env = "STRATUS_IMPORT_CONSUMER", value_name = "URL")]
    pub consumer: String,
    /// dynamic: the provider's $export kick-off URL; static: a complete export manifest.
    #[arg(long, value_name = "URL")]
    pub export_url: String,
    #[arg(long, value_enum, default_value = "dynamic")]
    pub export_type: ExportTypeArg,
    #[command(flatten)]
    pub params: ExportParams,
    /// Prefer: handling=lenient (the consumer ignores parameters it does not know).
    #[arg(long)]
    pub lenient: bool,
    /// Print the job URL and return without following the job.
    #[arg(long)]
    pub no_wait: bool,
    /// List every outcome issue, not only the counts.
    #[arg(long)]
    pub details: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's status URL (what kickoff printed).
    #[arg(value_name = "JOB_URL")]
    pub job: String,
    /// Follow the job to the end and print the outcome counts.
    #[arg(long)]
    pub wait: bool,
    /// List every outcome issue, not only the counts.
    #[arg(long)]
    pub details: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
}

pub fn run(cmd: &ImportCommand, quiet: bool) -> anyhow::Result<Outcome> {
    match cmd {
        ImportCommand::Server(a) => server(a, quiet),
        ImportCommand::Register(a) => block(register(a)),
        ImportCommand::Kickoff(a) => block(kickoff(a, quiet)),
        ImportCommand::Status(a) => block(status(a, quiet)),
        ImportCommand::Cancel(a) => block(cancel(a)),
    }
}

fn block<F: std::future::Future<Output = anyhow::Result<Outcome>>>(
    f: F,
) -> anyhow::Result<Outcome> {
    stratus_bulk::block_on(f).context("cannot start the async runtime")?
}

fn server(a: &ServerArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let store = Store::parse(&a.store);
    let state = match (&a.state, &store) {
        (Some(s), _) => s.clone(),
        (None, Store::Folder(dir)) => dir.join(".import-state"),
        (None, _) => bail!("--state DIR is required when --store is not a folder"),
    };
    let mut c = ImportConfig::new(store, &state);
    c.host = a.host.clone();
    c.port = a.port;
    c.public_url = a.public_url.clone();
    c.key = a.key.clone();
    c.max_jobs_per_client = a.max_jobs_per_client.max(1);
    c.max_jobs = a.max_jobs.max(1);
    c.job_ttl = a.job_ttl;
    c.token_lifetime = a.token_lifetime;
    c.parallel = a.parallel.max(1);
    c.registration = !a.no_registration;
    c.registration_secret = a.registration_secret.clone();
    let consumer = stratus_import::start(c).with_context(|| {
        format!(
            "cannot start the import consumer (state {})",
            state.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "stratus import server: consumer at {}", consumer.url)?;
    writeln!(out, "kick-off:      POST {}/$import", consumer.url)?;
    writeln!(out, "token URL:     {}/auth/token", consumer.url)?;
    writeln!(
        out,
        "registration:  {}/ (a page) or POST {}/auth/register; {} provider(s) registered",
        consumer.url, consumer.url, consumer.clients_loaded
    )?;
    writeln!(
        out,
        "its key:       {}/jwks (register it at each provider)",
        consumer.url
    )?;
    writeln!(out, "store:         {}", a.store)?;
    writeln!(out, "state:         {}", state.display())?;
    if consumer.jobs_loaded > 0 {
        writeln!(
            out,
            "jobs:          {} on disk, {} resumed",
            consumer.jobs_loaded, consumer.jobs_resumed
        )?;
    }
    if !quiet {
        writeln!(
            out,
            "Ctrl-C stops the server; running jobs resume at the next start."
        )?;
    }
    out.flush()?;
    drop(out);
    consumer.wait().context("the server stopped")?;
    Ok(Outcome::Success)
}

async fn register(a: &RegisterArgs) -> anyhow::Result<Outcome> {
    let mut body = json!({
        "consumer_client_id": a.consumer_client_id,
        "provider_base_url": a.provider_bases,
    });
    if let Some(path) = &a.jwks {
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        body["jwks"] = stratus_smart::keys::public_jwks(&v)
            .with_context(|| format!("{}: not a usable JWKS", path.display()))?;
    }
    if let Some(u) = &a.jwks_uri {
        body["jwks_uri"] = json!(u);
    }
    if let Some(t) = &a.token_endpoint {
        body["token_endpoint"] = json!(t);
    }
    if let Some(secret) = &a.registration_secret {
        body["registration_secret"] = json!(secret);
    }
    let url = format!("{}/auth/register", a.consumer.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{url} refused the registration: HTTP {}: {}",
            status.as_u16(),
            answer["error_description"]
                .as_str()
                .unwrap_or("no reason given")
        );
    }
    let id = answer["client_id"].as_str().unwrap_or_default();
    println!("{id}");
    eprintln!(
        "registered; kick off imports with --smart-client-id {id} at {}",
        answer["import_url"].as_str().unwrap_or_default()
    );
    Ok(Outcome::Success)
}

fn mediator(consumer: &str, auth: &AuthArgs) -> anyhow::Result<Mediator> {
    let auth = crate::commands::bulk::auth(auth)?;
    Ok(Mediator::new(consumer, auth)?)
}

/// The consumer's origin, from a job URL (`{origin}/job/{id}`).
fn consumer_of(job: &str) -> anyhow::Result<String> {
    match job.rsplit_once("/job/") {
        Some((origin, id)) if !id.is_empty() && !id.contains('/') => Ok(origin.to_owned()),
        _ => bail!("'{job}' is not an import job URL ([consumer]/job/[id])"),
    }
}

async fn kickoff(a: &KickoffArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let m = mediator(&a.consumer, &a.auth)?;
    let spec = a.params.spec();
    let export_type = match a.export_type {
        ExportTypeArg::Dynamic => ExportType::Dynamic,
        ExportTypeArg::Static => ExportType::Static,
    };
    let job = m
        .kickoff(&a.export_url, export_type, &spec, a.lenient)
        .await?;
    println!("{job}");
    if a.no_wait {
        return Ok(Outcome::Success);
    }
    follow(&m, &job, a.details, quiet).await
}

/// Follows a job to its end; Ctrl-C cancels it at the consumer.
async fn follow(m: &Mediator, job: &str, details: bool, quiet: bool) -> anyhow::Result<Outcome> {
    let mut line = StatusLine::new(std::io::stderr().is_terminal() && !quiet);
    let waiting = m.wait(job, |p| {
        if !quiet && line.due() {
            line.show(&format!("import: {p}"));
        }
    });
    let manifest = tokio::select! {
        r = waiting => r,
        _ = tokio::signal::ctrl_c() => {
            drop(line);
            eprintln!("\ninterrupted: cancelling {job}");
            let msg = m.cancel(job).await?;
            eprintln!("{msg}");
            return Ok(Outcome::Failure);
        }
    };
    drop(line);
    let manifest = manifest?;
    let outcomes = m.outcomes(&manifest).await?;
    report(&manifest, &outcomes, details)
}

fn report(manifest: &Value, o: &Outcomes, details: bool) -> anyhow::Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let ext = &manifest["extension"];
    write!(out, "import complete")?;
    if let Some(n) = ext["resources"].as_u64() {
        write!(out, ": {} resources", crate::output::thousands(n))?;
        if let Some(f) = ext["files"].as_u64() {
            write!(out, " in {f} files")?;
        }
    }
    if let Some(loc) = ext["location"].as_str() {
        write!(out, ", stored at {loc}")?;
    }
    writeln!(out)?;
    let count = |s: &str| o.by_severity.get(s).copied().unwrap_or(0);
    writeln!(
        out,
        "outcome: {} fatal, {} error, {} warning, {} information",
        count("fatal"),
        count("error"),
        count("warning"),
        count("information")
    )?;
    if details {
        for (severity, code, text) in &o.issues {
            writeln!(out, "  {severity:<11} {code:<14} {text}")?;
        }
    }
    Ok(if count("fatal") + count("error") > 0 {
        Outcome::BadInput
    } else {
        Outcome::Success
    })
}

async fn status(a: &JobArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let m = mediator(&consumer_of(&a.job)?, &a.auth)?;
    if a.wait {
        return follow(&m, &a.job, a.details, quiet).await;
    }
    match m.status(&a.job).await? {
        JobStatus::Running { progress, .. } => {
            println!("running: {progress}");
            Ok(Outcome::Success)
        }
        JobStatus::Complete(manifest) => {
            let outcomes = m.outcomes(&manifest).await?;
            report(&manifest, &outcomes, a.details)
        }
        JobStatus::Failed(why) => bail!("{why}"),
    }
}

async fn cancel(a: &JobArgs) -> anyhow::Result<Outcome> {
    let m = mediator(&consumer_of(&a.job)?, &a.auth)?;
    println!("{}", m.cancel(&a.job).await?);
    Ok(Outcome::Success)
}
