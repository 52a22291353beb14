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
        "   {} resources indexed; Bulk Data and FHIR REST answered at {}",
        crate::output::thousands(server.summary.resources),
        server.base_url
    );
    let export_dir = args.out.join("export");
    let mrns = demo_mrns(&synth_dir, 100)?;
    println!();
    println!(
        "== 4. crawling {} patients by MRN, as from Epic: stratus export --export-mode crawl --id-file ... {}",
        mrns.len(),
        export_dir.display()
    );
    if export_dir.exists() {
        std::fs::remove_dir_all(&export_dir)?;
    }
    let client = std::sync::Arc::new(stratus_http::Client::new(
        &server.base_url,
        stratus_http::Auth::None,
        stratus_http::HttpConfig {
            max_in_flight: 5,
            ..Default::default()
        },
    )?);
    let opts = stratus_fetch::export::ExportOptions {
        out: export_dir.clone(),
        group: None,
        group_nickname: Some("demo".into()),
        cohort: Some(mrns),
        id_file: None,
        id_system: Some(stratus_synth::population::MRN_SYSTEM.into()),
        nickname: Some("first".into()),
        mode: stratus_fetch::export::Mode::Crawl,
        since: None,
        since_mode: "auto".into(),
        types: vec![],
        type_filters: vec![],
        default_filters: true,
        hydration: stratus_fetch::hydrate::GROUPS.to_vec(),
        compression: stratus_fhir::writer::Compression::FAST_GZIP,
        inline: Default::default(),
        workers: 10,
        policy: Default::default(),
        bulk_parallel: 5,
        today: "demo".into(),
    };
    let started = std::time::Instant::now();
    let report = stratus_bulk::block_on(stratus_fetch::export::run(
        std::sync::Arc::clone(&client),
        &opts,
        Default::default(),
        Default::default(),
    ))??;
    let resources: u64 = report.outcomes.iter().map(|o| o.resources).sum();
    let hydrated: u64 = report.hydration.iter().map(|h| h.new).sum();
    println!(
        "   {} resources in {} types, {} more by hydration, {} requests in {:.1} s; {} links at the top",
        crate::output::thousands(resources),
        report.outcomes.len(),
        crate::output::thousands(hydrated),
        crate::output::thousands(client.budget().requests()),
        started.elapsed().as_secs_f64(),
        report.links
    );
    server.stop()?;
    println!();
    println!("Everything is under {}:", args.out.display());
    println!(
        "  {}/   one Type.ndjson.gz per resource type",
        synth_dir.display()
    );
    println!(
        "  {}/   a managed export folder (smart-fetch layout), ready for the ETL",
        export_dir.display()
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

/// The MRNs of the first `n` patients of the population.
fn demo_mrns(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<String>> {
    let files = stratus_fetch::files::of_type(dir, "Patient")?;
    let mut out = Vec::new();
    stratus_fetch::files::for_each(&files, |p| {
        for i in p["identifier"].as_array().into_iter().flatten() {
            if out.len() < n
                && i["system"] == stratus_synth::population::MRN_SYSTEM
                && let Some(v) = i["value"].as_str()
                && !out.iter().any(|o| o == v)
            {
                out.push(v.to_owned());
            }
        }
    })?;
    Ok(out)
}
