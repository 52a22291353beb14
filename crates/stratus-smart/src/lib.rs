//! SMART Backend Services for Stratus: the keys a client signs with, the one-time JWT
//! assertions it sends, and the server side that checks them and hands out tokens.
//!
//! Everything runs on `jwt-simple` in pure Rust (RS384 and ES384, the two algorithms SMART
//! requires), so the workspace needs no C toolchain for crypto.

/// Client assertions (RFC 7523) for the token request.
pub mod assertion;
/// The token and registration request bodies every Stratus server reads alike.
pub mod endpoint;
/// Key pairs: generate, load from JWKS/JWK/PEM, export as JWKS.
pub mod keys;
/// SMART scopes, v1 (`system/*.read`) and v2 (`system/*.rs`).
pub mod scope;
/// The authorization server: client registry, assertion checks, access tokens.
pub mod server;
