//! A guard for a query that stops making progress. Under a memory limit, DataFusion 55
//! can park every thread for good (apache/datafusion#24883, fixed upstream after the
//! version deltalake pins): no error, no CPU, no end. A build waiting on that would wait
//! forever; with this guard it gives up on the table and says why.
//!
//! Progress is read from the process's CPU time rather than from the query itself: a
//! parked query uses none at all, while any real work (sorting, spilling, even reading
//! slowly from S3) uses some every few seconds.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// How long a table's query may go without using [`MIN_CPU`] before it counts as stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Less CPU than this over a whole [`STALL_TIMEOUT`] is no progress. A parked process
/// uses none; a working one uses this much in well under a second.
pub const MIN_CPU: Duration = Duration::from_secs(1);

/// A query that used less than [`MIN_CPU`] for `seconds` and was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    pub seconds: u64,
}

/// The CPU time this process has used (user and system, every thread), where the
/// platform tells it (Linux); `None` elsewhere, and then nothing is guarded.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces; count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // utime and stime are the line's fields 14 and 15; the first after the name is 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // Clock ticks of USER_HZ, which is 100 on every Linux architecture Stratus builds for.
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

/// Runs `work` to its end, unless the process uses less than [`MIN_CPU`] of CPU (read by
/// `cpu`) for `timeout` while it runs: then `work` is dropped, which cancels a DataFusion
/// query and its tasks, and the answer is [`Stalled`]. With a zero timeout, or no CPU
/// clock, `work` simply runs.
pub async fn guard<F: Future>(
    work: F,
    timeout: Duration,
    cpu: impl Fn() -> Option<Duration>,
) -> Result<F::Output, Stalled> {
    let Some(mut seen) = cpu().filter(|_| !timeout.is_zero()) else {
        return Ok(work.await);
    };
    let mut since = Instant::now();
    let mut ticks = tokio::time::interval((timeout / 20).max(Duration::from_millis(5)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Ok(out),
            _ = ticks.tick() => {
                let now = cpu().unwrap_or(seen);
                if now.saturating_sub(seen) >= MIN_CPU {
                    seen = now;
                    since = Instant::now();
                } else if since.elapsed() >= timeout {
                    return Err(Stalled { seconds: since.elapsed().as_secs() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const SHORT: Duration = Duration::from_millis(100);

    #[tokio::test]
    async fn a_query_that_never_ends_and_uses_no_cpu_is_given_up() {
        let started = std::time::Instant::now();
        let out = guard(std::future::pending::<()>(), SHORT, || {
            Some(Duration::from_secs(7))
        })
        .await;
        assert_eq!(out, Err(Stalled { seconds: 0 }));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test]
    async fn a_slow_query_that_keeps_using_cpu_runs_to_its_end() {
        // Each reading is a second of CPU more than the last: always progress.
        let clock = AtomicU64::new(0);
        let cpu = || Some(Duration::from_secs(clock.fetch_add(1, Ordering::Relaxed)));
        let work = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            42
        };
        assert_eq!(guard(work, SHORT, cpu).await, Ok(42));
    }

    #[tokio::test]
    async fn without_a_timeout_or_a_clock_nothing_is_guarded() {
        let work = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            1
        };
        assert_eq!(guard(work, SHORT, || None).await, Ok(1));
        let work = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            2
        };
        let still = || Some(Duration::ZERO);
        assert_eq!(guard(work, Duration::ZERO, still).await, Ok(2));
        assert_eq!(guard(async { 3 }, Duration::ZERO, still).await, Ok(3));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_process_cpu_clock_moves_with_work() {
        let Some(before) = cpu_time() else {
            panic!("/proc/self/stat has no CPU times")
        };
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_time().unwrap_or_default();
        assert!(
            after >= before + Duration::from_millis(100),
            "{before:?} {after:?}"
        );
    }
}
