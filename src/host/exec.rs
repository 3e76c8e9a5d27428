//! Running system tools (mdadm, lvm, sgdisk, mkfs, grub-install...) with logging and context.

use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::process::{Command, Stdio};

/// Output of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// A command line as the log shows it.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd`, captures its output, and fails with the command line and the end of stderr
/// when it exits non-zero.
pub fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let line = display(cmd);
    tracing::debug!("run: {line}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    let output = Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            out.status,
            last_lines(&output.stderr, &output.stdout)
        );
    }
    Ok(output)
}

/// Runs `cmd` and only logs a failure: for best-effort clean-up steps.
pub fn run_tolerant(cmd: &mut Command) -> Option<Output> {
    match run(cmd) {
        Ok(out) => Some(out),
        Err(err) => {
            tracing::debug!("ignored: {err:#}");
            None
        }
    }
}

/// Runs `cmd` with its output streamed to our stdout/stderr (apt, update-initramfs: long and
/// chatty, and the operator wants to see progress on the console).
pub fn run_streamed(cmd: &mut Command) -> anyhow::Result<()> {
    let line = display(cmd);
    tracing::info!("run: {line}");
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Shorthand for `Command::new(program).args(args)`.
pub fn cmd<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn last_lines(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    tail.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_its_stderr() {
        let err = run(&mut cmd("sh", ["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("sh -c echo boom >&2; exit 3"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[test]
    fn success_captures_stdout() {
        let out = run(&mut cmd("sh", ["-c", "printf 'a\\nb'"])).unwrap();
        assert_eq!(out.stdout, "a\nb");
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        assert!(run(&mut cmd("/nonexistent/tool", ["x"])).is_err());
        assert!(run_tolerant(&mut cmd("/nonexistent/tool", ["x"])).is_none());
    }
}
