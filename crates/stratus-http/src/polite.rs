//! The politeness budget an EHR operator agrees to: at most N requests in flight and an
//! optional cap on requests per second, shared by every task of one client. A `Retry-After`
//! from a 429 or 503 pauses the whole client, not just the request that got it, because
//! the server meant "slow down", not "retry this one later while the others carry on".

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget of one client.
#[derive(Debug)]
pub struct Budget {
    slots: Option<Arc<Semaphore>>,
    interval: Option<Duration>,
    next_slot: Mutex<Instant>,
    paused_until: Mutex<Option<Instant>>,
    requests: AtomicU64,
}

/// Held while a request and its body are in flight.
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// `max_in_flight` 0 means no limit; `per_second` `None` or not positive means no cap.
    pub fn new(max_in_flight: usize, per_second: Option<f64>) -> Budget {
        Budget {
            slots: (max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))),
            interval: per_second
                .filter(|r| *r > 0.0 && r.is_finite())
                .map(|r| Duration::from_secs_f64(1.0 / r)),
            next_slot: Mutex::new(Instant::now()),
            paused_until: Mutex::new(None),
            requests: AtomicU64::new(0),
        }
    }

    /// Waits for a place in flight (held until the returned slot drops).
    pub async fn enter(&self) -> Slot {
        let permit = match &self.slots {
            Some(s) => Arc::clone(s).acquire_owned().await.ok(),
            None => None,
        };
        Slot { _permit: permit }
    }

    /// Waits until this request may be sent: after any pause a server asked for, and at
    /// the pace of the requests-per-second cap. Counts the request.
    pub async fn pace(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => break,
            }
        }
        if let Some(interval) = self.interval {
            let at = {
                let mut next = self.next_slot.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let at = (*next).max(now);
                *next = at + interval;
                at
            };
            tokio::time::sleep_until(at.into()).await;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The server said to wait `delay`: nobody sends before then.
    pub fn pause(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut slot = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none_or(|t| t < until) {
            *slot = Some(until);
        }
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_cap_spaces_requests() {
        let b = Budget::new(0, Some(100.0));
        let start = Instant::now();
        for _ in 0..11 {
            b.pace().await;
        }
        // 11 requests at 100/s: the last one goes out no sooner than 100 ms after the first.
        assert!(start.elapsed() >= Duration::from_millis(95));
        assert_eq!(b.requests(), 11);
    }

    #[tokio::test]
    async fn in_flight_is_capped() {
        let b = Arc::new(Budget::new(2, None));
        let live = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (b, live, peak) = (Arc::clone(&b), Arc::clone(&live), Arc::clone(&peak));
            tasks.push(tokio::spawn(async move {
                let _slot = b.enter().await;
                let n = live.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                live.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_pause_holds_everyone() {
        let b = Budget::new(0, None);
        b.pause(Duration::from_millis(60));
        let start = Instant::now();
        b.pace().await;
        assert!(start.elapsed() >= Duration::from_millis(55));
    }
}
