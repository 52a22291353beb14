//! The command-line grammar. Help texts are written for a hospital data engineer meeting
//! the tool for the first time: what the command does, what it writes, and an example.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Stratus: move FHIR R4 data from EHRs into de-identified, research-ready tables.
#[derive(Debug, Parser)]
#[command(name = "stratus", version, about, long_about = None, args_override_self = true)]
#[command(after_help = "Exit codes: 0 success, 1 failure, 2 bad command line, \
3 finished but skipped bad input (each bad line is reported as file:line: reason).\n\
Logs go to stderr; set STRATUS_LOG=debug (or -v, -vv) for more.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output on stderr (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr, no progress bars.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Worker threads for parallel work (default: one per core).
    #[arg(long, global = true, env = "STRATUS_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// TOML file of default options: top-level keys for these global options, a table
    /// per command ([ndjson.stats], [synth.population], ...) keyed by long option name.
    /// Command-line options win.
    #[arg(
        short,
        long,
        global = true,
        env = "STRATUS_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make synthetic FHIR R4 data: invent a population, or multiply a real-shaped folder.
    #[command(subcommand)]
    Synth(SynthCommand),
    /// Inspect folders of FHIR NDJSON.
    #[command(subcommand)]
    Ndjson(NdjsonCommand),
    /// Make and inspect the keys a SMART Backend Services client signs with.
    #[command(subcommand)]
    Keys(crate::commands::keys::KeysCommand),
    /// Bulk Data Import (ping and pull): run a data consumer, or ping one as a provider.
    #[command(subcommand)]
    Import(crate::commands::import::ImportCommand),
    /// Put SMART Backend Services in front of an open FHIR server.
    ///
    /// Serves discovery (/fhir/.well-known/smart-configuration, and the oauth-uris
    /// extension in /fhir/metadata), registration (/auth/register, a JWKS by value or by
    /// URL) and a token endpoint (/auth/token, RS384/ES384 assertions, every SMART check),
    /// then forwards every /fhir request with a valid token to the upstream, streaming
    /// bodies both ways. Scopes are enforced per resource type (and per _type of an
    /// $export). Content-Location, Location and every URL in export manifests and Bundles
    /// are rewritten to go through the proxy, with requiresAccessToken: true, so that
    /// status polls and downloads need the token too.
    ///
    /// Example: stratus serve --data ../shared/data/synthea-r4-100 --open --port 9444 &
    ///          stratus proxy --upstream http://127.0.0.1:9444/fhir --port 9446 --state proxy-state
    #[command(verbatim_doc_comment)]
    Proxy(Box<crate::commands::proxy::ProxyArgs>),
    /// Serve a folder of FHIR NDJSON as a Bulk Data + FHIR REST server with SMART auth.
    ///
    /// A local stand-in for an EHR to rehearse exports and crawls against, and the test bed
    /// of every Stratus client. It serves, under http://HOST:PORT/fhir:
    ///
    ///   $export at system, Patient/ and Group/[id]/ level (GET, or POST Parameters), with
    ///   _type, _since, _until, _typeFilter, _elements, patient and _outputFormat; status
    ///   polling with X-Progress; manifests; DELETE to cancel; gzip downloads.
    ///
    ///   read ([type]/[id]), search ([type]?params, paged with next links), Binary/[id] as
    ///   raw bytes, metadata (a CapabilityStatement listing every search parameter).
    ///
    ///   SMART Backend Services: /fhir/.well-known/smart-configuration, a token endpoint at
    ///   /auth/token that checks signed assertions (RS384, ES384) fully, and registration at
    ///   /auth/register. Every FHIR request then needs a bearer token; --open turns that off.
    ///
    /// Faults for client tests (latency, 429/500/503, transient status errors, cut or slow
    /// downloads, expired files, tokens that die early, a rate limit) are seeded and set by
    /// the --fault-* flags or a TOML file (--faults). Each request is logged on one line.
    ///
    /// Example: stratus keys generate --out client.jwks && stratus keys public client.jwks > public.jwks
    ///          stratus serve --data ../shared/data/synthea-r4-100 --client my-app=public.jwks
    #[command(verbatim_doc_comment)]
    Serve(Box<ServeArgs>),
    /// Run one Bulk Data export and download it: a drop-in for the SMART bulk-data-client.
    ///
    /// Kicks off $export (Patient level unless --global or --group), polls honouring
    /// Retry-After, downloads the files in parallel while validating every line, and writes
    /// them as Type.001.ndjson.gz (or 1.Type.ndjson with --standard-names) with error/ and
    /// deleted/ folders, a bulk-data-client style log.ndjson, and manifest.json last, as
    /// the sign that the export is complete. Interrupted? Run the same command again: it
    /// resumes the server's job and fetches only what is missing.
    ///
    /// Example: stratus bulk --fhir-url https://ehr.example.org/fhir --group diabetes \
    ///            --smart-client-id my-app --smart-key client.jwks --type Patient,Condition --out export-1
    #[command(verbatim_doc_comment)]
    Bulk(Box<crate::commands::bulk::BulkArgs>),
    /// Managed exports, smart-fetch compatible: crawl patient by patient or bulk-export,
    /// then hydrate, detect deletions and link the current files.
    ///
    /// OUTPUT_DIR is a managed folder. Each run works in a numbered folder NNN.nickname
    /// inside it (resumed by running the same command again), with .metadata, log.ndjson
    /// (cumulus-etl reads the group and transaction time from it), Type.ndjson.gz from a
    /// crawl or Type.NNN.ndjson.gz from a bulk export, hydrated Type.referenced.ndjson.gz
    /// files, error/ and deleted/. The top level holds relative symlinks Type.NNN.ndjson.gz
    /// to the files that are current: point cumulus-etl at it.
    ///
    /// A crawl looks each MRN up (Patient?identifier=SYSTEM|MRN), then runs one paged
    /// search per patient and type (Type?patient=ID), all types at once within
    /// --max-in-flight. Ctrl-C, a crash or a power cut lose no finished patient: the rerun
    /// continues per patient and type and writes nothing twice.
    ///
    /// Example (Epic, quarterly):
    ///   stratus export --fhir-url https://ehr/api/FHIR/R4 --smart-client-id ID --smart-key key.jwks \
    ///     --id-system urn:oid:1.2.3 --id-file mrns.csv --nickname 2026-q4 /data/export
    ///   stratus export ... --since auto --nickname 2027-q1 /data/export
    #[command(verbatim_doc_comment)]
    Export(Box<crate::commands::export::ExportArgs>),
    /// Fetch what exported resources point to, and inline note attachments.
    ///
    /// Medications, result and member Observations, Practitioners and PractitionerRoles,
    /// Locations, Organizations, EpisodesOfCare and Specimens referenced from the folder's
    /// resources are downloaded into Type.referenced.ndjson.gz (results, members, searched
    /// for some); DocumentReference and DiagnosticReport attachments are inlined as data.
    /// What the folder already holds is not fetched again. `stratus export` runs this itself.
    ///
    /// Example: stratus hydrate --fhir-url URL --tasks medication,inline export/001.first
    #[command(verbatim_doc_comment)]
    Hydrate(Box<crate::commands::export::HydrateArgs>),
    /// De-identify an export and write research tables, as cumulus-etl does.
    ///
    /// Every id and reference is replaced by HMAC-SHA256 under the salt in PHI/codebook.json
    /// (the same file cumulus-etl uses: the same salt gives the same ids); everything not on
    /// the allow-list is dropped; birth dates keep the year, zip codes 3 digits. Tables are
    /// named as cumulus-etl names them (encounter, patient, condition, ...), with
    /// etl__completion and etl__completion_encounters, and JobConfig/ summaries.
    ///
    /// Lines that are not usable resources and resources that cannot be de-identified are
    /// reported (file:line: reason; all of them with --errors-to) and the run goes on;
    /// the exit code is then 3.
    ///
    /// Example: stratus etl export/ tables/ phi/ --export-group my-cohort --export-timestamp 2026-01-01
    #[command(verbatim_doc_comment)]
    Etl(Box<crate::commands::etl::EtlArgs>),
    /// Build studies on the ETL's tables and export their aggregates (cumulus-library).
    #[command(subcommand)]
    Library(crate::commands::library::LibraryCommand),
    /// Run the whole chain on built-in defaults and show where everything went.
    ///
    /// Generates a synthetic population (--patients, default 1,000), summarises it and
    /// serves it with SMART Backend Services on 127.0.0.1; crawls 100 of its patients by
    /// MRN as from Epic and bulk-exports all of it with a signed JWT assertion;
    /// de-identifies the export into Delta Lake; builds the core and discovery studies,
    /// exports their count tables and writes the HTML report. Needs no network and nothing
    /// installed; everything lands under --out.
    Demo(DemoArgs),
}

#[derive(Debug, Subcommand)]
pub enum SynthCommand {
    /// Generate a synthetic population: one NDJSON file per resource type.
    ///
    /// Deterministic for a seed, and streaming, so a million patients need no more memory
    /// than a hundred. Every reference is a relative `Type/id` that resolves inside the
    /// output. Patients carry an MRN identifier (system printed at the end) for crawls, and
    /// Group resources define cohorts for Group-level exports.
    ///
    /// Example: stratus synth population --patients 1000 --seed 7 --out synth-1k
    Population(PopulationArgs),
    /// Scale an NDJSON folder K times, rewriting every id and reference consistently.
    ///
    /// Copy 1 is the input unchanged; every other copy gets new UUIDs, new identifier
    /// values (so MRN searches still find one patient) and references rewritten to match.
    /// Sub-folders such as deleted/ and error/ are kept. Output files are
    /// Type.NNN.ndjson.gz.
    ///
    /// Example: stratus synth multiply --from ../shared/data/synthea-r4-100 --copies 10 --out synthea-1k
    Multiply(MultiplyArgs),
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write plain .ndjson instead of .ndjson.gz.
    #[arg(long)]
    pub no_compression: bool,
    /// gzip level, 0 (fastest) to 9 (smallest).
    #[arg(long, default_value_t = 1, value_name = "0-9", value_parser = clap::value_parser!(u32).range(0..=9))]
    pub gzip_level: u32,
    /// Write into OUT even if it already holds files (same-named files are replaced).
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Debug, Args)]
pub struct PopulationArgs {
    /// How many patients to generate.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub patients: u64,
    /// Seed: the same seed and patient count give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct MultiplyArgs {
    /// Input folder of NDJSON (any layout stratus ndjson stats reads).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Total copies, the original included.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub copies: u32,
    /// Output folder (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Longest line accepted, in bytes (suffixes K, M, G allowed); longer lines are
    /// reported and skipped.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = parse_size)]
    pub max_line_bytes: usize,
}

#[derive(Debug, Subcommand)]
pub enum NdjsonCommand {
    /// Count resources per type in a folder (or file) of NDJSON and report every bad line.
    ///
    /// Reads what cumulus-etl and smart-fetch read: .ndjson, .jsonl, either gzipped
    /// (multi-member too), in sub-folders and through symlinks, typed by file name
    /// (1.Patient.ndjson, Patient.000.ndjson.gz) or, when the name says nothing, by the
    /// first line. Bad lines (invalid JSON, no resourceType, no id, wrong type for the file,
    /// over the size limit) are printed to stderr as file:line: reason and skipped; the exit
    /// code is then 3.
    ///
    /// Example: stratus ndjson stats ../shared/data/synthea-r4-100
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Folder or file to read.
    pub path: PathBuf,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also check that every relative reference (Type/id, Binary/id attachment URLs, #id)
    /// resolves inside the folder. Holds every Type/id in memory (~60 bytes each).
    #[arg(long)]
    pub check_references: bool,
    #[command(flatten)]
    pub read: ReadArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Folder (or file) of FHIR NDJSON to serve, plain or gzipped, any layout.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Address to listen on. Keep the default unless other machines must reach it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 9444)]
    pub port: u16,
    /// URL clients reach the server at, if not http://HOST:PORT (behind a proxy).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Where the server keeps its copy of the data and export files (default: a temporary
    /// folder removed at exit). Needs about the uncompressed size of the data.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// No authorization: every request is served without a token.
    #[arg(long)]
    pub open: bool,
    /// Register a client: its id and a file holding its public JWKS (a JWKS with private
    /// keys is accepted; only the public parts are kept). Repeat for more clients.
    #[arg(long = "client", value_name = "ID=JWKS", value_parser = parse_pair)]
    pub clients: Vec<(String, PathBuf)>,
    /// Limit a client's scopes, e.g. "my-app=system/Patient.rs system/Observation.rs"
    /// (default: system/*.rs). Repeat per client.
    #[arg(long = "client-scopes", value_name = "ID=SCOPES", value_parser = parse_pair_str)]
    pub client_scopes: Vec<(String, String)>,
    /// Refuse new clients at /auth/register (only --client ones may connect).
    #[arg(long)]
    pub no_registration: bool,
    /// Add a Group for Group-level export from a file of patient ids (one per line,
    /// "Patient/" optional). Groups in the data are served too. Repeat for more.
    #[arg(long = "group", value_name = "ID=FILE", value_parser = parse_pair)]
    pub groups: Vec<(String, PathBuf)>,
    /// Resources to report as deleted: lines of "Type/id [instant]", or NDJSON deletion
    /// Bundles. They vanish from reads, searches and exports, and _since exports list them
    /// in "deleted".
    #[arg(long, value_name = "FILE")]
    pub deletions: Option<PathBuf>,
    /// Export files hold at most this many resources; more spill into the next file.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub resources_per_file: u64,
    /// How long export files stay downloadable after the export completes (30s, 10m, 2h).
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    pub file_ttl: std::time::Duration,
    /// Search page size when the client sends no _count.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub page_size: usize,
    /// Largest _count honoured.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_page_size: usize,
    /// Largest request body accepted (suffixes K, M).
    #[arg(long, default_value = "1M", value_name = "SIZE", value_parser = parse_size)]
    pub max_body: usize,
    /// Exports that may run at once; more kick-offs answer 429.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_exports: usize,
    /// expires_in of access tokens (at most 5m, as SMART recommends).
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub token_lifetime: std::time::Duration,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Fault injection. Rates are shares of requests between 0 and 1.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Fault injection")]
pub struct FaultArgs {
    /// TOML file of fault settings (keys: seed, latency-ms = [min, max], rate-429,
    /// rate-500, rate-503, retry-after, transient-polls, truncate-rate,
    /// slow-bytes-per-sec, expire-rate, token-valid-secs, rate-limit). Flags override it.
    #[arg(long, value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Seed for every random fault decision.
    #[arg(long, value_name = "N")]
    pub fault_seed: Option<u64>,
    /// Delay every answer: MS, or MIN..MAX for a uniform spread.
    #[arg(long, value_name = "MS[..MS]", value_parser = parse_latency)]
    pub fault_latency: Option<[u64; 2]>,
    /// Share of requests answered 429 Too Many Requests with Retry-After.
    #[arg(long = "fault-429", value_name = "RATE")]
    pub fault_429: Option<f64>,
    /// Share of requests answered 500.
    #[arg(long = "fault-500", value_name = "RATE")]
    pub fault_500: Option<f64>,
    /// Share of requests answered 503 with Retry-After.
    #[arg(long = "fault-503", value_name = "RATE")]
    pub fault_503: Option<f64>,
    /// Retry-After seconds on injected 429 and 503 answers.
    #[arg(long, value_name = "SECS")]
    pub fault_retry_after: Option<u64>,
    /// The first N status polls of every export answer 500 "transient".
    #[arg(long, value_name = "N")]
    pub fault_transient_polls: Option<u32>,
    /// Share of file downloads cut off halfway.
    #[arg(long, value_name = "RATE")]
    pub fault_truncate: Option<f64>,
    /// Throttle file downloads to this many bytes per second (suffixes K, M).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub fault_slow: Option<usize>,
    /// Share of file downloads answered 410 Gone, as if expired.
    #[arg(long, value_name = "RATE")]
    pub fault_expire: Option<f64>,
    /// Tokens stop working after this many seconds, whatever expires_in said.
    #[arg(long, value_name = "SECS")]
    pub fault_token_valid: Option<u64>,
    /// Requests per second allowed per client (by token); more answer 429.
    #[arg(long, value_name = "PER_SEC")]
    pub rate_limit: Option<f64>,
}

/// Parses `ID=VALUE` into an id and a path.
fn parse_pair(s: &str) -> Result<(String, PathBuf), String> {
    parse_pair_str(s).map(|(k, v)| (k, PathBuf::from(v)))
}

fn parse_pair_str(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        }
        _ => Err(format!("'{s}' is not ID=VALUE")),
    }
}

/// Parses `90`, `90s`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse::<u64>()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("'{s}' is not a duration (examples: 500ms, 90, 30s, 10m, 2h)"));
    }
    let (digits, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86_400),
        _ => (s, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .map(|n| std::time::Duration::from_secs(n * mult))
        .ok_or_else(|| format!("'{s}' is not a duration (examples: 500ms, 90, 30s, 10m, 2h)"))
}

fn parse_latency(s: &str) -> Result<[u64; 2], String> {
    let bad = || format!("'{s}' is not MS or MIN..MAX (examples: 100, 50..300)");
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (
                a.trim().parse().map_err(|_| bad())?,
                b.trim().parse().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok([a, b])
        }
        None => {
            let v = s.trim().parse().map_err(|_| bad())?;
            Ok([v, v])
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to put everything the demo makes.
    #[arg(long, default_value = "stratus-demo", value_name = "DIR")]
    pub out: PathBuf,
    /// Patients in the synthetic population.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub patients: u64,
    /// Seed for the synthetic population.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Parses `1048576`, `64K`, `256M`, `1G` (binary multiples).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, mult) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1usize << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("'{s}' is not a size (examples: 1048576, 64K, 256M, 1G)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10"), Ok(10));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("x").is_err());
    }
}
