//! Per-step timing, status and event reporting for the executor.

use crate::host::report::{Event, Outcome};
use crate::host::Host;
use anyhow::Context;
use std::time::{Duration, Instant};

/// How a step ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next step.
    Next,
    /// Go on, but something the operator should know went wrong (reported as `WARN`).
    Warned(String),
    /// The rest of the install is not needed (re-entry): only the power action is left.
    SkipToEnd,
}

/// Durations of the steps run so far, in order.
#[derive(Debug, Default)]
pub struct Phases {
    done: Vec<(String, Duration)>,
}

impl Phases {
    /// Runs one step: announces it (journal, console, sd_notify `STATUS=`, a `start` event),
    /// times it, reports how it ended (`finish` event) and names it in the error when it fails.
    pub fn run(
        &mut self,
        host: &dyn Host,
        name: &str,
        detail: &str,
        step: impl FnOnce() -> anyhow::Result<Flow>,
    ) -> anyhow::Result<Flow> {
        let event = format!("ocimetal/{name}");
        tracing::info!(ocimetal_step = name, "step {name}: start");
        host.notify(&format!("step {name}"), true);
        host.report(&Event::start(&event, detail));
        let start = Instant::now();
        let result = step().with_context(|| format!("step {name} failed"));
        let elapsed = start.elapsed().as_secs_f64();
        let finish = match &result {
            Ok(Flow::Warned(warning)) => {
                tracing::warn!(
                    ocimetal_step = name,
                    ocimetal_duration_s = elapsed,
                    ocimetal_result = "WARN",
                    "step {name}: done with a warning in {elapsed:.1} s"
                );
                Event::finish(&event, Outcome::Warn, warning.clone())
            }
            Ok(_) => {
                tracing::info!(
                    ocimetal_step = name,
                    ocimetal_duration_s = elapsed,
                    ocimetal_result = "SUCCESS",
                    "step {name}: done in {elapsed:.1} s"
                );
                Event::finish(&event, Outcome::Success, format!("done in {elapsed:.1} s"))
            }
            Err(err) => {
                tracing::error!(
                    ocimetal_step = name,
                    ocimetal_duration_s = elapsed,
                    ocimetal_result = "FAIL",
                    "step {name}: failed after {elapsed:.1} s"
                );
                Event::finish(&event, Outcome::Fail, format!("{err:#}"))
            }
        };
        host.report(&finish.with("duration_s", elapsed.into()));
        self.done.push((name.to_string(), start.elapsed()));
        result
    }

    /// The steps' durations in seconds, in order, as JSON for the final event.
    pub fn durations(&self) -> serde_json::Value {
        self.done
            .iter()
            .map(|(name, d)| serde_json::json!({"step": name, "duration_s": d.as_secs_f64()}))
            .collect()
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
    fn failures_name_the_step_and_every_step_is_timed() {
        let mut phases = Phases::default();
        let host = crate::host::System::default();
        assert_eq!(
            phases.run(&host, "wipe", "", || Ok(Flow::Next)).unwrap(),
            Flow::Next
        );
        let err = phases
            .run(&host, "partition", "", || anyhow::bail!("sgdisk died"))
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "step partition failed: sgdisk died");
        let summary = phases.summary();
        assert!(summary.starts_with("wipe "), "{summary}");
        assert!(summary.contains("partition "), "{summary}");
        assert!(summary.contains("total "), "{summary}");
        assert_eq!(phases.durations()[1]["step"], "partition");
    }
}
