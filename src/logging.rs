//! Logging: the journal (structured, with priorities) under systemd, stderr otherwise.
//!
//! Under systemd the console also gets every line, so an operator watching a BMC console sees
//! progress and errors without logging in.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;
use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Sets up logging once: `level` is the default (`info`, `warn`), `debug` lowers it to DEBUG,
/// `OCIMETAL_LOG` overrides both. Returns true when records go to the journal (under systemd).
pub fn init(level: &str, debug: bool) -> bool {
    let level = if debug { "debug" } else { level };
    // A bare level is set as a directive rather than parsed as a filter text: parsing compiles
    // regular expressions, which costs tens of milliseconds at every start.
    let default = level.parse::<LevelFilter>().unwrap_or(LevelFilter::INFO);
    let filter = || {
        EnvFilter::try_from_env("OCIMETAL_LOG")
            .unwrap_or_else(|_| EnvFilter::default().add_directive(default.into()))
    };
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    // Fields keep their own names (`OCIMETAL_STEP`, not `F_OCIMETAL_STEP`) so that
    // `journalctl -u ocimetal -o json` can be scripted, and info is info (6), not notice.
    let journald = under_systemd
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|l| {
            l.with_field_prefix(None)
                .with_syslog_identifier("ocimetal".into())
                .with_priority_mappings(PriorityMappings {
                    info: Priority::Informational,
                    debug: Priority::Debug,
                    ..PriorityMappings::new()
                })
                .with_filter(filter())
        });
    // With the journal taking the structured records, the console gets a plain copy; without
    // a journal, stderr is the only sink.
    let console = if journald.is_some() {
        OpenOptions::new()
            .write(true)
            .open("/dev/console")
            .ok()
            .map(|f| {
                fmt::layer()
                    .with_writer(Mutex::new(f))
                    .with_target(false)
                    .without_time()
                    .with_ansi(false)
                    .fmt_fields(message_only())
                    .with_filter(filter())
                    .boxed()
            })
    } else {
        Some(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .fmt_fields(message_only())
                // Colour codes only for a person at a terminal, not in captured output.
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter())
                .boxed(),
        )
    };
    let to_journal = journald.is_some();
    let _ = tracing_subscriber::registry()
        .with(journald)
        .with(console)
        .try_init();
    to_journal
}

/// Console lines show the message alone: the structured fields are for the journal.
fn message_only() -> impl for<'w> fmt::FormatFields<'w> + 'static {
    fmt::format::debug_fn(|writer, field, value| match field.name() {
        "message" => write!(writer, "{value:?}"),
        _ => Ok(()),
    })
}
