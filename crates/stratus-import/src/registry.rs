//! The data providers registered with this consumer: the SMART client each one pings with,
//! and what the consumer needs to pull from it in return (its own client id at that
//! provider, the FHIR bases it may pull from, the provider's token endpoint). Kept in
//! `clients.json` in the state folder, so that registrations survive a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde_json::{Value, json};
use stratus_smart::scope::Scopes;
use stratus_smart::server::{AuthConfig, AuthServer};

use crate::ImportError;
use crate::params::is_under;

/// What the consumer knows of one registered provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provider {
    /// The client id the provider gave this consumer: the consumer signs its token
    /// requests to the provider with it.
    pub consumer_client_id: String,
    /// The provider's FHIR base URLs. An `exportUrl` must lie under one of them, so that a
    /// registered client cannot make the consumer fetch (and send its provider token to)
    /// any other address.
    pub bases: Vec<String>,
    /// The provider's token endpoint when it is not discoverable from the base, or `none`
    /// for a provider (a static manifest on a file server) that wants no token at all.
    pub token_endpoint: Option<String>,
    /// Where the provider's keys were fetched from, if they were given by URL.
    pub jwks_uri: Option<String>,
    /// Unix seconds.
    pub registered_at: u64,
}

impl Provider {
    /// The registered base that `url` lies under, longest first.
    pub fn base_for(&self, url: &str) -> Option<&str> {
        self.bases
            .iter()
            .filter(|b| is_under(url, b))
            .max_by_key(|b| b.len())
            .map(|b| b.trim_end_matches('/'))
    }
}

/// The scope every registered provider may be granted: the consumer has one kind of
/// client, and what it may do is decided by job ownership and `exportUrl` checks.
const SCOPE: &str = "system/*.*";

pub struct Registry {
    pub auth: AuthServer,
    providers: RwLock<HashMap<String, Provider>>,
    path: PathBuf,
}

impl Registry {
    /// Opens (or starts) the registry in `state_dir`.
    pub fn open(state_dir: &Path, config: AuthConfig) -> Result<Registry, ImportError> {
        let path = state_dir.join("clients.json");
        let auth = AuthServer::new(config);
        let mut providers = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let saved: Value = serde_json::from_str(&text).map_err(|e| {
                    ImportError::State(format!("{}: not a clients file: {e}", path.display()))
                })?;
                let clients = saved.get("clients").cloned().unwrap_or(json!({}));
                auth.restore_clients(&clients)
                    .map_err(|e| ImportError::State(format!("{}: {e}", path.display())))?;
                if let Some(map) = saved.get("providers").and_then(Value::as_object) {
                    for (id, p) in map {
                        let p: Provider = serde_json::from_value(p.clone()).map_err(|e| {
                            ImportError::State(format!("{}: client {id}: {e}", path.display()))
                        })?;
                        providers.insert(id.clone(), p);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImportError::io(&path, e)),
        }
        Ok(Registry {
            auth,
            providers: RwLock::new(providers),
            path,
        })
    }

    /// Registers a provider client and returns its new client id.
    pub fn register(&self, jwks: &Value, provider: Provider) -> Result<String, ImportError> {
        let scopes = Scopes::parse(SCOPE).map_err(|e| ImportError::State(e.to_string()))?;
        let id = self
            .auth
            .register_new(jwks, scopes)
            .map_err(|e| ImportError::Registration(e.to_string()))?;
        // Saved under the lock, so two registrations at once cannot lose one another.
        let mut providers = self.providers.write().unwrap_or_else(|p| p.into_inner());
        providers.insert(id.clone(), provider);
        self.save(&providers)?;
        Ok(id)
    }

    pub fn provider(&self, client_id: &str) -> Option<Provider> {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(client_id)
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.providers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn save(&self, providers: &HashMap<String, Provider>) -> Result<(), ImportError> {
        let value = json!({
            "clients": self.auth.clients_json(),
            "providers": providers,
        });
        crate::write_atomic(&self.path, value.to_string().as_bytes())
    }
}
