//! The `ocimetal` command line: `install`, `plan`, `pull`, `devices`.

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
    /// Pull an image and apply its layers into a directory.
    Pull(ocimetal::oci::cli::PullArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Pull(args) => ocimetal::oci::cli::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Invalid orders are the operator's to fix: status 2, as documented.
            let code = if err.downcast_ref::<ocimetal::error::OrderError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("ocimetal: {err:#}");
            ExitCode::from(code)
        }
    }
}
