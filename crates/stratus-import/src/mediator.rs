//! The data provider's side of ping and pull: kick off an import at a consumer, watch it,
//! read the outcome, cancel it. Unlike the prototype client, every call carries the token
//! (the consumer needs it for status and cancel too), `Retry-After` is honoured, and the
//! consumer's token endpoint is discovered rather than configured by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use stratus_bulk::ExportSpec;
use stratus_http::auth::Auth;
use stratus_http::client::{error_text, outcome_message};
use stratus_http::{Client, HttpConfig};

use crate::ImportError;
use crate::params::{ExportType, kickoff_body};

/// Where a job stands.
#[derive(Debug, Clone)]
pub enum JobStatus {
    Running {
        progress: String,
        retry_after: Duration,
    },
    /// The import manifest.
    Complete(Value),
    /// The consumer's reason.
    Failed(String),
}

/// The outcome files, counted by severity (`fatal`, `error`, `warning`, `information`).
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub by_severity: BTreeMap<String, u64>,
    /// `(severity, code, diagnostics)` of every issue.
    pub issues: Vec<(String, String, String)>,
}

pub struct Mediator {
    client: Client,
}

impl Mediator {
    /// A mediator for the consumer at `consumer` (its origin, where `$import` lives).
    pub fn new(consumer: &str, auth: Auth) -> Result<Mediator, ImportError> {
        let config = HttpConfig {
            // A failed job answers 5xx for good; a few tries cover a network blip.
            max_retries: 2,
            ..HttpConfig::default()
        };
        Ok(Mediator {
            client: Client::new(consumer.trim_end_matches('/'), auth, config)?,
        })
    }

    /// `POST /$import`; returns the job's status URL.
    pub async fn kickoff(
        &self,
        export_url: &str,
        export_type: ExportType,
        spec: &ExportSpec,
        lenient: bool,
    ) -> Result<String, ImportError> {
        let url = format!("{}/$import", self.client.base());
        let body = kickoff_body(export_url, export_type, spec).to_string();
        let prefer = if lenient {
            "respond-async, handling=lenient"
        } else {
            "respond-async"
        };
        let resp = self
            .client
            .send(Method::POST, &url, |r| {
                r.header("Content-Type", "application/fhir+json")
                    .header("Accept", "application/fhir+json")
                    .header("Prefer", prefer)
                    .body(body.clone())
            })
            .await?;
        let status = resp.status();
        if status != StatusCode::ACCEPTED {
            return Err(ImportError::Protocol(format!(
                "{url} refused the import: HTTP {}: {}",
                status.as_u16(),
                error_text(resp).await
            )));
        }
        resp.headers()
            .get(reqwest::header::CONTENT_LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| self.client.resolve(v))
            .ok_or_else(|| {
                ImportError::Protocol(format!("{url} answered 202 without a Content-Location"))
            })
    }

    /// One status poll.
    pub async fn status(&self, job_url: &str) -> Result<JobStatus, ImportError> {
        let resp = self
            .client
            .send(Method::GET, job_url, |r| {
                r.header("Accept", "application/json")
            })
            .await?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match status {
            StatusCode::ACCEPTED => {
                let retry_after = header("retry-after")
                    .and_then(|v| {
                        stratus_http::retry::parse_retry_after(
                            &v,
                            std::time::SystemTime::now(),
                            Duration::from_secs(60),
                        )
                    })
                    .unwrap_or(Duration::from_secs(2));
                Ok(JobStatus::Running {
                    progress: header("x-progress").unwrap_or_else(|| "in progress".into()),
                    retry_after,
                })
            }
            StatusCode::OK => {
                let url = job_url.to_owned();
                Ok(JobStatus::Complete(
                    stratus_http::client::json_body(&url, resp).await?,
                ))
            }
            s if s.is_server_error() => Ok(JobStatus::Failed(error_text(resp).await)),
            s => Err(ImportError::Protocol(format!(
                "{job_url}: HTTP {}: {}",
                s.as_u16(),
                error_text(resp).await
            ))),
        }
    }

    /// Polls until the job ends, calling `progress` with each `X-Progress`.
    pub async fn wait(
        &self,
        job_url: &str,
        mut progress: impl FnMut(&str),
    ) -> Result<Value, ImportError> {
        loop {
            match self.status(job_url).await? {
                JobStatus::Running {
                    progress: p,
                    retry_after,
                } => {
                    progress(&p);
                    tokio::time::sleep(retry_after).await;
                }
                JobStatus::Complete(m) => return Ok(m),
                // The consumer's text already says that the import failed, and why.
                JobStatus::Failed(why) => return Err(ImportError::Protocol(why)),
            }
        }
    }

    /// Downloads every outcome file of a manifest and counts its issues.
    pub async fn outcomes(&self, manifest: &Value) -> Result<Outcomes, ImportError> {
        let mut out = Outcomes::default();
        let authorize = manifest
            .get("requiresAccessToken")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        for item in manifest
            .get("outcome")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(url) = item.get("url").and_then(Value::as_str) else {
                continue;
            };
            let url = self.client.resolve(url);
            let resp = self
                .client
                .send_opts(Method::GET, &url, authorize, |r| {
                    r.header("Accept", "application/fhir+ndjson")
                })
                .await?;
            if !resp.status().is_success() {
                return Err(ImportError::Protocol(format!(
                    "{url}: HTTP {}: {}",
                    resp.status().as_u16(),
                    error_text(resp).await
                )));
            }
            let text = resp.text().await.map_err(|e| {
                ImportError::Protocol(format!("{url}: {}", stratus_http::client::error_chain(&e)))
            })?;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    ImportError::Protocol(format!("{url}: a line is not JSON: {e}"))
                })?;
                for issue in v
                    .get("issue")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let field = |k: &str| {
                        issue
                            .get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let severity = field("severity");
                    *out.by_severity.entry(severity.clone()).or_default() += 1;
                    out.issues
                        .push((severity, field("code"), field("diagnostics")));
                }
            }
        }
        Ok(out)
    }

    /// `DELETE` the job; returns the consumer's message.
    pub async fn cancel(&self, job_url: &str) -> Result<String, ImportError> {
        let resp = self.client.send(Method::DELETE, job_url, |r| r).await?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = outcome_message(&text).unwrap_or(text);
        if status.is_success() {
            Ok(message)
        } else {
            Err(ImportError::Protocol(format!(
                "{job_url}: HTTP {}: {message}",
                status.as_u16()
            )))
        }
    }
}
