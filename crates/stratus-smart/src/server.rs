//! The authorization server side of SMART Backend Services: registered clients and their
//! public keys, the token endpoint's checks, and the access tokens it hands out.
//!
//! Every check of the assertion is done, in the order a client author can act on: form
//! fields, header, issuer and client, key, signature, audience, expiry, replay, scopes.
//! `jku` headers are refused: clients register a JWKS by value here, and fetching keys
//! from URLs named in a request is not something a local test server should do.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use base64::Engine;
use jwt_simple::JWTError;
use jwt_simple::prelude::{
    Duration as JwtDuration, ECDSAP384PublicKeyLike, ES384PublicKey, NoCustomClaims,
    RS384PublicKey, RSAPublicKeyLike, Token, VerificationOptions,
};
use serde_json::{Value, json};

use crate::keys::{self, Alg, random_hex};
use crate::scope::Scopes;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An OAuth error answer (RFC 6749 §5.2), with the HTTP status to send it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn to_json(&self) -> Value {
        json!({"error": self.error, "error_description": self.description})
    }

    fn client(description: impl Into<String>) -> Self {
        OAuthError {
            status: 401,
            error: "invalid_client",
            description: description.into(),
        }
    }

    fn request(description: impl Into<String>) -> Self {
        OAuthError {
            status: 400,
            error: "invalid_request",
            description: description.into(),
        }
    }

    fn scope(description: impl Into<String>) -> Self {
        OAuthError {
            status: 400,
            error: "invalid_scope",
            description: description.into(),
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl std::error::Error for OAuthError {}

/// How the server issues tokens and judges assertions.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The exact `aud` an assertion must carry.
    pub token_url: String,
    /// `expires_in` of access tokens.
    pub expires_in: Duration,
    /// Fault injection: tokens really die after this, whatever `expires_in` said.
    pub valid_for: Option<Duration>,
    /// How far ahead an assertion's `exp` may be (SMART: 5 minutes).
    pub max_assertion_lifetime: Duration,
    /// Clock skew forgiven in either direction.
    pub clock_tolerance: Duration,
}

impl AuthConfig {
    pub fn new(token_url: impl Into<String>) -> Self {
        AuthConfig {
            token_url: token_url.into(),
            expires_in: Duration::from_secs(300),
            valid_for: None,
            max_assertion_lifetime: Duration::from_secs(300),
            clock_tolerance: Duration::from_secs(60),
        }
    }
}

/// What a valid bearer token carries.
#[derive(Clone, Debug)]
pub struct Grant {
    pub client_id: String,
    pub scopes: Scopes,
    /// Unix seconds.
    pub expires_at: u64,
}

impl Grant {
    /// `Ok` if the scopes let the client read `resource_type`, else the 403 refusal.
    pub fn require_read(&self, resource_type: &str) -> Result<(), BearerError> {
        if self.scopes.can_read(resource_type) {
            return Ok(());
        }
        Err(BearerError::InsufficientScope {
            needed: format!("system/{resource_type}.r (granted: {})", self.scopes),
        })
    }

    /// `Ok` if the scopes let the client search `resource_type`, else the 403 refusal.
    pub fn require_search(&self, resource_type: &str) -> Result<(), BearerError> {
        if self.scopes.can_search(resource_type) {
            return Ok(());
        }
        Err(BearerError::InsufficientScope {
            needed: format!("system/{resource_type}.s (granted: {})", self.scopes),
        })
    }
}

/// The token endpoint's success answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
}

/// Why a request's bearer token was refused.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("no access token: send Authorization: Bearer <token> (get one at the token endpoint)")]
    Missing,
    #[error("the Authorization header is not 'Bearer <token>'")]
    Malformed,
    #[error("unknown access token")]
    Unknown,
    #[error("the access token has expired; get a new one")]
    Expired,
    #[error("the access token's scopes do not cover {needed}")]
    InsufficientScope { needed: String },
}

impl BearerError {
    pub fn status(&self) -> u16 {
        match self {
            BearerError::InsufficientScope { .. } => 403,
            _ => 401,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("the JWKS is not usable: {0}")]
    BadJwks(String),
    #[error("the JWKS has no RS384 or ES384 public key with a kid")]
    NoUsableKey,
    #[error("client '{0}' is already registered")]
    Duplicate(String),
    #[error("'{0}' is not a usable client id (1 to 256 visible characters)")]
    BadClientId(String),
}

struct Client {
    keys: Vec<Value>,
    allowed: Scopes,
}

/// Registered clients, the replay cache and live tokens. Share it in an `Arc`.
pub struct AuthServer {
    config: AuthConfig,
    clients: RwLock<HashMap<String, Client>>,
    /// `(iss, jti)` → unix second after which the entry may be forgotten.
    seen_jti: Mutex<HashMap<(String, String), u64>>,
    tokens: Mutex<HashMap<String, Grant>>,
}

/// Unix seconds now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn alg_of_jwk(k: &Value) -> Option<Alg> {
    match (
        k.get("kty").and_then(Value::as_str),
        k.get("alg").and_then(Value::as_str),
    ) {
        (Some("RSA"), None | Some("RS384")) => Some(Alg::Rs384),
        (Some("EC"), None | Some("ES384"))
            if k.get("crv").and_then(Value::as_str) == Some("P-384") =>
        {
            Some(Alg::Es384)
        }
        _ => None,
    }
}

impl AuthServer {
    pub fn new(config: AuthConfig) -> Self {
        AuthServer {
            config,
            clients: RwLock::new(HashMap::new()),
            seen_jti: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    fn usable_keys(jwks: &Value) -> Result<Vec<Value>, RegisterError> {
        let public = match keys::public_jwks(jwks) {
            Ok(p) => p,
            Err(keys::KeyError::NoKeys) => return Err(RegisterError::NoUsableKey),
            Err(e) => return Err(RegisterError::BadJwks(e.to_string())),
        };
        let keys: Vec<Value> = public["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k.get("kid").and_then(Value::as_str).is_some() && alg_of_jwk(k).is_some())
            .collect();
        // Each must import as a public key, so a bad one fails registration, not a token.
        for k in &keys {
            let text = serde_json::to_string(&strip_for_import(k))
                .map_err(|e| RegisterError::BadJwks(e.to_string()))?;
            let ok = match alg_of_jwk(k) {
                Some(Alg::Rs384) => RS384PublicKey::from_jwk(&text).is_ok(),
                Some(Alg::Es384) => ES384PublicKey::from_jwk(&text).is_ok(),
                None => false,
            };
            if !ok {
                return Err(RegisterError::BadJwks(format!(
                    "key {} is not a valid public key",
                    k.get("kid").and_then(Value::as_str).unwrap_or("?")
                )));
            }
        }
        if keys.is_empty() {
            return Err(RegisterError::NoUsableKey);
        }
        Ok(keys)
    }

    /// Registers a client under `client_id` with its public JWKS (private members are
    /// stripped) and the scopes it may be granted. Replaces an earlier registration.
    pub fn register(
        &self,
        client_id: &str,
        jwks: &Value,
        allowed: Scopes,
    ) -> Result<(), RegisterError> {
        if client_id.is_empty()
            || client_id.len() > 256
            || client_id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(RegisterError::BadClientId(client_id.to_owned()));
        }
        let keys = Self::usable_keys(jwks)?;
        self.clients
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client_id.to_owned(), Client { keys, allowed });
        Ok(())
    }

    /// Registers a client under a new random id (32 hex characters) and returns the id.
    pub fn register_new(&self, jwks: &Value, allowed: Scopes) -> Result<String, RegisterError> {
        let keys = Self::usable_keys(jwks)?;
        let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
        // 128 random bits do not collide in practice; never replacing is still the rule.
        let id = std::iter::repeat_with(|| random_hex(16))
            .find(|id| !clients.contains_key(id))
            .unwrap_or_default();
        clients.insert(id.clone(), Client { keys, allowed });
        Ok(id)
    }

    /// Every registered client as `{id: {"jwks": {...}, "scope": "..."}}` (public keys
    /// only), for a server that keeps its registrations across restarts.
    pub fn clients_json(&self) -> Value {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        let mut out = serde_json::Map::new();
        for (id, c) in clients.iter() {
            out.insert(
                id.clone(),
                json!({"jwks": {"keys": c.keys}, "scope": c.allowed.to_string()}),
            );
        }
        Value::Object(out)
    }

    /// Registers every client of a [`clients_json`](Self::clients_json) value again.
    pub fn restore_clients(&self, saved: &Value) -> Result<usize, RegisterError> {
        let Some(map) = saved.as_object() else {
            return Err(RegisterError::BadJwks(
                "the saved clients are not an object".into(),
            ));
        };
        for (id, c) in map {
            let scope = c.get("scope").and_then(Value::as_str).unwrap_or_default();
            let allowed = Scopes::parse(scope)
                .map_err(|e| RegisterError::BadJwks(format!("client {id}: {e}")))?;
            self.register(id, c.get("jwks").unwrap_or(&Value::Null), allowed)?;
        }
        Ok(map.len())
    }

    pub fn client_count(&self) -> usize {
        self.clients.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The token endpoint (client_credentials with a `private_key_jwt` assertion). `form`
    /// holds the decoded form fields; `now` is unix seconds (tests pass fixed values).
    ///
    /// Form problems are `invalid_request` or `unsupported_grant_type`; every failure of
    /// the assertion is `invalid_client` (401) with a description of exactly what failed:
    /// header alg RS384/ES384 with a `kid` and no `jku` (no JWKS URL can be registered, so
    /// `jku` is always refused); `iss` == `sub` == the `client_id` field if sent; a
    /// registered client with exactly one key of that `kid` whose `kty` fits the alg and
    /// whose `key_ops`, if any, include `verify`; the signature; `aud` == the token URL;
    /// `exp` present, not past and at most `max_assertion_lifetime` ahead (both with
    /// `clock_tolerance`); a `jti` not seen before from this client. Then the requested
    /// scopes are granted within the registered ones (else `invalid_scope`) and an opaque
    /// token is issued that dies after `valid_for` (if set) or `expires_in`.
    pub fn token(
        &self,
        form: &HashMap<String, String>,
        now: u64,
    ) -> Result<TokenResponse, OAuthError> {
        let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        match field("grant_type") {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(OAuthError {
                    status: 400,
                    error: "unsupported_grant_type",
                    description: format!(
                        "grant_type '{other}' is not supported; use client_credentials"
                    ),
                });
            }
            None => return Err(OAuthError::request("grant_type is missing")),
        }
        if field("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::request(format!(
                "client_assertion_type must be {JWT_BEARER}"
            )));
        }
        let assertion = field("client_assertion")
            .ok_or_else(|| OAuthError::request("client_assertion is missing"))?;
        let requested = field("scope").ok_or_else(|| OAuthError::request("scope is missing"))?;

        let client_id = self.verify(assertion, field("client_id"), now)?;

        let requested = Scopes::parse(requested).map_err(|e| OAuthError::scope(e.to_string()))?;
        let allowed = self
            .clients
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client_id)
            .map(|c| c.allowed.clone())
            .ok_or_else(|| OAuthError::client(format!("client '{client_id}' is not registered")))?;
        let granted = allowed
            .grant(&requested)
            .map_err(|e| OAuthError::scope(e.to_string()))?;

        let access_token = random_hex(32);
        let live = self
            .config
            .valid_for
            .unwrap_or(self.config.expires_in)
            .as_secs();
        let grant = Grant {
            client_id,
            scopes: granted.clone(),
            expires_at: now + live,
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, g| g.expires_at > now);
        tokens.insert(access_token.clone(), grant);
        Ok(TokenResponse {
            access_token,
            token_type: "bearer",
            expires_in: self.config.expires_in.as_secs(),
            scope: granted.to_string(),
        })
    }

    /// Checks the assertion (and the optional `client_id` form field against it); returns
    /// the client id. The `jti` is recorded only once every other check of the assertion
    /// has passed, so an assertion refused for another reason does not also burn its `jti`.
    fn verify(
        &self,
        assertion: &str,
        client_id_field: Option<&str>,
        now: u64,
    ) -> Result<String, OAuthError> {
        let meta = Token::decode_metadata(assertion)
            .map_err(|_| OAuthError::client("client_assertion is not a signed JWT"))?;
        let alg: Alg = meta.algorithm().parse().map_err(|_| {
            OAuthError::client(format!(
                "assertion alg {} is not accepted; use RS384 or ES384",
                meta.algorithm()
            ))
        })?;
        let kid = meta
            .key_id()
            .ok_or_else(|| OAuthError::client("the assertion header has no kid"))?
            .to_owned();
        // Honouring `jku` means accepting it only when it equals a registered jwks_url;
        // registration here is by value only, so there is no such URL and it is refused.
        if meta.key_set_url().is_some() {
            return Err(OAuthError::client(
                "jku not supported: register the JWKS by value (and drop jku from the header)",
            ));
        }
        // The payload, read before the signature is checked only to find the client.
        let payload: Value = assertion
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| OAuthError::client("the assertion payload is not JSON"))?;
        let iss = payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| OAuthError::client("the assertion has no iss"))?
            .to_owned();
        match payload.get("sub").and_then(Value::as_str) {
            Some(sub) if sub == iss => {}
            Some(sub) => {
                return Err(OAuthError::client(format!(
                    "assertion sub '{sub}' differs from iss '{iss}'"
                )));
            }
            None => return Err(OAuthError::client("the assertion has no sub")),
        }
        if let Some(cid) = client_id_field
            && cid != iss
        {
            return Err(OAuthError::client(format!(
                "client_id '{cid}' does not match the assertion's iss '{iss}'"
            )));
        }
        let key = {
            let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
            let client = clients
                .get(&iss)
                .ok_or_else(|| OAuthError::client(format!("client '{iss}' is not registered")))?;
            let matching: Vec<&Value> = client
                .keys
                .iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid.as_str()))
                .filter(|k| {
                    k.get("key_ops")
                        .and_then(Value::as_array)
                        .is_none_or(|ops| ops.iter().any(|o| o == "verify"))
                })
                .collect();
            if matching.is_empty() {
                return Err(OAuthError::client(format!(
                    "no key with kid '{kid}' is registered for client '{iss}'"
                )));
            }
            let fitting: Vec<&Value> = matching
                .into_iter()
                .filter(|k| alg_of_jwk(k) == Some(alg))
                .collect();
            match fitting.as_slice() {
                [one] => (*one).clone(),
                [] => {
                    return Err(OAuthError::client(format!(
                        "key '{kid}' of client '{iss}' is not an {} key, which {alg} needs",
                        alg.kty()
                    )));
                }
                _ => {
                    return Err(OAuthError::client(format!(
                        "client '{iss}' has several keys with kid '{kid}'"
                    )));
                }
            }
        };
        let tolerance = self.config.clock_tolerance.as_secs();
        let options = VerificationOptions {
            required_key_id: Some(kid.clone()),
            time_tolerance: Some(JwtDuration::from_secs(tolerance)),
            artificial_time: Some(JwtDuration::from_secs(now)),
            allowed_issuers: Some(HashSet::from([iss.clone()])),
            ..Default::default()
        };
        let text = serde_json::to_string(&strip_for_import(&key))
            .map_err(|e| OAuthError::client(e.to_string()))?;
        let verified = match alg {
            Alg::Rs384 => RS384PublicKey::from_jwk(&text)
                .and_then(|k| k.verify_token::<NoCustomClaims>(assertion, Some(options))),
            Alg::Es384 => ES384PublicKey::from_jwk(&text)
                .and_then(|k| k.verify_token::<NoCustomClaims>(assertion, Some(options))),
        };
        let claims = verified.map_err(|e| {
            OAuthError::client(match e.downcast_ref::<JWTError>() {
                Some(JWTError::InvalidSignature) => format!(
                    "the assertion's signature does not verify with key '{kid}' of client '{iss}'"
                ),
                Some(JWTError::TokenHasExpired) => {
                    "the assertion has expired (exp is in the past)".to_owned()
                }
                Some(JWTError::TokenNotValidYet) => {
                    "the assertion is not valid yet (nbf is in the future; check the client's clock)"
                        .to_owned()
                }
                Some(JWTError::ClockDrift) => {
                    "the assertion was issued in the future (iat); check the client's clock"
                        .to_owned()
                }
                _ => format!("assertion rejected: {e}"),
            })
        })?;
        let aud_ok = match payload.get("aud") {
            Some(Value::String(a)) => *a == self.config.token_url,
            Some(Value::Array(list)) => list
                .iter()
                .any(|a| a.as_str() == Some(&self.config.token_url)),
            _ => false,
        };
        if !aud_ok {
            return Err(OAuthError::client(format!(
                "assertion aud {} is not the token URL '{}'",
                match payload.get("aud") {
                    Some(Value::String(a)) => format!("'{a}'"),
                    Some(other) => other.to_string(),
                    None => "(missing)".into(),
                },
                self.config.token_url
            )));
        }
        let exp = claims
            .expires_at
            .map(|e| e.as_secs())
            .ok_or_else(|| OAuthError::client("the assertion has no exp"))?;
        let max_ahead = self.config.max_assertion_lifetime.as_secs() + tolerance;
        if exp > now + max_ahead {
            return Err(OAuthError::client(format!(
                "assertion expires {} s ahead; at most {} s allowed",
                exp - now,
                self.config.max_assertion_lifetime.as_secs()
            )));
        }
        let jti = claims
            .jwt_id
            .clone()
            .ok_or_else(|| OAuthError::client("the assertion has no jti"))?;
        let mut seen = self.seen_jti.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, forget_after| *forget_after >= now);
        if seen
            .insert((iss.clone(), jti.clone()), exp + tolerance)
            .is_some()
        {
            return Err(OAuthError::client(format!(
                "jti '{jti}' already used: sign a new assertion for every token request"
            )));
        }
        Ok(iss)
    }

    /// Checks an `Authorization` header value.
    pub fn check_bearer(
        &self,
        authorization: Option<&str>,
        now: u64,
    ) -> Result<Grant, BearerError> {
        let header = authorization.ok_or(BearerError::Missing)?;
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(BearerError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(BearerError::Malformed);
        }
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let grant = tokens.get(token.trim()).ok_or(BearerError::Unknown)?;
        if grant.expires_at <= now {
            return Err(BearerError::Expired);
        }
        Ok(grant.clone())
    }

    /// Forgets every token.
    pub fn revoke_all(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// jwt-simple's strict import refuses members it does not know how to honour for a public
/// key; keep the ones that define it.
fn strip_for_import(k: &Value) -> Value {
    let mut v = k.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("ext");
        o.remove("key_ops");
        o.remove("use");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fit_algorithms_by_kty_alg_and_crv() {
        assert_eq!(alg_of_jwk(&json!({"kty": "RSA"})), Some(Alg::Rs384));
        assert_eq!(alg_of_jwk(&json!({"kty": "RSA", "alg": "RS256"})), None);
        assert_eq!(
            alg_of_jwk(&json!({"kty": "EC", "crv": "P-384"})),
            Some(Alg::Es384)
        );
        assert_eq!(alg_of_jwk(&json!({"kty": "EC", "crv": "P-256"})), None);
        assert_eq!(alg_of_jwk(&json!({"kty": "oct"})), None);
    }

    #[test]
    fn server_is_shareable() {
        fn check<T: Send + Sync>() {}
        check::<AuthServer>();
    }
}
