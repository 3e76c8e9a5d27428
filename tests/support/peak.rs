//! Running `ocimetal` as a child and measuring its peak resident memory.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak memory allowed to `ocimetal pull` and `ocimetal plan` on any input.
pub const MAX_RSS_KIB: i64 = 128 * 1024;

/// How a run ended.
#[derive(Debug)]
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard error, trimmed.
    pub stderr: String,
    /// Peak resident memory, KiB.
    pub max_rss_kib: i64,
    /// Wall-clock time.
    pub took: Duration,
}

/// Runs `command` (standard output discarded) to its end.
#[allow(clippy::zombie_processes)] // wait4 reaps it: Child::wait would lose the rusage.
pub fn run(mut command: Command) -> Run {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is this process's child, not yet reaped; the pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "{}", std::io::Error::last_os_error());
    Run {
        code: std::process::ExitStatus::from_raw(status)
            .code()
            .unwrap_or(-1),
        stderr: stderr.trim().to_string(),
        max_rss_kib: usage.ru_maxrss,
        took: started.elapsed(),
    }
}
