//! The client side of SMART Backend Services: a signed one-time JWT (RFC 7523) that
//! authenticates the token request.

use std::time::Duration;

use jwt_simple::prelude::{Claims, Duration as JwtDuration};

use crate::keys::{KeyError, SigningKey, random_hex16};

/// Signs an assertion: header `alg`, `kid`, `typ: JWT` (and `jku` if given); claims
/// `iss` = `sub` = `client_id`, `aud` = `token_url`, `exp` = now + `lifetime` (at most
/// 300 s, as SMART requires), a fresh random `jti`, and `iat`. No `nbf`, so a server clock
/// a little behind ours does not refuse it.
pub fn sign(
    key: &SigningKey,
    client_id: &str,
    token_url: &str,
    lifetime: Duration,
    jku: Option<&str>,
) -> Result<String, KeyError> {
    if lifetime.as_secs() > 300 || lifetime.is_zero() {
        return Err(KeyError::Lifetime(lifetime.as_secs()));
    }
    let mut claims = Claims::create(JwtDuration::from_secs(lifetime.as_secs()))
        .with_issuer(client_id)
        .with_subject(client_id)
        .with_audience(token_url)
        .with_jwt_id(random_hex16());
    claims.invalid_before = None;
    key.sign(claims, jku)
}
