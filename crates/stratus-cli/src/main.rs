//! The `stratus` binary: parses the command line and hands each command to the library
//! crates. Nothing here knows FHIR; it only wires, reports and chooses exit codes.

mod cli;
mod commands;
mod config;
mod exit;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

/// The ETL and the server allocate and free millions of small JSON values from several
/// threads; glibc's allocator spent a fifth of the ETL's time on that. jemalloc is as fast as
/// mimalloc was here, and it reuses and returns freed memory where mimalloc 3 held on to it:
/// compacting a 16-million-row Delta table peaked at 423 MiB with jemalloc, 559 MiB with
/// glibc and 1.3 to 1.8 GiB with mimalloc (BENCHMARKS.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(err) => {
            eprintln!("stratus: error: {err:#}");
            return exit::Outcome::Failure.into();
        }
    };
    let serving = matches!(
        cli.command,
        cli::Command::Serve(_)
            | cli::Command::Proxy(_)
            | cli::Command::Import(commands::import::ImportCommand::Server(_))
    );
    init_tracing(cli.global.verbose, cli.global.quiet, serving);
    if let Some(threads) = cli.global.threads {
        // Only fails if a pool was already built, which cannot happen this early.
        let _ = rayon_pool(threads);
    }
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("stratus: error: {err:#}");
            exit::Outcome::Failure.into()
        }
    }
}

/// Parses the command line, with the config file's defaults in front of it. clap errors
/// (usage, --help, --version) print and exit here, with clap's own codes.
fn parse() -> anyhow::Result<cli::Cli> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = cli::Cli::command();
    if let Some(path) = config::config_path(&args) {
        args = config::apply(&cmd, args, &path)?;
    }
    let matches = cmd.get_matches_from(args);
    Ok(cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

fn rayon_pool(threads: usize) -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
}

/// Logs on stderr. The server's access and auth lines are `stratus serve`'s own output, so
/// they show by default there; other commands that run a server inside (the demo) keep
/// them quiet.
fn init_tracing(verbose: u8, quiet: bool, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if serving => "warn,stratus::access=info,stratus::auth=info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    // delta-rs logs an error for every table that does not exist yet, which is how every
    // first load starts; its real errors come back as results and are reported. Below
    // `-vv` its own logs are noise for a user.
    let default = if verbose >= 2 {
        level.to_owned()
    } else {
        format!("{level},buoyant_kernel=off,delta_kernel=off,deltalake_core=off")
    };
    let filter =
        EnvFilter::try_from_env("STRATUS_LOG").unwrap_or_else(|_| EnvFilter::new(&default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}
