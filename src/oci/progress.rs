//! Download progress: bytes per layer and in total, logged about once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared byte counters for the layers of one pull.
pub(crate) struct Progress {
    sizes: Vec<u64>,
    done: Vec<AtomicU64>,
    started: Instant,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Progress {
    /// Counters for layers of the given sizes.
    pub fn new(sizes: Vec<u64>) -> Arc<Self> {
        let done = sizes.iter().map(|_| AtomicU64::new(0)).collect();
        Arc::new(Self {
            sizes,
            done,
            started: Instant::now(),
        })
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

    /// Logs one line: total, rate since the previous line, and the unfinished layers.
    fn log(&self, rate_bytes_per_sec: f64) {
        let downloaded = self.downloaded();
        let total = self.total().max(1);
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
        tracing::info!(
            downloaded,
            total,
            "pull: {:.1} of {:.1} MiB ({}%) at {:.1} MiB/s; layers (MiB) {}",
            downloaded as f64 / MIB,
            total as f64 / MIB,
            downloaded * 100 / total,
            rate_bytes_per_sec / MIB,
            layers.join(" ")
        );
    }

    /// Logs every second until the returned handle is aborted.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let progress = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            ticker.tick().await;
            let mut last = (Instant::now(), 0u64);
            loop {
                ticker.tick().await;
                let now = Instant::now();
                let downloaded = progress.downloaded();
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                progress.log((downloaded - last.1) as f64 / secs);
                last = (now, downloaded);
            }
        })
    }

    /// Logs the final line with the average rate.
    pub fn finish(&self) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.log(self.downloaded() as f64 / secs);
    }
}
