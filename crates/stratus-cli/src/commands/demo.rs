//! `stratus demo`: the whole chain on built-in defaults. Each capability that lands joins it,
//! so a new user sees everything Stratus does with one command.

use crate::cli::{DemoArgs, OutputArgs, PopulationArgs};
use crate::exit::Outcome;

pub fn run(args: &DemoArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let synth_dir = args.out.join("synth");
    println!(
        "== 1. synthetic population: {} patients, seed {} -> {}",
        args.patients,
        args.seed,
        synth_dir.display()
    );
    super::synth::population(
        &PopulationArgs {
            patients: args.patients,
            seed: args.seed,
            out: synth_dir.clone(),
            output: OutputArgs {
                no_compression: false,
                gzip_level: 1,
                overwrite: true,
            },
        },
        true,
    )?;
    println!(
        "== 2. reading it back as the ETL will: stratus ndjson stats {}",
        synth_dir.display()
    );
    let stats = super::ndjson::collect(&synth_dir, stratus_fhir::ReaderOptions::default(), quiet)?;
    super::ndjson::print_table(&mut std::io::stdout().lock(), &stats)?;
    println!();
    println!(
        "== 3. serving it as an EHR would: stratus serve --data {} --open",
        synth_dir.display()
    );
    let mut config = stratus_server::ServeConfig::new(&synth_dir);
    config.port = 0;
    config.open = true;
    let server = stratus_server::start(config)?;
    println!(
        "   {} resources indexed; Bulk Data and FHIR REST answered at {} (stopped again)",
        crate::output::thousands(server.summary.resources),
        server.base_url
    );
    server.stop()?;
    println!();
    println!("Everything is under {}:", args.out.display());
    println!(
        "  {}/   one Type.ndjson.gz per resource type",
        synth_dir.display()
    );
    println!(
        "Next: stratus synth multiply --from {} --copies 10 --out bigger",
        synth_dir.display()
    );
    println!(
        "      stratus serve --data {} --open   (then curl its /fhir/metadata)",
        synth_dir.display()
    );
    Ok(if stats.is_clean() {
        Outcome::Success
    } else {
        Outcome::BadInput
    })
}
