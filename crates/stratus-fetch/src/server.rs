//! What the server says about itself in its CapabilityStatement. It decides the vendor
//! rules (Epic: crawl by default, fewer Observation categories, no EpisodeOfCare or
//! Specimen search), which types can be exported, and which since parameters exist.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use stratus_http::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Epic,
    Oracle,
    Other,
}

/// The server, as far as its CapabilityStatement tells.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub vendor: Vendor,
    /// `None` when the statement could not be read.
    pub statement: Option<Value>,
    /// Search parameters per type; empty when the statement lists no resources.
    params: BTreeMap<String, BTreeSet<String>>,
}

impl ServerInfo {
    /// Reads `{base}/metadata`. Failure is not fatal (smart-fetch ignores it too): the
    /// export then assumes nothing about the server.
    pub async fn fetch(client: &Client) -> ServerInfo {
        let url = format!("{}/metadata", client.base());
        match client.get_json(&url).await {
            Ok(v) => ServerInfo::from_statement(v),
            Err(e) => {
                tracing::warn!("cannot read the CapabilityStatement: {e}");
                ServerInfo {
                    vendor: Vendor::Other,
                    statement: None,
                    params: BTreeMap::new(),
                }
            }
        }
    }

    pub fn from_statement(v: Value) -> ServerInfo {
        let vendor = if v.pointer("/software/name").and_then(Value::as_str) == Some("Epic") {
            Vendor::Epic
        } else if matches!(
            v.get("publisher").and_then(Value::as_str),
            Some("Cerner" | "Oracle Health")
        ) {
            Vendor::Oracle
        } else {
            Vendor::Other
        };
        let mut params = BTreeMap::new();
        for rest in v
            .get("rest")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if rest.get("mode").and_then(Value::as_str) != Some("server") {
                continue;
            }
            for r in rest
                .get("resource")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(t) = r.get("type").and_then(Value::as_str) else {
                    continue;
                };
                let names: BTreeSet<String> = r
                    .get("searchParam")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                params.insert(t.to_owned(), names);
            }
        }
        ServerInfo {
            vendor,
            statement: Some(v),
            params,
        }
    }

    pub fn is_epic(&self) -> bool {
        self.vendor == Vendor::Epic
    }

    /// True unless the statement lists resources and this type is not among them.
    pub fn supports_type(&self, t: &str) -> bool {
        self.params.is_empty() || self.params.contains_key(t)
    }

    /// True only if the statement lists this search parameter for this type.
    pub fn supports_param(&self, t: &str, param: &str) -> bool {
        self.params.get(t).is_some_and(|p| p.contains(param))
    }

    /// A field of the statement, for the log's kickoff event.
    pub fn field(&self, pointer: &str) -> Option<String> {
        self.statement
            .as_ref()?
            .pointer(pointer)?
            .as_str()
            .map(str::to_owned)
    }
}
