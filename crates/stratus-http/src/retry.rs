//! When to retry and how long to wait. Servers send `Retry-After` as seconds or as an HTTP
//! date, and some send nonsense (the SMART reference server sends an epoch timestamp); every
//! value is clamped so a client never sleeps for days or spins.

use std::time::{Duration, SystemTime};

/// Statuses worth another try: timeouts, throttling and gateway or server trouble.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses a `Retry-After` value: delta seconds or an HTTP date. Values past `cap` are
/// clamped to it; unparseable ones give `None` (use backoff instead).
pub fn parse_retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(cap));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.min(cap.as_secs_f64())));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(cap))
}

/// Exponential backoff: `base * 2^attempt`, capped.
pub fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.min(16)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cap = Duration::from_secs(120);
        assert_eq!(
            parse_retry_after("7", now, cap),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(" 1.5 ", now, cap),
            Some(Duration::from_millis(1500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now, cap),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now, cap), Some(Duration::ZERO));
        // An epoch timestamp where a delay belongs is clamped, not obeyed.
        assert_eq!(parse_retry_after("1700000123", now, cap), Some(cap));
        assert_eq!(parse_retry_after("soon", now, cap), None);
        assert_eq!(parse_retry_after("-3", now, cap), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let b = Duration::from_millis(500);
        let cap = Duration::from_secs(5);
        assert_eq!(backoff(b, 0, cap), b);
        assert_eq!(backoff(b, 2, cap), Duration::from_secs(2));
        assert_eq!(backoff(b, 30, cap), cap);
    }
}
