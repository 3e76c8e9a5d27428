//! `ocimetal pull IMAGE DIR`: the installer's own pull-and-apply path, usable alone.

/// Arguments of `ocimetal pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Image reference (`debian:13`, `registry:5000/x/y@sha256:…`).
    pub image: String,
    /// Destination root directory (created when missing).
    pub dir: std::path::PathBuf,
}

/// Runs `ocimetal pull`.
pub fn run(args: &PullArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("pull is not implemented yet")
}
