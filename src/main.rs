//! The `ocimetal` command line: `install`, `plan`, `pull`, `devices`, `iso`.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "ocimetal",
    version,
    about = "Install an OCI container image onto bare metal"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Gather orders and disks, plan, install, then reboot as ordered (what the service runs).
    Install(ocimetal::cli::InstallArgs),
    /// Decide and print everything an install would do; touches no disk.
    Plan(ocimetal::cli::PlanArgs),
    /// Pull an image and apply its layers into a directory.
    Pull(ocimetal::oci::cli::PullArgs),
    /// List the disks as the planner sees them.
    Devices(ocimetal::cli::DevicesArgs),
    /// Orders carried by the installer ISO: customize, show, reset.
    Iso(ocimetal::cli::iso::IsoArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Planning and listing print their answer on stdout; only warnings belong on stderr.
    let level = match cli.command {
        Command::Plan(_) | Command::Devices(_) | Command::Iso(_) => "warn",
        Command::Install(_) | Command::Pull(_) => "info",
    };
    let to_journal = ocimetal::logging::init(level, ocimetal::cli::debug_requested());
    let result = match &cli.command {
        Command::Install(args) => ocimetal::cli::run_install(args),
        Command::Plan(args) => ocimetal::cli::run_plan(args),
        Command::Pull(args) => ocimetal::oci::cli::run(args),
        Command::Devices(args) => ocimetal::cli::run_devices(args),
        Command::Iso(args) => ocimetal::cli::iso::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Invalid orders are the operator's to fix: status 2, as documented.
            let code = if err.downcast_ref::<ocimetal::error::OrderError>().is_some() {
                2
            } else if err.downcast_ref::<ocimetal::error::NoOrders>().is_some() {
                4
            } else {
                1
            };
            // One line, in one place: the journal (which feeds the console) or stderr. Text
            // quoted from outside may carry line breaks or terminal escapes: they become spaces.
            let line: String = format!("{err:#}")
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            if to_journal {
                tracing::error!("{line}");
            } else {
                eprintln!("ocimetal: {line}");
            }
            ExitCode::from(code)
        }
    }
}
