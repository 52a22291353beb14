//! The one HTTP client of Stratus. Every request to an EHR goes through [`Client`], so
//! retries, `Retry-After`, authentication and custom headers behave the same in the bulk
//! client, the crawler and hydration.

/// Authentication: none, bearer, basic, or SMART Backend Services with a token cache.
pub mod auth;
/// The client: requests with retries.
pub mod client;
/// Fetching a JWKS named by URL, bounded in time and size.
pub mod jwks;
/// The politeness budget: requests in flight, requests per second, server-asked pauses.
pub mod polite;
/// `Retry-After` and backoff.
pub mod retry;

pub use auth::{Auth, SmartClient};
pub use client::{Answer, Client, HttpConfig, HttpError};
