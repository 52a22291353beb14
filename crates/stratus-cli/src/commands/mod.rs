//! One module per top-level command.

pub mod bulk;
mod demo;
pub mod etl;
pub mod export;
pub mod import;
pub mod keys;
pub mod library;
mod ndjson;
pub mod proxy;
mod serve;
mod synth;

use crate::cli::{Cli, Command, NdjsonCommand, SynthCommand};
use crate::exit::Outcome;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Synth(SynthCommand::Population(args)) => synth::population(&args, quiet),
        Command::Synth(SynthCommand::Multiply(args)) => synth::multiply(&args, quiet),
        Command::Ndjson(NdjsonCommand::Stats(args)) => ndjson::stats(&args, quiet),
        Command::Keys(cmd) => keys::run(&cmd),
        Command::Import(cmd) => import::run(&cmd, quiet),
        Command::Proxy(args) => proxy::run(&args, quiet),
        Command::Serve(args) => serve::run(&args, quiet),
        Command::Bulk(args) => bulk::run(&args, quiet),
        Command::Export(args) => export::export(&args, quiet),
        Command::Hydrate(args) => export::hydrate(&args, quiet),
        Command::Etl(args) => etl::run(&args, quiet),
        Command::Library(cmd) => library::run(&cmd, quiet),
        Command::Demo(args) => demo::run(&args, quiet),
    }
}
