//! Running system tools (mdadm, lvm, sgdisk, mkfs, grub-install...) with logging and context.

use anyhow::Context;
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
        let text = if output.stderr.trim().is_empty() {
            &output.stdout
        } else {
            &output.stderr
        };
        let lines: Vec<String> = text.trim().lines().map(str::to_string).collect();
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec();
        return Err(CommandFailed::new(line, out.status, tail).into());
    }
    Ok(output)
}

/// A command that ran and exited non-zero, with the end of its output. Displays as one line:
/// the command, its status and its last three lines.
#[derive(Debug, Clone)]
pub struct CommandFailed {
    /// The command line.
    pub command: String,
    /// How it ended, e.g. `exit status: 100`.
    pub status: String,
    /// Its last lines of output (at most [`TAIL_LINES`]), oldest first.
    pub tail: Vec<String>,
}

impl CommandFailed {
    fn new(command: String, status: std::process::ExitStatus, tail: Vec<String>) -> Self {
        Self {
            command,
            status: status.to_string(),
            tail,
        }
    }
}

impl std::fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last: Vec<&str> = self
            .tail
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        write!(
            f,
            "`{}` failed ({}): {}",
            self.command,
            self.status,
            last.join(" | ")
        )
    }
}

impl std::error::Error for CommandFailed {}

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

/// Lines of a streamed command's output kept for its error.
pub const TAIL_LINES: usize = 40;

/// Longest line kept in the tail (the console still gets the whole line).
const TAIL_LINE_CHARS: usize = 500;

/// Runs `cmd` with its output streamed to our stdout/stderr (apt, update-initramfs: long and
/// chatty, and the operator wants to see progress on the console). When it fails, the last
/// [`TAIL_LINES`] lines of its output are logged and the error ends with the last ones: the
/// reason must not have scrolled by.
pub fn run_streamed(cmd: &mut Command) -> anyhow::Result<()> {
    run_watched(cmd, None)
}

/// Hears every whole line a streamed command prints (on either stream), as it comes.
pub type LineWatch = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// [`run_streamed`], with every output line also given to `watch` (progress from apt's
/// output, for example).
pub fn run_watched(cmd: &mut Command, watch: Option<LineWatch>) -> anyhow::Result<()> {
    let line = display(cmd);
    tracing::info!("run: {line}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Tail::default()));
    let out = child
        .stdout
        .take()
        .map(|r| forward(r, std::io::stdout(), tail.clone(), watch.clone()));
    let err = child
        .stderr
        .take()
        .map(|r| forward(r, std::io::stderr(), tail.clone(), watch.clone()));
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    for handle in [out, err].into_iter().flatten() {
        let _ = handle.join();
    }
    if status.success() {
        return Ok(());
    }
    let tail = tail.lock().map(|t| t.lines()).unwrap_or_default();
    if !tail.is_empty() {
        tracing::error!("the last {} lines of `{line}`:", tail.len());
        for text in &tail {
            tracing::error!("| {text}");
        }
    }
    Err(CommandFailed::new(line, status, tail).into())
}

/// The last lines seen on a command's stdout and stderr together.
#[derive(Default)]
struct Tail {
    lines: std::collections::VecDeque<String>,
}

impl Tail {
    fn push_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        if text.is_empty() {
            return;
        }
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines
            .push_back(text.chars().take(TAIL_LINE_CHARS).collect());
    }

    fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}

/// One stream's line being assembled for the tail (and the watcher, if any).
#[derive(Default)]
struct LineSplitter {
    partial: Vec<u8>,
    watch: Option<LineWatch>,
    /// A carriage return was the last byte: the line ends if a line feed follows (CRLF, as
    /// dpkg's lines arrive through apt's pseudo-terminal), else it is being rewritten.
    carriage: bool,
}

impl LineSplitter {
    /// Feeds bytes; every finished line goes to `tail`.
    fn feed(&mut self, bytes: &[u8], tail: &std::sync::Mutex<Tail>) {
        for &byte in bytes {
            if self.carriage && byte != b'\n' && byte != b'\r' {
                // A carriage return then text rewrites the line (progress bars): keep the
                // last state.
                self.partial.clear();
            }
            self.carriage = byte == b'\r';
            match byte {
                b'\r' => {}
                b'\n' => self.flush(tail),
                _ if self.partial.len() < TAIL_LINE_CHARS * 4 => self.partial.push(byte),
                _ => {}
            }
        }
    }

    fn flush(&mut self, tail: &std::sync::Mutex<Tail>) {
        if let Some(watch) = self.watch.as_ref().filter(|_| !self.partial.is_empty()) {
            watch(&String::from_utf8_lossy(&self.partial));
        }
        if let Ok(mut tail) = tail.lock() {
            tail.push_line(&self.partial);
        }
        self.partial.clear();
    }
}

/// Copies a child's output to `sink` as it comes, and into the shared tail.
fn forward<R, W>(
    mut reader: R,
    mut sink: W,
    tail: std::sync::Arc<std::sync::Mutex<Tail>>,
    watch: Option<LineWatch>,
) -> std::thread::JoinHandle<()>
where
    R: std::io::Read + Send + 'static,
    W: std::io::Write + Send + 'static,
{
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        let mut splitter = LineSplitter {
            partial: Vec::new(),
            watch,
            carriage: false,
        };
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            let _ = sink.write_all(&buffer[..n]);
            let _ = sink.flush();
            splitter.feed(&buffer[..n], &tail);
        }
        splitter.flush(&tail);
    })
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
    fn a_failed_streamed_command_keeps_the_end_of_its_output() {
        // One stream, so that the order of the lines is the order they were written in.
        let script = "exec 1>&2; for i in $(seq 1 100); do echo line $i; done; \
                      printf 'progress 10%%\\rprogress 99%%\\n'; echo the real reason; exit 100";
        let err = run_streamed(&mut cmd("sh", ["-c", script])).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("exit status: 100"), "{text}");
        assert!(
            text.ends_with("line 100 | progress 99% | the real reason"),
            "{text}"
        );
    }

    #[test]
    fn a_watched_command_gives_every_line_to_the_watcher_as_it_comes() {
        let heard = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = heard.clone();
        let watch: LineWatch = std::sync::Arc::new(move |line: &str| {
            sink.lock().unwrap().push(line.to_string());
        });
        // dpkg's lines come through apt's pseudo-terminal with CRLF endings; a bare carriage
        // return rewrites a progress line.
        run_watched(
            &mut cmd(
                "sh",
                [
                    "-c",
                    "echo one; printf 'Setting up a ...\\r\\n10%%\\r99%%\\n'; printf 'three'",
                ],
            ),
            Some(watch),
        )
        .unwrap();
        assert_eq!(
            *heard.lock().unwrap(),
            ["one", "Setting up a ...", "99%", "three"]
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines_each_cut_to_a_bounded_length() {
        let tail = std::sync::Mutex::new(Tail::default());
        let mut out = LineSplitter::default();
        let mut err = LineSplitter::default();
        out.feed(b"first ha", &tail);
        err.feed(b"from stderr\n", &tail);
        out.feed(b"lf\n", &tail);
        out.feed(&[b'x'; 5000], &tail);
        out.flush(&tail);
        let lines = tail.lock().unwrap().lines();
        assert_eq!(lines[..2], ["from stderr", "first half"]);
        assert_eq!(lines[2].len(), TAIL_LINE_CHARS);
        for n in 0..100 {
            out.feed(format!("{n}\n").as_bytes(), &tail);
        }
        let lines = tail.lock().unwrap().lines();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "60");
    }

    #[test]
    fn missing_program_is_an_error_not_a_panic() {
        assert!(run(&mut cmd("/nonexistent/tool", ["x"])).is_err());
        assert!(run_tolerant(&mut cmd("/nonexistent/tool", ["x"])).is_none());
    }
}
