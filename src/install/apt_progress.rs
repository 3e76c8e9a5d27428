//! Progress of `apt-get install`, read from its own output: the summary line gives the number
//! of packages, each `Setting up` line is one more done. The service status shows it at once;
//! the journal gets a line every 10 s or 10 %, like the pull.

use std::time::{Duration, Instant};

/// What has been seen of one apt run.
#[derive(Debug, Default)]
pub struct AptProgress {
    /// Packages apt will unpack and configure, once its summary line has been seen.
    total: Option<u32>,
    /// Packages configured so far.
    done: u32,
    /// When and at what percentage the last journal line was written.
    logged: Option<(Instant, u32)>,
}

/// What one line of apt's output changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    /// Packages configured.
    pub done: u32,
    /// Packages to configure.
    pub total: u32,
}

impl Count {
    /// Whole percent done.
    pub fn percent(self) -> u32 {
        (u64::from(self.done) * 100 / u64::from(self.total.max(1))) as u32
    }

    /// `packages: 35 of 235 set up (14%)`.
    pub fn line(self) -> String {
        format!(
            "packages: {} of {} set up ({}%)",
            self.done,
            self.total,
            self.percent()
        )
    }
}

impl AptProgress {
    /// Reads one line of apt's output; returns the new count when the line moved it on.
    pub fn feed(&mut self, line: &str) -> Option<Count> {
        let line = line.trim();
        if let Some(total) = summary_total(line) {
            self.total = Some(total);
            self.done = 0;
        } else if line.starts_with("Setting up ") && self.total.is_some() {
            self.done += 1;
        } else {
            return None;
        }
        let total = self.total?;
        Some(Count {
            done: self.done.min(total),
            total,
        })
    }

    /// Whether `count`, seen at `now`, deserves a journal line: the first, the last, and then
    /// one per [`LOG_EVERY`] or [`LOG_STEP_PERCENT`].
    pub fn due(&mut self, count: Count, now: Instant) -> bool {
        let percent = count.percent();
        let due = match self.logged {
            None => true,
            Some((at, last)) => {
                count.done == count.total
                    || now.duration_since(at) >= LOG_EVERY
                    || percent >= last + LOG_STEP_PERCENT
            }
        };
        if due {
            self.logged = Some((now, percent));
        }
        due
    }
}

/// Time between journal lines at most...
const LOG_EVERY: Duration = Duration::from_secs(10);
/// ...or this many percent more.
const LOG_STEP_PERCENT: u32 = 10;

/// The package count of apt's summary: `3 upgraded, 235 newly installed, 0 to remove and 0 not
/// upgraded.` gives 238 (upgrades are set up too).
fn summary_total(line: &str) -> Option<u32> {
    let (upgraded, rest) = line.split_once(" upgraded, ")?;
    let (installed, _) = rest.split_once(" newly installed")?;
    Some(upgraded.trim().parse::<u32>().ok()? + installed.trim().parse::<u32>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_setting_up_lines_against_the_summary() {
        let mut progress = AptProgress::default();
        assert_eq!(progress.feed("Setting up early (1.0) ..."), None);
        assert_eq!(progress.feed("Reading package lists..."), None);
        assert_eq!(
            progress.feed("1 upgraded, 3 newly installed, 0 to remove and 5 not upgraded."),
            Some(Count { done: 0, total: 4 })
        );
        assert_eq!(progress.feed("Unpacking a (1) ..."), None);
        let count = progress.feed("Setting up a (1) ...").expect("moved on");
        assert_eq!(count, Count { done: 1, total: 4 });
        assert_eq!(count.line(), "packages: 1 of 4 set up (25%)");
        for _ in 0..5 {
            progress.feed("Setting up more (1) ...");
        }
        assert_eq!(
            progress.feed("Setting up last (1) ..."),
            Some(Count { done: 4, total: 4 }),
            "never past the total"
        );
    }

    #[test]
    fn the_journal_hears_every_ten_seconds_or_ten_percent_and_the_end() {
        let mut progress = AptProgress::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let count = |done| Count { done, total: 200 };
        assert!(progress.due(count(0), at(0)));
        assert!(!progress.due(count(2), at(1)));
        assert!(progress.due(count(20), at(2)), "ten percent more");
        assert!(!progress.due(count(21), at(3)));
        assert!(progress.due(count(22), at(12)), "ten seconds later");
        assert!(progress.due(count(200), at(13)), "the last one");
    }

    #[test]
    fn only_apt_summaries_give_a_total() {
        assert_eq!(
            summary_total("0 upgraded, 235 newly installed, 0 to remove and 0 not upgraded."),
            Some(235)
        );
        assert_eq!(summary_total("x upgraded, 2 newly installed"), None);
        assert_eq!(summary_total("Setting up a (1) ..."), None);
    }
}
