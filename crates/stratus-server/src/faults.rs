//! Fault injection at run time: the seeded dice, per-client rate buckets, and the download
//! stream wrappers that cut or slow a file.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::Stream;

use crate::config::Faults;
use crate::error::ApiError;

pub struct FaultState {
    pub config: Faults,
    rng: Mutex<u64>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl FaultState {
    pub fn new(config: Faults) -> Self {
        FaultState {
            rng: Mutex::new(config.seed ^ 0x9e37_79b9_7f4a_7c15),
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// A uniform number in [0, 1) from the seeded sequence (splitmix64).
    fn roll(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The delay to add before answering, if latency is configured.
    pub fn latency(&self) -> Option<Duration> {
        let [lo, hi] = self.config.latency_ms?;
        let ms = lo + ((hi - lo) as f64 * self.roll()).round() as u64;
        Some(Duration::from_millis(ms))
    }

    /// An injected 429/500/503 answer, if the dice say so.
    pub fn injected_error(&self) -> Option<ApiError> {
        let c = &self.config;
        if c.rate_429 + c.rate_500 + c.rate_503 <= 0.0 {
            return None;
        }
        let r = self.roll();
        let retry = c.retry_after.unwrap_or(1);
        if r < c.rate_429 {
            Some(
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "injected fault: too many requests, retry later",
                )
                .with_retry_after(retry),
            )
        } else if r < c.rate_429 + c.rate_500 {
            Some(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "injected fault: internal server error",
            ))
        } else if r < c.rate_429 + c.rate_500 + c.rate_503 {
            Some(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "transient",
                    "injected fault: service unavailable, retry later",
                )
                .with_retry_after(retry),
            )
        } else {
            None
        }
    }

    /// A 429 if `client` has spent its request budget (token bucket, one second of burst).
    pub fn rate_limited(&self, client: &str) -> Option<ApiError> {
        let rate = self.config.rate_limit?;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: rate.max(1.0),
            last: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(rate.max(1.0));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else {
            let wait = ((1.0 - b.tokens) / rate).ceil().max(1.0) as u64;
            Some(
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    format!("rate limit of {rate} requests per second exceeded"),
                )
                .with_retry_after(wait),
            )
        }
    }

    pub fn truncate_download(&self) -> bool {
        self.config.truncate_rate > 0.0 && self.roll() < self.config.truncate_rate
    }

    pub fn expire_download(&self) -> bool {
        self.config.expire_rate > 0.0 && self.roll() < self.config.expire_rate
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Wraps a download: stops with an error after `cut_after` bytes (the client sees a
/// connection closed early), and paces to `bytes_per_sec` by holding each chunk until
/// its last byte is due, so even a client that stops reading at `Content-Length` sees
/// the pace.
pub struct FaultyStream {
    inner: ByteStream,
    cut_after: Option<u64>,
    sent: u64,
    bytes_per_sec: Option<u64>,
    start: Instant,
    held: Option<Bytes>,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The cut is due: the bytes before it were handed out and given time to leave.
    cut_due: bool,
}

impl FaultyStream {
    pub fn new(inner: ByteStream, cut_after: Option<u64>, bytes_per_sec: Option<u64>) -> Self {
        FaultyStream {
            inner,
            cut_after,
            sent: 0,
            bytes_per_sec,
            start: Instant::now(),
            held: None,
            sleep: None,
            cut_due: false,
        }
    }
}

impl Stream for FaultyStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(sleep) = self.sleep.as_mut() {
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => self.sleep = None,
            }
        }
        if let Some(chunk) = self.held.take() {
            self.sent += chunk.len() as u64;
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(limit) = self.cut_after
            && self.sent >= limit
        {
            if self.cut_due {
                return Poll::Ready(Some(Err(std::io::Error::other(
                    "injected fault: download cut short",
                ))));
            }
            // Pause first: hyper flushes what it holds while the body is pending, so the
            // client really receives the bytes before the cut, as on a real broken link.
            self.cut_due = true;
            let mut sleep = Box::pin(tokio::time::sleep(Duration::from_millis(20)));
            if sleep.as_mut().poll(cx).is_pending() {
                self.sleep = Some(sleep);
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err(std::io::Error::other(
                "injected fault: download cut short",
            ))));
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(mut chunk))) => {
                if let Some(limit) = self.cut_after {
                    let room = (limit - self.sent) as usize;
                    if chunk.len() > room {
                        chunk.truncate(room);
                    }
                }
                if let Some(rate) = self.bytes_per_sec {
                    let due = Duration::from_secs_f64(
                        (self.sent + chunk.len() as u64) as f64 / rate as f64,
                    );
                    let elapsed = self.start.elapsed();
                    if due > elapsed {
                        self.held = Some(chunk);
                        let mut sleep = Box::pin(tokio::time::sleep(due - elapsed));
                        return match sleep.as_mut().poll(cx) {
                            Poll::Pending => {
                                self.sleep = Some(sleep);
                                Poll::Pending
                            }
                            Poll::Ready(()) => {
                                let chunk = self.held.take().unwrap_or_default();
                                self.sent += chunk.len() as u64;
                                Poll::Ready(Some(Ok(chunk)))
                            }
                        };
                    }
                }
                self.sent += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

use std::future::Future;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_are_seeded() {
        let f = Faults {
            seed: 7,
            rate_500: 0.5,
            ..Faults::default()
        };
        let a: Vec<bool> = {
            let s = FaultState::new(f.clone());
            (0..64).map(|_| s.injected_error().is_some()).collect()
        };
        let b: Vec<bool> = {
            let s = FaultState::new(f);
            (0..64).map(|_| s.injected_error().is_some()).collect()
        };
        assert_eq!(a, b);
        let hits = a.iter().filter(|x| **x).count();
        assert!((16..=48).contains(&hits), "{hits}");
    }

    #[test]
    fn rate_limit_refuses_the_burst() {
        let s = FaultState::new(Faults {
            rate_limit: Some(2.0),
            ..Faults::default()
        });
        assert!(s.rate_limited("a").is_none());
        assert!(s.rate_limited("a").is_none());
        let refused = s.rate_limited("a").expect("third request within a second");
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.retry_after.is_some());
        assert!(s.rate_limited("b").is_none(), "buckets are per client");
    }
}
