//! `stratus bulk`: flags to an `ExportSpec`, `Options` and an HTTP client; a progress line
//! while it runs; a summary at the end.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use stratus_bulk::{ExportSpec, Level, Options, Progress};
use stratus_http::{Auth, Client, HttpConfig, SmartClient};
use stratus_smart::keys::SigningKey;

use crate::exit::Outcome;
use crate::output::{StatusLine, bytes, thousands};

/// The Bulk Data kick-off parameters, as `stratus bulk` and `stratus import kickoff` take
/// them.
#[derive(Debug, Args)]
pub struct ExportParams {
    /// Only these patients (ids or Patient/id; comma-separated or repeated). Sent by POST.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub patient: Vec<String>,
    /// Resource types to export (comma-separated or repeated).
    #[arg(
        long = "type",
        visible_alias = "_type",
        short = 't',
        value_delimiter = ',',
        value_name = "TYPE"
    )]
    pub types: Vec<String>,
    /// Only resources changed since this instant (e.g. 2024-01-31T00:00:00Z).
    #[arg(long, visible_alias = "_since", value_name = "INSTANT")]
    pub since: Option<String>,
    /// Only resources changed before this instant (Bulk Data STU3).
    #[arg(long, visible_alias = "_until", value_name = "INSTANT")]
    pub until: Option<String>,
    /// A search filter for one type, e.g. "Observation?category=laboratory" (repeatable).
    #[arg(long, visible_alias = "_typeFilter", value_name = "QUERY")]
    pub type_filter: Vec<String>,
    /// Only these elements (comma-separated, `element` or `Type.element`).
    #[arg(
        long,
        visible_alias = "_elements",
        value_delimiter = ',',
        value_name = "ELEMENT"
    )]
    pub elements: Vec<String>,
    /// includeAssociatedData values (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "CODE")]
    pub include_associated_data: Vec<String>,
    /// _outputFormat to ask for (default: the server's, application/fhir+ndjson).
    #[arg(long, visible_alias = "_outputFormat", value_name = "MIME")]
    pub output_format: Option<String>,
}

impl ExportParams {
    /// The parameters as a spec with no level, GET and strict handling: the caller sets
    /// those.
    pub fn spec(&self) -> ExportSpec {
        ExportSpec {
            types: self.types.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            type_filters: self.type_filter.clone(),
            elements: self.elements.clone(),
            patients: self.patient.clone(),
            include_associated_data: self.include_associated_data.clone(),
            output_format: self.output_format.clone(),
            ..ExportSpec::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct BulkArgs {
    /// The FHIR server's base URL.
    #[arg(long, env = "STRATUS_FHIR_URL", value_name = "URL")]
    pub fhir_url: String,
    /// Where the files go: a folder (created if missing); an http(s):// URL, which gets a
    /// PUT per file (Basic auth from user:password@ in the URL); s3://bucket/prefix
    /// (credentials, region and AWS_ENDPOINT_URL from the usual AWS_* variables); or `none`
    /// to validate and count without keeping anything.
    #[arg(long, value_name = "DIR|URL")]
    pub out: PathBuf,
    /// Local folder where files for an http(s):// or s3:// --out wait until sent, with the resume
    /// state (default: a folder under the system temp dir named after the URL).
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,

    /// System-level export ([base]/$export) instead of Patient-level.
    #[arg(long, conflicts_with = "group")]
    pub global: bool,
    /// Group-level export ([base]/Group/ID/$export).
    #[arg(long, value_name = "ID")]
    pub group: Option<String>,
    #[command(flatten)]
    pub params: ExportParams,
    /// Kick off with POST and a Parameters body (implied by --patient).
    #[arg(long)]
    pub post: bool,
    /// Ask the server to ignore parameters it does not support (Prefer: handling=lenient).
    #[arg(long)]
    pub lenient: bool,
    /// Extra request header "Name: value" (repeatable), e.g. for an API gateway.
    #[arg(long = "header", short = 'H', value_name = "HEADER")]
    pub headers: Vec<String>,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Downloads at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallel: usize,
    /// Name files 1.Patient.ndjson (bulk-data-client style) instead of Patient.001.ndjson.
    #[arg(long)]
    pub standard_names: bool,
    /// Write plain .ndjson instead of .ndjson.gz.
    #[arg(long)]
    pub no_compression: bool,
    /// Fail the export on any validation problem (bad JSON, wrong type, wrong count).
    #[arg(long)]
    pub strict: bool,
    /// Longest line accepted (suffixes K, M, G); longer lines are reported.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub max_line_bytes: usize,
    /// Inline note attachments (DocumentReference.content, DiagnosticReport.presentedForm)
    /// that point to a URL: fetch them with the same auth and store them as `data`, with
    /// `size` and a SHA-1 `hash`; `url` is kept.
    #[arg(long)]
    pub inline: bool,
    /// MIME types to inline (implies --inline; default text/plain, text/html,
    /// application/xhtml+xml).
    #[arg(long, value_delimiter = ',', value_name = "MIME")]
    pub inline_types: Vec<String>,
    /// Inline PDF attachments as their text (contentType text/plain; implies --inline).
    #[arg(long)]
    pub pdf_to_text: bool,
    /// Attachments larger than this stay as URLs (suffixes K, M, G).
    #[arg(long, default_value = "10M", value_name = "SIZE", value_parser = crate::cli::parse_size)]
    pub inline_max_size: usize,
    /// Skip the kick-off and follow this status URL (an export started elsewhere).
    #[arg(long, value_name = "URL")]
    pub resume: Option<String>,
    /// Cancel the export (the one in --out's state file, or --resume URL) on the server.
    #[arg(long)]
    pub cancel: bool,
    /// Leave the export on the server when done (by default it is released with DELETE).
    #[arg(long)]
    pub keep_on_server: bool,
    /// Retries per request on 429, 5xx and broken connections.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub retries: u32,
    /// Progress display: `auto` (a live line on a terminal, a line every 10 s otherwise),
    /// `text` (always plain lines), `json` (progress and the summary as JSON lines on
    /// stdout, for pipelines).
    #[arg(long, default_value = "auto", value_parser = ["auto", "text", "json"])]
    pub reporter: String,
    /// Longest wait between retries or polls, whatever Retry-After says (30s, 2m).
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub max_wait: Duration,
}

/// Authentication. SMART Backend Services needs a client id and a key; a fixed bearer
/// token or HTTP Basic are for gateways and test servers.
#[derive(Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthArgs {
    /// SMART Backend Services client id.
    #[arg(long, env = "STRATUS_SMART_CLIENT_ID", value_name = "ID")]
    pub smart_client_id: Option<String>,
    /// The private key: a JWKS, JWK or PEM file, or the JSON/PEM text itself.
    #[arg(
        long,
        env = "STRATUS_SMART_KEY",
        value_name = "FILE|KEY",
        hide_env_values = true
    )]
    pub smart_key: Option<String>,
    /// The kid to sign with, when the JWKS holds several private keys.
    #[arg(long, value_name = "KID")]
    pub smart_kid: Option<String>,
    /// Scopes to ask for (default system/*.rs, falling back to system/*.read).
    #[arg(long, value_name = "SCOPES")]
    pub smart_scope: Option<String>,
    /// The token endpoint (default: discovered from the server).
    #[arg(long, value_name = "URL")]
    pub smart_token_url: Option<String>,
    /// A fixed bearer token.
    #[arg(
        long,
        env = "STRATUS_BEARER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub bearer_token: Option<String>,
    /// HTTP Basic user.
    #[arg(long, value_name = "USER", requires = "basic_passwd")]
    pub basic_user: Option<String>,
    /// HTTP Basic password.
    #[arg(
        long,
        env = "STRATUS_BASIC_PASSWD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub basic_passwd: Option<String>,
}

/// `--header "Name: value"` options as pairs.
pub(crate) fn parse_headers(values: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    values
        .iter()
        .map(|h| match h.split_once(':') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
            None => bail!("--header '{h}' is not \"Name: value\""),
        })
        .collect()
}

/// A scratch folder under the system temp folder named by a hash (FNV-1a) of `key`: the
/// same command gets the same folder, so rerunning it resumes.
pub(crate) fn temp_dir_for(prefix: &str, key: impl Iterator<Item = u8>) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    std::env::temp_dir().join(format!("{prefix}-{h:016x}"))
}

/// Attachment inlining as the `--inline-*` / `--mimetypes` / `--pdf-to-text` options say:
/// the default types unless some are given, and PDFs whenever they are to become text.
pub(crate) fn inline_options(
    types: &[String],
    pdf_to_text: bool,
    max_size: usize,
) -> stratus_bulk::attachments::InlineOptions {
    let mut o = stratus_bulk::attachments::InlineOptions {
        max_bytes: max_size as u64,
        pdf_to_text,
        ..Default::default()
    };
    if !types.is_empty() {
        o.types = types.to_vec();
    }
    if pdf_to_text && !o.types.iter().any(|t| t == "application/pdf") {
        o.types.push("application/pdf".into());
    }
    o
}

pub(crate) fn auth(a: &AuthArgs) -> anyhow::Result<Auth> {
    let chosen = [
        a.smart_client_id.is_some() || a.smart_key.is_some(),
        a.bearer_token.is_some(),
        a.basic_user.is_some(),
    ];
    if chosen.iter().filter(|c| **c).count() > 1 {
        bail!(
            "choose one way to authenticate: SMART (--smart-client-id/--smart-key), --bearer-token, or --basic-user"
        );
    }
    if let Some(t) = &a.bearer_token {
        return Ok(Auth::Bearer(t.clone()));
    }
    if let (Some(user), Some(password)) = (&a.basic_user, &a.basic_passwd) {
        return Ok(Auth::Basic {
            user: user.clone(),
            password: password.clone(),
        });
    }
    match (&a.smart_client_id, &a.smart_key) {
        (None, None) => Ok(Auth::None),
        (Some(_), None) => bail!("--smart-client-id needs --smart-key (a JWKS or PEM private key)"),
        (None, Some(_)) => {
            bail!("--smart-key needs --smart-client-id (the id the EHR gave your client)")
        }
        (Some(id), Some(key)) => {
            let trimmed = key.trim_start();
            let key = if trimmed.starts_with('{') || trimmed.starts_with("-----BEGIN") {
                if trimmed.starts_with('{') {
                    let v: serde_json::Value = serde_json::from_str(trimmed)
                        .context("--smart-key: the JSON given is not a JWK or JWKS")?;
                    SigningKey::from_jwks(&v, a.smart_kid.as_deref())?
                } else {
                    SigningKey::from_pem(trimmed)?
                }
            } else {
                SigningKey::load(std::path::Path::new(key), a.smart_kid.as_deref())?
            };
            Ok(Auth::Smart(Box::new(SmartClient::new(
                id.clone(),
                key,
                a.smart_scope.clone(),
                a.smart_token_url.clone(),
            ))))
        }
    }
}

fn spec(a: &BulkArgs) -> ExportSpec {
    ExportSpec {
        level: Some(match (&a.group, a.global) {
            (Some(g), _) => Level::Group(g.clone()),
            (None, true) => Level::System,
            (None, false) => Level::Patient,
        }),
        post: a.post,
        lenient: a.lenient,
        ..a.params.spec()
    }
}

pub fn run(a: &BulkArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let config = HttpConfig {
        headers: parse_headers(&a.headers)?,
        max_retries: a.retries,
        max_delay: a.max_wait,
        ..HttpConfig::default()
    };
    let client = Client::new(&a.fhir_url, auth(&a.auth)?, config)?;
    let out_text = a.out.to_string_lossy().into_owned();
    let upload = ["http://", "https://", "s3://"]
        .iter()
        .any(|p| out_text.starts_with(p))
        .then(|| out_text.clone());
    let out = match &upload {
        Some(url) => Some(
            a.staging
                .clone()
                .unwrap_or_else(|| temp_dir_for("stratus-bulk", url.bytes())),
        ),
        None => (out_text != "none").then(|| a.out.clone()),
    };
    let options = Options {
        out: out.clone(),
        parallel: a.parallel.max(1),
        standard_names: a.standard_names,
        compression: crate::commands::export::compression(a.no_compression),
        strict: a.strict,
        max_line_bytes: a.max_line_bytes,
        resume_url: a.resume.clone(),
        cancel: a.cancel,
        keep_on_server: a.keep_on_server,
        max_poll_interval: a.max_wait.min(Duration::from_secs(60)),
        attempts: a.retries.max(1),
        upload: upload.clone(),
        allowed_origins: Vec::new(),
        inline: (a.inline || a.pdf_to_text || !a.inline_types.is_empty())
            .then(|| inline_options(&a.inline_types, a.pdf_to_text, a.inline_max_size)),
    };
    let spec = spec(a);
    let progress = Arc::new(Progress::default());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let json = a.reporter == "json";
    let mode = match a.reporter.as_str() {
        "json" => Mode::Json,
        "text" => Mode::Text,
        _ if std::io::stderr().is_terminal() => Mode::Live,
        _ => Mode::Text,
    };
    let reporter = (!quiet || json).then(|| {
        let p = progress.clone();
        let d = done.clone();
        std::thread::spawn(move || report(&p, &d, mode))
    });
    let result = stratus_bulk::block_on(stratus_bulk::run(&client, &spec, &options, progress))?;
    done.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    let summary = result?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "event": "summary",
                "statusUrl": summary.status_url,
                "cancelled": summary.cancelled,
                "resumed": summary.resumed,
                "transactionTime": summary.transaction_time,
                "files": summary.files,
                "resources": summary.resources,
                "bytes": summary.bytes,
                "problems": summary.problems,
                "serverMessages": summary.server_messages,
                "out": out.as_ref().map(|d| d.display().to_string()),
            })
        );
        return Ok(if summary.problems.is_empty() {
            Outcome::Success
        } else {
            Outcome::BadInput
        });
    }
    if summary.cancelled {
        println!("cancelled export {}", summary.status_url);
        return Ok(Outcome::Success);
    }
    for p in summary.problems.iter().take(20) {
        eprintln!("{p}");
    }
    for m in summary.server_messages.iter().take(20) {
        eprintln!("message from the server: {m}");
    }
    if summary.attachments > 0 {
        println!("{} attachments inlined", thousands(summary.attachments));
    }
    println!(
        "{}{} resources in {} files ({}), transaction time {}",
        if summary.resumed { "resumed; " } else { "" },
        thousands(summary.resources),
        summary.files,
        bytes(summary.bytes),
        summary.transaction_time
    );
    match (&upload, &out) {
        (Some(url), _) => println!("sent to {} (manifest.json, log.ndjson)", redact(url)),
        (None, Some(dir)) => println!("written to {} (manifest.json, log.ndjson)", dir.display()),
        (None, None) => println!("validated only (--out none): nothing kept"),
    }
    Ok(if summary.problems.is_empty() {
        Outcome::Success
    } else {
        Outcome::BadInput
    })
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Live,
    Text,
    Json,
}

/// A live progress line on a terminal, a line every 10 s otherwise, or JSON every second.
fn report(p: &Progress, done: &std::sync::atomic::AtomicBool, mode: Mode) {
    let mut status = StatusLine::new(mode == Mode::Live);
    let start = std::time::Instant::now();
    let mut last_text = std::time::Instant::now();
    let mut dl_start: Option<Option<std::time::Instant>> = None;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let phase = p.phase_text();
        let wire = p.wire_bytes.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let (done_files, total_files) = (
            p.files_done.load(Ordering::Relaxed),
            p.files_total.load(Ordering::Relaxed),
        );
        // ETA from the share of files done since the downloads began.
        let eta = match *dl_start
            .get_or_insert_with(|| (total_files > 0).then(std::time::Instant::now))
        {
            Some(t0) if done_files > 0 && done_files < total_files => {
                let per = t0.elapsed().as_secs_f64() / done_files as f64;
                format!(", ETA {:.0}s", per * (total_files - done_files) as f64)
            }
            _ => String::new(),
        };
        if total_files == 0 {
            dl_start = None;
        }
        let line = format!(
            "{phase}: server {}%, files {done_files}/{total_files}, {} resources, {} received ({}/s){eta}",
            p.server_percent.load(Ordering::Relaxed),
            thousands(p.resources.load(Ordering::Relaxed)),
            bytes(wire),
            bytes((wire as f64 / secs) as u64),
        );
        if mode == Mode::Json {
            if last_text.elapsed() >= Duration::from_secs(1) {
                println!(
                    "{}",
                    serde_json::json!({
                        "event": "progress",
                        "phase": phase,
                        "serverPercent": p.server_percent.load(Ordering::Relaxed),
                        "filesDone": p.files_done.load(Ordering::Relaxed),
                        "filesTotal": p.files_total.load(Ordering::Relaxed),
                        "resources": p.resources.load(Ordering::Relaxed),
                        "bytesReceived": wire,
                        "seconds": secs,
                    })
                );
                last_text = std::time::Instant::now();
            }
        } else if status.due() {
            status.show(&line);
        }
    }
}
