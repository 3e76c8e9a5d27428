//! Per-phase timing and status reporting for the executor.

use crate::host::Host;
use anyhow::Context;
use std::time::{Duration, Instant};

/// Durations of the phases run so far, in order.
#[derive(Debug, Default)]
pub struct Phases {
    done: Vec<(String, Duration)>,
}

impl Phases {
    /// Runs one phase: announces it (journal, console, sd_notify STATUS=), times it, and
    /// names it in the error when it fails.
    pub fn run<T>(
        &mut self,
        host: &dyn Host,
        name: &str,
        phase: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        tracing::info!("step {name}: start");
        host.notify(&format!("step {name}"), true);
        let start = Instant::now();
        let result = phase().with_context(|| format!("step {name} failed"));
        let elapsed = start.elapsed();
        match &result {
            Ok(_) => tracing::info!("step {name}: done in {:.1} s", elapsed.as_secs_f64()),
            Err(_) => tracing::error!("step {name}: failed after {:.1} s", elapsed.as_secs_f64()),
        }
        self.done.push((name.to_string(), elapsed));
        result
    }

    /// `validate 1.2 s, wipe 0.8 s, …, total 95.0 s`.
    pub fn summary(&self) -> String {
        let total: Duration = self.done.iter().map(|(_, d)| *d).sum();
        let mut parts: Vec<String> = self
            .done
            .iter()
            .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
            .collect();
        parts.push(format!("total {:.1} s", total.as_secs_f64()));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_phase_and_every_phase_is_timed() {
        let mut phases = Phases::default();
        let host = crate::host::System;
        assert_eq!(phases.run(&host, "wipe", || Ok(7)).unwrap(), 7);
        let err = phases
            .run(&host, "partition", || -> anyhow::Result<()> {
                anyhow::bail!("sgdisk died")
            })
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "step partition failed: sgdisk died");
        let summary = phases.summary();
        assert!(summary.starts_with("wipe "), "{summary}");
        assert!(summary.contains("partition "), "{summary}");
        assert!(summary.contains("total "), "{summary}");
    }
}
