//! `stratus proxy`: SMART Backend Services in front of an open FHIR server.
//!
//! Clients register a public key, get short-lived tokens with signed assertions and send
//! them with every request; the proxy checks the token and its scopes, then passes the
//! request to the upstream, which needs no auth of its own. Bodies stream both ways, and
//! every URL the upstream hands out (export status, manifest files, Bundle links) is moved
//! under the proxy, so a Bulk Data export runs through it from kick-off to the last file.

/// Which scopes a request needs, from its method, path, query and (kick-off) body.
pub mod access;
/// Shared state, routes, the access log.
pub mod app;
/// Discovery, registration (kept in `clients.json`), the token endpoint.
pub mod auth;
/// What the proxy is told: upstream, network, registry, limits.
pub mod config;
/// Start-up errors, and the OperationOutcome and OAuth errors answered to clients.
pub mod error;
/// Checking, forwarding and streaming requests to the upstream and answers back.
pub mod forward;
/// Moving upstream URLs in headers, manifests, Bundles and the CapabilityStatement.
pub mod rewrite;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthConfig, AuthServer};

pub use config::ProxyConfig;
pub use error::ProxyError;

/// A running proxy. Dropping it stops it.
pub struct Proxy {
    pub addr: SocketAddr,
    /// The FHIR base clients use, `{origin}/fhir`.
    pub base_url: String,
    pub token_url: String,
    pub register_url: String,
    /// The upstream FHIR base requests go to.
    pub upstream: String,
    /// Clients registered again from `clients.json` at start.
    pub restored_clients: usize,
    service: stratus_service::Service,
}

impl Proxy {
    /// Blocks until the proxy stops (Ctrl-C / SIGTERM, or an error).
    pub fn wait(self) -> Result<(), ProxyError> {
        self.service.wait().map_err(ProxyError::Runtime)
    }

    /// Stops the proxy and waits for it.
    pub fn stop(self) -> Result<(), ProxyError> {
        self.service.stop().map_err(ProxyError::Runtime)
    }
}

fn http_client(config: &ProxyConfig) -> Result<reqwest::Client, ProxyError> {
    reqwest::Client::builder()
        // Bodies pass as the upstream sent them: a gzip download stays gzip for the client.
        .no_gzip()
        // A redirect is the client's to follow (through the proxy, once rewritten).
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.upstream_timeout)
        .read_timeout(config.upstream_timeout)
        .user_agent(concat!("stratus-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProxyError::Client(e.to_string()))
}

/// Checks the configuration, restores saved clients, binds the port and starts serving
/// on a background thread. Returns once the proxy accepts connections.
pub fn start(config: ProxyConfig) -> Result<Proxy, ProxyError> {
    let upstream = config::base_url("the upstream", &config.upstream)?;
    let mut from = vec![upstream.clone()];
    for alias in &config.upstream_aliases {
        from.push(config::base_url("an upstream alias", alias)?);
    }
    let default_scope = Scopes::parse(&config.default_scope)
        .map_err(|e| ProxyError::Config(format!("the default scope: {e}")))?;
    if default_scope.is_empty() {
        return Err(ProxyError::Config("the default scope is empty".into()));
    }
    let public = config
        .public_url
        .as_deref()
        .map(|u| config::base_url("the public URL", u))
        .transpose()?;
    if config.max_body_bytes == 0 {
        return Err(ProxyError::Config("max_body_bytes must be above 0".into()));
    }
    let http = http_client(&config)?;

    let clients_file = match &config.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| ProxyError::State {
                path: dir.clone(),
                source: e,
            })?;
            Some(auth::clients_file(dir))
        }
        None => None,
    };

    let listener =
        stratus_service::bind(&config.host, config.port).map_err(|e| ProxyError::Bind {
            addr: format!("{}:{}", config.host, config.port),
            source: e,
        })?;
    let addr = listener.local_addr().map_err(ProxyError::Runtime)?;
    let origin = public.unwrap_or_else(|| format!("http://{addr}"));
    let base = format!("{origin}/fhir");
    let token_url = format!("{origin}/auth/token");
    let register_url = format!("{origin}/auth/register");

    let mut ac = AuthConfig::new(token_url.clone());
    ac.expires_in = config.token_lifetime;
    let auth = AuthServer::new(ac);
    let restored_clients = match &clients_file {
        Some(path) => auth::load_clients(&auth, path)?,
        None => 0,
    };

    let state = Arc::new(app::AppState {
        upstream: upstream.clone(),
        base: base.clone(),
        token_url: token_url.clone(),
        register_url: register_url.clone(),
        auth,
        http,
        rewriter: rewrite::Rewriter::new(from, base.clone()),
        default_scope,
        handed_out: app::HandedOut::default(),
        clients_file,
        save_lock: Mutex::new(()),
        config,
    });

    let service =
        stratus_service::Service::start("stratus-proxy", listener, move || app::router(state))
            .map_err(ProxyError::Runtime)?;
    Ok(Proxy {
        addr,
        base_url: base,
        token_url,
        register_url,
        upstream,
        restored_clients,
        service,
    })
}
