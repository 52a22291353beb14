//! `stratus synth population` and `stratus synth multiply`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use stratus_fhir::{Compression, ReaderOptions};
use stratus_synth::multiply::{self, MultiplyConfig};
use stratus_synth::population::{self, PopulationConfig};

use crate::cli::{MultiplyArgs, OutputArgs, PopulationArgs};
use crate::exit::Outcome;
use crate::output::{self, Unit, thousands};

fn compression(o: &OutputArgs) -> Compression {
    if o.no_compression {
        Compression::None
    } else {
        Compression::Gzip {
            level: o.gzip_level,
        }
    }
}

/// Refuses to mix a new data set into a folder that already holds files, unless asked:
/// stale files of another run would silently join the data set.
pub fn prepare_out(out: &Path, overwrite: bool) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))?;
        if entries.next().is_some() && !overwrite {
            bail!(
                "{} is not empty (use --overwrite to write into it anyway)",
                out.display()
            );
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

pub fn population(args: &PopulationArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if args.patients == 0 {
        bail!("--patients must be at least 1");
    }
    prepare_out(&args.out, args.output.overwrite)?;
    let config = PopulationConfig {
        patients: args.patients,
        seed: args.seed,
        compression: compression(&args.output),
    };
    let started = Instant::now();
    let pb = output::bar(args.patients, Unit::Items("patients"), quiet);
    let summary = population::generate(&config, &args.out, &|n| pb.inc(n))
        .with_context(|| format!("synthetic population into {}", args.out.display()))?;
    pb.finish_and_clear();
    if !quiet {
        let total = output::print_counts(&summary.counts);
        println!(
            "wrote {} resources for {} patients to {} in {:.1}s (MRNs: {})",
            thousands(total),
            thousands(args.patients),
            args.out.display(),
            started.elapsed().as_secs_f64(),
            population::MRN_SYSTEM
        );
    }
    Ok(Outcome::Success)
}

pub fn multiply(args: &MultiplyArgs, quiet: bool) -> anyhow::Result<Outcome> {
    if args.out.starts_with(&args.from) || args.from.starts_with(&args.out) {
        bail!(
            "--out {} and --from {} must not contain one another",
            args.out.display(),
            args.from.display()
        );
    }
    let config = MultiplyConfig {
        copies: args.copies,
        compression: compression(&args.output),
        reader: ReaderOptions {
            max_line_bytes: args.read.max_line_bytes,
        },
    };
    let planned = multiply::planned_input_bytes(&args.from, &config)?;
    prepare_out(&args.out, args.output.overwrite)?;
    let started = Instant::now();
    let summary = output::with_byte_progress(planned, "multiplying", quiet, |done, on_bad| {
        multiply::multiply(&args.from, &args.out, &config, done, on_bad)
    })?;
    for f in &summary.skipped_files {
        tracing::info!("skipped {} (resource type unknown)", f.display());
    }
    if !quiet {
        let total = output::print_counts(&summary.counts);
        println!(
            "wrote {} resources ({} copies) in {} files to {} in {:.1}s; {} bad input line{} skipped",
            thousands(total),
            args.copies,
            summary.files.len(),
            args.out.display(),
            started.elapsed().as_secs_f64(),
            thousands(summary.bad_lines),
            if summary.bad_lines == 1 { "" } else { "s" }
        );
    }
    Ok(if summary.bad_lines == 0 {
        Outcome::Success
    } else {
        Outcome::BadInput
    })
}
