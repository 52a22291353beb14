//! Terminal output: progress bars that appear only on a terminal, and number formatting.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stratus_fhir::stats::BadLine;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The one-line status of a long command on stderr: rewritten in place on a terminal, a
/// line every 10 s otherwise (logs and pipes), and cleared from the terminal when dropped.
pub struct StatusLine {
    tty: bool,
    last: Instant,
}

impl StatusLine {
    pub fn new(tty: bool) -> StatusLine {
        StatusLine {
            tty,
            last: Instant::now(),
        }
    }

    /// Whether a line is due now: always on a terminal, every 10 s otherwise.
    pub fn due(&mut self) -> bool {
        if !self.tty && self.last.elapsed() < Duration::from_secs(10) {
            return false;
        }
        self.last = Instant::now();
        true
    }

    pub fn show(&self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

impl Drop for StatusLine {
    fn drop(&mut self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal or `quiet` is set, so
/// logs and CI output stay clean.
pub fn bar(total: u64, unit: Unit, quiet: bool) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), draw_target(quiet));
    let template = match unit {
        Unit::Bytes => "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        Unit::Items(_) => "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} {per_sec} ETA {eta}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    if let Unit::Items(name) = unit {
        pb.set_message(name);
    }
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn draw_target(quiet: bool) -> ProgressDrawTarget {
    if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// Runs `work` with a byte-progress bar that follows a counter the work advances (the
/// library crates count bytes read from disk into an `AtomicU64`), and a callback that
/// prints a bad line above the bar without tearing it.
pub fn with_byte_progress<T>(
    total: u64,
    message: &'static str,
    quiet: bool,
    work: impl FnOnce(Arc<AtomicU64>, &(dyn Fn(&BadLine) + Sync)) -> T,
) -> T {
    let pb = bar(total, Unit::Bytes, quiet);
    pb.set_message(message);
    let done = Arc::new(AtomicU64::new(0));
    let on_bad = |b: &BadLine| pb.suspend(|| eprintln!("{b}"));
    std::thread::scope(|s| {
        let watcher = {
            let (done, pb) = (done.clone(), pb.clone());
            s.spawn(move || {
                while !pb.is_finished() {
                    pb.set_position(done.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let result = work(done.clone(), &on_bad);
        pb.finish_and_clear();
        let _ = watcher.join();
        result
    })
}

/// Prints resource counts per type and their total, as the synth commands report them.
pub fn print_counts(counts: &BTreeMap<String, u64>) -> u64 {
    let total: u64 = counts.values().sum();
    for (t, n) in counts {
        println!("{t:<24} {:>14}", thousands(*n));
    }
    println!("{:<24} {:>14}", "total", thousands(total));
    total
}

/// What a bar counts.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Bytes,
    Items(&'static str),
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1536` → `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(38972), "38,972");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
