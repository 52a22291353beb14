//! `stratus serve`: turns the flags into a `ServeConfig`, starts the server and waits.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, bail};
use stratus_server::{ClientSpec, Faults, ServeConfig};

use crate::cli::{FaultArgs, ServeArgs};
use crate::exit::Outcome;
use crate::output::thousands;

pub fn run(args: &ServeArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let config = config(args)?;
    let open = config.open;
    let clients = config.clients.len();
    let registration = config.registration;
    let faults_on = config.faults.any();
    let started = Instant::now();
    if !quiet {
        eprintln!("loading {} ...", args.data.display());
    }
    let server = stratus_server::start(config)
        .with_context(|| format!("cannot serve {}", args.data.display()))?;
    let s = &server.summary;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "stratus serve: {} resources from {} files ({}) ready in {:.1}s",
        thousands(s.resources),
        s.files,
        crate::output::bytes(s.bytes),
        started.elapsed().as_secs_f64()
    )?;
    if s.bad_lines > 0 || s.duplicates > 0 {
        writeln!(
            out,
            "  skipped {} bad lines (reported above) and {} resources whose Type/id was already \
             loaded (-vv lists them); the first of each is served",
            s.bad_lines, s.duplicates
        )?;
    }
    writeln!(out, "FHIR base URL: {}", server.base_url)?;
    match &server.token_url {
        Some(t) if !open => {
            writeln!(out, "token URL:     {t}")?;
            let reg = if registration {
                format!(
                    "; more can register at {}",
                    t.replace("/auth/token", "/auth/register")
                )
            } else {
                String::new()
            };
            writeln!(out, "clients:       {clients} registered{reg}")?;
        }
        _ => writeln!(out, "authorization: none (--open)")?,
    }
    if faults_on {
        writeln!(out, "faults:        on (see --help, Fault injection)")?;
    }
    writeln!(out, "Ctrl-C stops the server.")?;
    out.flush()?;
    drop(out);
    server.wait().context("the server stopped")?;
    Ok(Outcome::Success)
}

fn config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut c = ServeConfig::new(&args.data);
    c.host = args.host.clone();
    c.port = args.port;
    c.public_url = args.public_url.clone();
    c.work_dir = args.work_dir.clone();
    c.open = args.open;
    if args.open && !args.clients.is_empty() {
        bail!("--open and --client do not mix: an open server takes no tokens");
    }
    for (id, jwks) in &args.clients {
        c.clients.push(ClientSpec {
            id: id.clone(),
            jwks: jwks.clone(),
            scopes: None,
        });
    }
    for (id, scopes) in &args.client_scopes {
        let Some(client) = c.clients.iter_mut().find(|cl| &cl.id == id) else {
            bail!("--client-scopes names client '{id}', which no --client registers");
        };
        client.scopes = Some(scopes.clone());
    }
    c.registration = !args.no_registration;
    c.groups = args.groups.clone();
    c.deletions = args.deletions.clone();
    if args.resources_per_file == 0 {
        bail!("--resources-per-file must be at least 1");
    }
    c.resources_per_file = args.resources_per_file;
    c.file_ttl = args.file_ttl;
    c.default_count = args.page_size.max(1);
    c.max_count = args.max_page_size.max(c.default_count);
    c.max_body_bytes = args.max_body;
    c.max_running_exports = args.max_exports.max(1);
    if args.token_lifetime.as_secs() == 0 || args.token_lifetime.as_secs() > 3600 {
        bail!("--token-lifetime must be between 1s and 1h (SMART recommends at most 5m)");
    }
    c.token_lifetime = args.token_lifetime;
    c.faults = faults(&args.faults)?;
    Ok(c)
}

fn faults(a: &FaultArgs) -> anyhow::Result<Faults> {
    let mut f = match &a.faults {
        Some(path) => Faults::from_file(path)?,
        None => Faults::default(),
    };
    if let Some(v) = a.fault_seed {
        f.seed = v;
    }
    if let Some(v) = a.fault_latency {
        f.latency_ms = Some(v);
    }
    if let Some(v) = a.fault_429 {
        f.rate_429 = v;
    }
    if let Some(v) = a.fault_500 {
        f.rate_500 = v;
    }
    if let Some(v) = a.fault_503 {
        f.rate_503 = v;
    }
    if let Some(v) = a.fault_retry_after {
        f.retry_after = Some(v);
    }
    if let Some(v) = a.fault_transient_polls {
        f.transient_polls = v;
    }
    if let Some(v) = a.fault_truncate {
        f.truncate_rate = v;
    }
    if let Some(v) = a.fault_slow {
        f.slow_bytes_per_sec = Some(v as u64);
    }
    if let Some(v) = a.fault_expire {
        f.expire_rate = v;
    }
    if let Some(v) = a.fault_token_valid {
        f.token_valid_secs = Some(v);
    }
    if let Some(v) = a.rate_limit {
        f.rate_limit = Some(v);
    }
    f.validate()?;
    Ok(f)
}
