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
    /// Run the whole chain on built-in defaults and show where everything went.
    ///
    /// Today: generate a synthetic population and summarise it. Each new Stratus capability
    /// joins the demo as it lands.
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
