//! Running `ocimetal` as a child and measuring its peak resident memory.
//!
//! GNU time measures it: the child's own maximum is only clean when the process that execs
//! it is small, and a test process is not (on exec, Linux carries the replaced memory's high
//! mark over). `timeout` stops a run that hangs.

use std::ffi::OsStr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak memory allowed to `ocimetal pull` and `ocimetal plan` on any input.
pub const MAX_RSS_KIB: u64 = 128 * 1024;

/// A run that hangs is stopped after this long (and then shows status 124).
const PATIENCE: &str = "120";

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    /// Exit status; 124 when it was stopped for taking too long.
    pub code: i32,
    /// Standard error, trimmed.
    pub stderr: String,
    /// Peak resident memory, KiB.
    pub max_rss_kib: u64,
    /// Wall-clock time.
    pub took: Duration,
}

/// A command to run measured.
pub struct Measured {
    command: Command,
    report: tempfile::NamedTempFile,
}

/// `program`, to be given its arguments through [`Measured::command`].
pub fn measured(program: impl AsRef<OsStr>) -> Measured {
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .args(["--", "timeout", "-k", "5", PATIENCE])
        .arg(program);
    Measured { command, report }
}

impl Measured {
    /// The command, for arguments and environment.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// Runs it to its end (standard output discarded).
    pub fn run(mut self) -> Run {
        let started = Instant::now();
        let out = self
            .command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("GNU time (/usr/bin/time) runs the command");
        let took = started.elapsed();
        let report = std::fs::read_to_string(self.report.path()).unwrap();
        let max_rss_kib = report
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no maximum RSS in {report:?}"));
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            max_rss_kib,
            took,
        }
    }
}
