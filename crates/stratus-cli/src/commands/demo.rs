//! `stratus demo`: the whole chain on built-in defaults: synth, serve (SMART on), crawl,
//! bulk export, ETL into Delta Lake, the library's studies, export and report. Each
//! capability that lands joins it, so a new user sees everything Stratus does with one
//! command.

use stratus_http::{Auth, SmartClient};
use stratus_smart::keys::{Alg, SigningKey};

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
    // A backend-service client, registered with the server as a site registers with its EHR.
    let keys_dir = args.out.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    let key = SigningKey::generate(Alg::Es384, 0)?;
    let public = keys_dir.join("demo-client.public.jwks");
    std::fs::write(&public, serde_json::to_vec_pretty(&key.public_jwks())?)?;
    std::fs::write(
        keys_dir.join("demo-client.private.jwks"),
        serde_json::to_vec_pretty(&key.to_jwks())?,
    )?;
    println!(
        "== 3. serving it as an EHR would, SMART Backend Services on: stratus serve --data {} --client demo-client={}",
        synth_dir.display(),
        public.display()
    );
    let mut config = stratus_server::ServeConfig::new(&synth_dir);
    config.port = 0;
    config.clients = vec![stratus_server::ClientSpec {
        id: "demo-client".into(),
        jwks: public.clone(),
        scopes: None,
    }];
    let server = stratus_server::start(config)?;
    let smart = || {
        Auth::Smart(Box::new(SmartClient::new(
            "demo-client",
            key.clone(),
            None,
            None,
        )))
    };
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
        smart(),
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
    let bulk_dir = args.out.join("bulk");
    println!();
    println!(
        "== 5. a system-level Bulk Data export with a signed JWT assertion: stratus bulk --global --smart-client-id demo-client --smart-key {} {}",
        keys_dir.join("demo-client.private.jwks").display(),
        bulk_dir.display()
    );
    if bulk_dir.exists() {
        std::fs::remove_dir_all(&bulk_dir)?;
    }
    let started = std::time::Instant::now();
    let bulk_client = stratus_http::Client::new(&server.base_url, smart(), Default::default())?;
    let spec = stratus_bulk::ExportSpec {
        level: Some(stratus_bulk::Level::System),
        ..Default::default()
    };
    let options = stratus_bulk::Options {
        out: Some(bulk_dir.clone()),
        ..Default::default()
    };
    let summary = stratus_bulk::block_on(stratus_bulk::run(
        &bulk_client,
        &spec,
        &options,
        Default::default(),
    ))??;
    println!(
        "   {} resources in {} files, {:.1} s",
        crate::output::thousands(summary.resources),
        summary.files,
        started.elapsed().as_secs_f64()
    );
    server.stop()?;

    let (lake, phi) = (args.out.join("lake"), args.out.join("phi"));
    println!();
    println!(
        "== 6. de-identifying it into Delta Lake: stratus etl {} {} {}",
        bulk_dir.display(),
        lake.display(),
        phi.display()
    );
    let started = std::time::Instant::now();
    let etl = stratus_etl::pipeline::EtlOptions {
        input: bulk_dir.clone(),
        output: lake.clone(),
        phi: phi.clone(),
        tasks: vec![],
        exclude: vec![],
        batch_size: 100_000,
        export_group: None,
        export_timestamp: None,
        errors_to: None,
        comment: "stratus demo".into(),
        allow_missing: true,
        output_format: "deltalake".into(),
    };
    let mut sink = stratus_lake::DeltaSink::new(&lake.to_string_lossy(), true)?;
    let report = stratus_etl::pipeline::run(&etl, &mut sink, &Default::default())?;
    let rows: u64 = report.tasks.iter().map(|t| t.success).sum();
    println!(
        "   {} resources into {} tables, {:.1} s; the salt and cached mappings are in {}",
        crate::output::thousands(rows),
        report.tasks.len(),
        started.elapsed().as_secs_f64(),
        phi.display()
    );

    let export = args.out.join("library-export");
    let page = args.out.join("core-report.html");
    println!();
    println!(
        "== 7. the core and discovery studies: stratus library build --target core --target discovery --lake {}",
        lake.display()
    );
    let started = std::time::Instant::now();
    let built = stratus_library::build(
        &stratus_library::BuildOptions {
            lake: lake.to_string_lossy().into_owned(),
            targets: vec!["core".into(), "discovery".into()],
            study_dirs: vec![],
            min_count: None,
            memory_limit: None,
            merge_joins: None,
            stall_timeout: None,
        },
        |_, _, _| {},
    )?;
    for b in &built {
        println!("   {}: {} tables", b.study, b.tables.len());
    }
    let exported = stratus_library::export(&lake.to_string_lossy(), "core", &[], &export)?;
    stratus_library::report(&lake.to_string_lossy(), "core", &[], &page)?;
    println!(
        "   built, exported ({} count tables) and reported in {:.1} s",
        exported.files.len(),
        started.elapsed().as_secs_f64()
    );

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
        "  {}/   the Bulk Data export, with its log.ndjson",
        bulk_dir.display()
    );
    println!(
        "  {}/   de-identified Delta tables, and the core__ and discovery__ study tables",
        lake.display()
    );
    println!(
        "  {}   what may leave the site: the count tables, zipped",
        exported.zip.display()
    );
    println!(
        "  {}   charts of the counts: open it in a browser",
        page.display()
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
