//! The client: every request gets the custom headers and the authorization, and is retried
//! on transport errors and retryable statuses, waiting what `Retry-After` says (clamped) or
//! an exponential backoff.

use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::auth::{Auth, Cached, SmartClient, v1_scope};
use crate::polite::Budget;
use crate::retry;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("authorization failed: {0}")]
    Auth(String),
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("'{0}' is not a usable URL")]
    Url(String),
    #[error("{url}: the answer is not JSON: {message}")]
    Json { url: String, message: String },
    #[error("cannot start the HTTP client: {0}")]
    Setup(String),
}

/// Retry and header settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Extra headers on every request to the FHIR server (`--header`).
    pub headers: Vec<(String, String)>,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff: Duration,
    /// Longest wait between attempts, whatever `Retry-After` says.
    pub max_delay: Duration,
    /// Timeout to connect; bodies may stream for as long as they need.
    pub connect_timeout: Duration,
    /// Most requests in flight at once through [`Client::fetch`] (0: no limit).
    pub max_in_flight: usize,
    /// Most requests per second, all tasks together (`None`: no cap).
    pub max_rate: Option<f64>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            headers: Vec::new(),
            max_retries: 6,
            backoff: Duration::from_secs(1),
            max_delay: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(30),
            max_in_flight: 0,
            max_rate: None,
        }
    }
}

/// The HTTP client for one FHIR server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    config: HttpConfig,
    budget: Budget,
}

/// A whole answer, body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Reads a response body as text, for error messages (first 500 characters, with an
/// OperationOutcome reduced to its diagnostics).
pub async fn error_text(resp: Response) -> String {
    let body = resp.text().await.unwrap_or_default();
    outcome_message(&body).unwrap_or_else(|| body.chars().take(500).collect())
}

/// The `next` link of a Bundle or a paged export manifest, as written (see
/// [`Client::resolve`] for a relative one).
pub fn next_link(page: &Value) -> Option<&str> {
    page.get("link")?
        .as_array()?
        .iter()
        .find(|x| x.get("relation").and_then(Value::as_str) == Some("next"))?
        .get("url")?
        .as_str()
}

/// The diagnostics of an OperationOutcome or the description of an OAuth error.
pub fn outcome_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    if let Some(issues) = v.get("issue").and_then(Value::as_array) {
        let texts: Vec<String> = issues
            .iter()
            .filter_map(|i| {
                i.get("diagnostics")
                    .and_then(Value::as_str)
                    .or_else(|| i.pointer("/details/text").and_then(Value::as_str))
                    .or_else(|| i.get("code").and_then(Value::as_str))
                    .map(str::to_owned)
            })
            .collect();
        return (!texts.is_empty()).then(|| texts.join("; "));
    }
    let error = v.get("error").and_then(Value::as_str)?;
    Some(match v.get("error_description").and_then(Value::as_str) {
        Some(d) => format!("{error}: {d}"),
        None => error.to_owned(),
    })
}

impl Client {
    /// A client for the FHIR server at `base` (no trailing slash needed).
    pub fn new(base: &str, auth: Auth, config: HttpConfig) -> Result<Client, HttpError> {
        url::Url::parse(base).map_err(|_| HttpError::Url(base.to_owned()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .no_gzip()
            .user_agent(concat!("stratus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Setup(e.to_string()))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
            budget: Budget::new(config.max_in_flight, config.max_rate),
            config,
        })
    }

    /// The FHIR base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Resolves a URL the server gave (absolute, or relative to the base).
    pub fn resolve(&self, url: &str) -> String {
        if url.starts_with("http://") || url.starts_with("https://") {
            url.to_owned()
        } else {
            format!("{}/{}", self.base, url.trim_start_matches('/'))
        }
    }

    /// Sends a request built by `make` (called again for each attempt), with headers and
    /// authorization, retrying transport errors and retryable statuses. Returns the last
    /// response whatever its status; the caller decides what a 4xx means.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        make: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        self.send_opts(method, url, true, make).await
    }

    /// Like [`Client::send`]; `authorize: false` leaves the token out (Bulk Data files with
    /// `requiresAccessToken: false` are capability URLs that must not see it).
    pub async fn send_opts(
        &self,
        method: Method,
        url: &str,
        authorize: bool,
        make: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, HttpError> {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            self.budget.pace().await;
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in &self.config.headers {
                req = req.header(k, v);
            }
            if authorize && let Some(a) = self.authorization().await? {
                req = req.header(reqwest::header::AUTHORIZATION, a);
            }
            let result = make(req).send().await;
            let delay = match result {
                Err(e) => {
                    if attempt >= self.config.max_retries {
                        return Err(HttpError::Transport {
                            url: url.to_owned(),
                            message: error_chain(&e),
                        });
                    }
                    tracing::warn!("{url}: {}; retrying", error_chain(&e));
                    retry::backoff(self.config.backoff, attempt, self.config.max_delay)
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED
                        && !refreshed
                        && let Auth::Smart(s) = &self.auth
                    {
                        // The token may have died before its time; one fresh try.
                        *s.cached.lock().await = None;
                        refreshed = true;
                        continue;
                    }
                    if !retry::is_retryable(status.as_u16()) || attempt >= self.config.max_retries {
                        return Ok(resp);
                    }
                    let delay = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            retry::parse_retry_after(v, SystemTime::now(), self.config.max_delay)
                        })
                        .inspect(|d| {
                            if matches!(status.as_u16(), 429 | 503) {
                                self.budget.pause(*d);
                            }
                        })
                        .unwrap_or_else(|| {
                            retry::backoff(self.config.backoff, attempt, self.config.max_delay)
                        });
                    tracing::info!(
                        "{url}: HTTP {}; retrying in {:.1}s",
                        status.as_u16(),
                        delay.as_secs_f64()
                    );
                    delay
                }
            };
            attempt += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// The politeness budget shared by every request of this client.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// GET `url` and read the whole body while holding a place in the in-flight budget, so
    /// `max_in_flight` bounds what the server sees. A body cut off mid-way is fetched
    /// again. Any status is returned; the caller decides what a 4xx means.
    pub async fn fetch(&self, url: &str, accept: &str) -> Result<Answer, HttpError> {
        let mut attempt = 0;
        loop {
            let slot = self.budget.enter().await;
            let resp = self
                .send(Method::GET, url, |r| {
                    r.header(reqwest::header::ACCEPT, accept)
                })
                .await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            match resp.bytes().await {
                Ok(body) => {
                    return Ok(Answer {
                        status,
                        headers,
                        body,
                    });
                }
                Err(e) => {
                    drop(slot);
                    if attempt >= self.config.max_retries {
                        return Err(HttpError::Transport {
                            url: url.to_owned(),
                            message: error_chain(&e),
                        });
                    }
                    tracing::warn!("{url}: {}; retrying", error_chain(&e));
                    tokio::time::sleep(retry::backoff(
                        self.config.backoff,
                        attempt,
                        self.config.max_delay,
                    ))
                    .await;
                    attempt += 1;
                }
            }
        }
    }

    /// GET a JSON document; a non-2xx answer is an error carrying the server's message.
    pub async fn get_json(&self, url: &str) -> Result<Value, HttpError> {
        let resp = self
            .send(Method::GET, url, |r| {
                r.header(reqwest::header::ACCEPT, "application/fhir+json")
            })
            .await?;
        json_body(url, resp).await
    }

    /// The `Authorization` header value, fetching or refreshing a SMART token if needed.
    pub async fn authorization(&self) -> Result<Option<String>, HttpError> {
        Ok(match &self.auth {
            Auth::None => None,
            Auth::Bearer(t) => Some(format!("Bearer {t}")),
            Auth::Basic { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Smart(s) => Some(format!("Bearer {}", self.smart_token(s).await?)),
        })
    }

    async fn smart_token(&self, s: &SmartClient) -> Result<String, HttpError> {
        let mut cached = s.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let token_url = self.token_url(s).await?;
        let mut fell_back = false;
        loop {
            let scope = s.scope.lock().await.clone();
            let assertion = stratus_smart::assertion::sign(
                &s.key,
                &s.client_id,
                &token_url,
                s.assertion_lifetime,
                None,
            )
            .map_err(|e| HttpError::Auth(e.to_string()))?;
            let form = [
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ];
            let resp = self
                .http
                .post(&token_url)
                .form(&form)
                .send()
                .await
                .map_err(|e| HttpError::Transport {
                    url: token_url.clone(),
                    message: error_chain(&e),
                })?;
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status.is_success() {
                let token = v
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        HttpError::Auth(format!("{token_url} answered without an access_token"))
                    })?
                    .to_owned();
                let lifetime = v.get("expires_in").and_then(Value::as_u64).unwrap_or(300);
                // Refresh 30 s early (or halfway, for very short tokens).
                let early = (lifetime / 2).min(30);
                *cached = Some(Cached {
                    token: token.clone(),
                    refresh_at: Instant::now() + Duration::from_secs(lifetime - early),
                });
                tracing::debug!("got a token for scope {:?}", v.get("scope"));
                return Ok(token);
            }
            if v.get("error").and_then(Value::as_str) == Some("invalid_scope")
                && !fell_back
                && let Some(v1) = v1_scope(&scope)
            {
                tracing::info!("the server refused scope '{scope}'; trying '{v1}'");
                *s.scope.lock().await = v1;
                fell_back = true;
                continue;
            }
            let why = outcome_message(&body).unwrap_or_else(|| format!("HTTP {status}"));
            return Err(HttpError::Auth(format!(
                "{token_url} refused client '{}': {why}",
                s.client_id
            )));
        }
    }

    /// The token endpoint: given, or from `{base}/.well-known/smart-configuration`, or from
    /// the CapabilityStatement's oauth-uris extension.
    async fn token_url(&self, s: &SmartClient) -> Result<String, HttpError> {
        let mut slot = s.token_url.lock().await;
        if let Some(u) = slot.as_ref() {
            return Ok(u.clone());
        }
        let well_known = format!("{}/.well-known/smart-configuration", self.base);
        let found = match self.http.get(&well_known).send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v.get("token_endpoint")?.as_str().map(str::to_owned)),
            _ => None,
        };
        let found = match found {
            Some(u) => Some(u),
            None => {
                let meta = format!("{}/metadata", self.base);
                match self
                    .http
                    .get(&meta)
                    .header(reqwest::header::ACCEPT, "application/fhir+json")
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| oauth_token_uri(&v)),
                    _ => None,
                }
            }
        };
        let url = found.ok_or_else(|| {
            HttpError::Auth(format!(
                "cannot find the token endpoint: neither {well_known} nor the CapabilityStatement names one (give it with --smart-token-url)"
            ))
        })?;
        let url = self.resolve(&url);
        if !s.token_origins.is_empty()
            && !s
                .token_origins
                .iter()
                .any(|o| Some(o.as_str()) == origin(&url).as_deref())
        {
            return Err(HttpError::Auth(format!(
                "the token endpoint {url} that {} names is not on {} (give the token endpoint explicitly if it is right)",
                self.base,
                s.token_origins.join(", ")
            )));
        }
        *slot = Some(url.clone());
        Ok(url)
    }
}

/// The origin of a URL (`scheme://host[:port]`, the port only when not the scheme's
/// default), for same-server checks.
pub fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    u.host_str()?;
    Some(u.origin().ascii_serialization())
}

fn oauth_token_uri(cs: &Value) -> Option<String> {
    for rest in cs.get("rest")?.as_array()? {
        for ext in rest.pointer("/security/extension")?.as_array()? {
            if ext.get("url").and_then(Value::as_str)
                != Some("http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris")
            {
                continue;
            }
            for inner in ext.get("extension")?.as_array()? {
                if inner.get("url").and_then(Value::as_str) == Some("token") {
                    return inner.get("valueUri")?.as_str().map(str::to_owned);
                }
            }
        }
    }
    None
}

/// Reads a JSON body, or turns a non-2xx answer into an error with the server's message.
pub async fn json_body(url: &str, resp: Response) -> Result<Value, HttpError> {
    let status = resp.status();
    if !status.is_success() {
        return Err(HttpError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            message: error_text(resp).await,
        });
    }
    let text = resp.text().await.map_err(|e| HttpError::Transport {
        url: url.to_owned(),
        message: error_chain(&e),
    })?;
    serde_json::from_str(&text).map_err(|e| HttpError::Json {
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// A reqwest error with its causes, on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The CapabilityStatement fallback finds the token URL in a real server's statement.
    #[test]
    fn token_url_from_the_capability_statement() {
        let tmp = std::env::temp_dir().join(format!("stratus-http-cs-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(
            tmp.join("Patient.ndjson"),
            "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n",
        )
        .unwrap();
        let mut c = stratus_server::ServeConfig::new(&tmp);
        c.port = 0;
        let s = stratus_server::start(c).unwrap();
        let cs: Value = reqwest::blocking::get(format!("{}/metadata", s.base_url))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(oauth_token_uri(&cs), s.token_url.clone());
        assert_eq!(oauth_token_uri(&serde_json::json!({"rest": []})), None);
        drop(s);
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
