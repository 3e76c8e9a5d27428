//! Download progress: bytes per layer and in total, measured every second and logged every
//! 10 s or 10 % (a five-minute pull is some thirty lines, not three hundred); each measurement
//! also goes to the caller's observer (the service's `STATUS=`).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared byte counters for the layers of one pull.
pub(crate) struct Progress {
    sizes: Vec<u64>,
    done: Vec<AtomicU64>,
    started: Instant,
    observer: Option<super::ProgressObserver>,
    /// Standard error is a terminal: the progress is one line updated in place.
    terminal: bool,
}

/// Time between logged lines at most...
const LOG_EVERY: Duration = Duration::from_secs(10);
/// ...or this many percent more, whichever comes first.
const LOG_STEP_PERCENT: u64 = 10;

const MIB: f64 = 1024.0 * 1024.0;

impl Progress {
    /// Counters for layers of the given sizes.
    pub fn new(sizes: Vec<u64>, observer: Option<super::ProgressObserver>) -> Arc<Self> {
        let done = sizes.iter().map(|_| AtomicU64::new(0)).collect();
        Arc::new(Self {
            sizes,
            done,
            started: Instant::now(),
            observer,
            terminal: std::io::stderr().is_terminal(),
        })
    }

    fn percent(&self) -> u64 {
        self.downloaded() * 100 / self.total().max(1)
    }

    /// Records `bytes` more of layer `index`.
    pub fn add(&self, index: usize, bytes: u64) {
        if let Some(counter) = self.done.get(index) {
            counter.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Bytes downloaded so far, all layers.
    pub fn downloaded(&self) -> u64 {
        self.done.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn total(&self) -> u64 {
        self.sizes.iter().sum()
    }

    /// Logs one line: total, rate, time left at that rate, and every layer.
    fn log(&self, rate_bytes_per_sec: f64) {
        tracing::info!(
            downloaded = self.downloaded(),
            total = self.total(),
            "{}",
            self.line(rate_bytes_per_sec)
        );
    }

    /// `pull: 120.0 of 285.0 MiB (42%) at 20.1 MiB/s, 8 s left; layers (MiB) 1:…`.
    fn line(&self, rate_bytes_per_sec: f64) -> String {
        let downloaded = self.downloaded();
        let total = self.total().max(1);
        let eta = match rate_bytes_per_sec > 0.0 {
            true => format!(
                ", {:.0} s left",
                total.saturating_sub(downloaded) as f64 / rate_bytes_per_sec
            ),
            false => String::new(),
        };
        let layers: Vec<String> = self
            .done
            .iter()
            .zip(&self.sizes)
            .enumerate()
            .map(|(i, (done, size))| {
                let done = done.load(Ordering::Relaxed);
                format!(
                    "{}:{:.1}/{:.1}",
                    i + 1,
                    done as f64 / MIB,
                    *size as f64 / MIB
                )
            })
            .collect();
        format!(
            "pull: {:.1} of {:.1} MiB ({}%) at {:.1} MiB/s{eta}; layers (MiB) {}",
            downloaded as f64 / MIB,
            total as f64 / MIB,
            downloaded * 100 / total,
            rate_bytes_per_sec / MIB,
            layers.join(" ")
        )
    }

    fn observe(&self) {
        if let Some(observer) = &self.observer {
            (observer.0)(self.downloaded(), self.total());
        }
    }

    /// Measures every second (telling the observer) and logs when [`should_log`] says so,
    /// until the returned handle is aborted.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let progress = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            let mut logged = (Instant::now(), 0u64, 0u64);
            let mut shown = (Instant::now(), 0u64);
            loop {
                ticker.tick().await;
                progress.observe();
                let now = Instant::now();
                let (downloaded, percent) = (progress.downloaded(), progress.percent());
                if progress.terminal {
                    // A person watching: one line, rewritten every second.
                    let secs = now.duration_since(shown.0).as_secs_f64().max(1e-3);
                    let rate = downloaded.saturating_sub(shown.1) as f64 / secs;
                    eprint!("\r\x1b[K{}", progress.line(rate));
                    shown = (now, downloaded);
                } else if should_log(now.duration_since(logged.0), logged.2, percent) {
                    let secs = now.duration_since(logged.0).as_secs_f64().max(1e-3);
                    progress.log(downloaded.saturating_sub(logged.1) as f64 / secs);
                    logged = (now, downloaded, percent);
                }
            }
        })
    }

    /// Logs the final line with the average rate.
    pub fn finish(&self) {
        self.observe();
        clear_terminal_line();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.log(self.downloaded() as f64 / secs);
    }
}

/// Clears the progress line on a terminal so that a log line can take its place (the next
/// tick draws it again below).
pub(crate) fn clear_terminal_line() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

/// Whether a progress line is due: [`LOG_EVERY`] since the last one, or the percentage has
/// moved on by [`LOG_STEP_PERCENT`].
fn should_log(since_last: Duration, last_percent: u64, percent: u64) -> bool {
    since_last >= LOG_EVERY || percent >= last_percent + LOG_STEP_PERCENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_every_ten_seconds_or_ten_percent() {
        assert!(!should_log(Duration::from_secs(1), 0, 3));
        assert!(should_log(Duration::from_secs(10), 0, 3));
        assert!(should_log(Duration::from_secs(2), 20, 30));
        assert!(!should_log(Duration::from_secs(9), 20, 29));
        // A five-minute pull at an even rate logs about 30 lines, not 300.
        let mut lines = 0;
        let mut last = (0u64, 0u64);
        for second in 1..=300u64 {
            let percent = second * 100 / 300;
            if should_log(Duration::from_secs(second - last.0), last.1, percent) {
                lines += 1;
                last = (second, percent);
            }
        }
        assert!((10..=30).contains(&lines), "{lines}");
    }

    #[test]
    fn the_observer_hears_bytes_and_total() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = heard.clone();
        let progress = Progress::new(
            vec![100, 300],
            Some(crate::oci::ProgressObserver(Arc::new(
                move |done, total| sink.lock().unwrap().push((done, total)),
            ))),
        );
        progress.add(1, 150);
        progress.finish();
        assert_eq!(*heard.lock().unwrap(), [(150, 400)]);
    }
}
