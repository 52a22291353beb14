//! `stratus proxy`: turns the flags into a `ProxyConfig`, starts the proxy and waits.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use stratus_proxy::ProxyConfig;

use crate::exit::Outcome;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// The open FHIR server's base URL, e.g. http://127.0.0.1:9444/fhir.
    #[arg(long, value_name = "URL")]
    pub upstream: String,
    /// Another spelling of the upstream base that appears in its answers (its own public
    /// URL, localhost for 127.0.0.1, ...); rewritten like the upstream (repeatable).
    #[arg(long = "upstream-alias", value_name = "URL")]
    pub upstream_aliases: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 9446)]
    pub port: u16,
    /// The origin clients reach the proxy by, if not http://HOST:PORT (behind TLS).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Keep registrations in DIR/clients.json across restarts [default: in memory only].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Let requests without a token through (a token that is sent must still be valid).
    #[arg(long)]
    pub optional_auth: bool,
    /// Refuse new registrations (those in --state keep working).
    #[arg(long)]
    pub no_registration: bool,
    /// The most a registered client may be granted (a registration may ask for less), and
    /// what it gets when it asks for nothing.
    #[arg(long, default_value = "system/*.rs", value_name = "SCOPES")]
    pub default_scope: String,
    /// Lifetime of the access tokens the proxy issues.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub token_lifetime: Duration,
    /// Time to connect to the upstream and get its answer's head.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub upstream_timeout: Duration,
}

pub fn run(a: &ProxyArgs, quiet: bool) -> anyhow::Result<Outcome> {
    let mut c = ProxyConfig::new(&a.upstream);
    c.upstream_aliases = a.upstream_aliases.clone();
    c.host = a.host.clone();
    c.port = a.port;
    c.public_url = a.public_url.clone();
    c.state_dir = a.state.clone();
    c.optional_auth = a.optional_auth;
    c.registration = !a.no_registration;
    c.default_scope = a.default_scope.clone();
    c.token_lifetime = a.token_lifetime;
    c.upstream_timeout = a.upstream_timeout;
    let proxy = stratus_proxy::start(c)
        .with_context(|| format!("cannot start the proxy in front of {}", a.upstream))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "stratus proxy: {} -> {}",
        proxy.base_url, proxy.upstream
    )?;
    writeln!(out, "token URL:     {}", proxy.token_url)?;
    writeln!(
        out,
        "registration:  POST {}{}",
        proxy.register_url,
        if proxy.restored_clients > 0 {
            format!(" ({} clients restored)", proxy.restored_clients)
        } else {
            String::new()
        }
    )?;
    if a.optional_auth {
        writeln!(
            out,
            "auth:          optional (requests without a token pass)"
        )?;
    }
    if !quiet {
        writeln!(out, "Ctrl-C stops the proxy.")?;
    }
    out.flush()?;
    drop(out);
    proxy.wait().context("the proxy stopped")?;
    Ok(Outcome::Success)
}
