//! `ocimetal pull IMAGE DIR`: the installer's own pull-and-apply path, usable alone.

use super::{pull_into, resolve, Platform, PullOptions, RegistryMirror};
use crate::error::OrderError;
use anyhow::Context;
use std::path::PathBuf;

/// Arguments of `ocimetal pull`.
#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Platform to pull from multi-platform images (default: this machine's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Registry reached over plain HTTP; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Mirror tried before REGISTRY, e.g. docker.io=http://10.0.2.2:5000; repeatable.
    #[arg(long = "registry-mirror", value_name = "REGISTRY=URL")]
    pub registry_mirrors: Vec<String>,
    /// Docker config.json with registry credentials.
    #[arg(long, value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust besides the system ones.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Image reference (`debian:13`, `registry:5000/x/y@sha256:…`).
    pub image: String,
    /// Destination root directory (created when missing).
    pub dir: PathBuf,
}

impl PullArgs {
    /// The library options these arguments ask for.
    pub fn options(&self) -> Result<PullOptions, OrderError> {
        let platform = match &self.platform {
            Some(p) => p.parse::<Platform>()?,
            None => Platform::host(),
        };
        let mirrors = self
            .registry_mirrors
            .iter()
            .map(|m| parse_mirror(m))
            .collect::<Result<_, _>>()?;
        Ok(PullOptions {
            platform,
            insecure_registries: self.insecure_registries.clone(),
            mirrors,
            auth_file: self.auth_file.clone(),
            ca_file: self.ca_file.clone(),
            ..PullOptions::default()
        })
    }
}

fn parse_mirror(arg: &str) -> Result<RegistryMirror, OrderError> {
    match arg.split_once('=') {
        Some((registry, endpoint)) if !registry.is_empty() && !endpoint.is_empty() => {
            Ok(RegistryMirror {
                registry: registry.to_string(),
                endpoint: endpoint.to_string(),
            })
        }
        _ => Err(OrderError::new(
            "registry-mirror",
            format!("{arg:?} is not REGISTRY=URL, e.g. docker.io=http://10.0.2.2:5000"),
        )),
    }
}

/// Runs `ocimetal pull`: resolve first (no download), then create DIR and pull into it.
pub fn run(args: &PullArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let resolved = resolve(&args.image, &opts).await?;
        tracing::info!(
            reference = %resolved.reference,
            manifest = %resolved.manifest_digest,
            platform = %resolved.platform,
            layers = resolved.layers.len(),
            bytes = resolved.download_size(),
            source = %resolved.source,
            "image resolved"
        );
        std::fs::create_dir_all(&args.dir)
            .with_context(|| format!("cannot create {}", args.dir.display()))?;
        let report = pull_into(&resolved, &opts, &args.dir).await?;
        tracing::info!(
            layers = report.layers.len(),
            downloaded = report.downloaded_bytes,
            seconds = report.elapsed.as_secs_f64(),
            "pull complete"
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: PullArgs,
    }

    #[test]
    fn parses_all_options() {
        let w = Wrapper::parse_from([
            "x",
            "--platform",
            "linux/arm64/v8",
            "--insecure-registry",
            "a:5000",
            "--insecure-registry",
            "b",
            "--registry-mirror",
            "docker.io=http://m:5000",
            "--auth-file",
            "/a.json",
            "--ca-file",
            "/ca.pem",
            "ubuntu",
            "/mnt",
        ]);
        let opts = w.args.options().unwrap();
        assert_eq!(opts.platform.to_string(), "linux/arm64/v8");
        assert_eq!(opts.insecure_registries, ["a:5000", "b"]);
        assert_eq!(opts.mirrors[0].endpoint, "http://m:5000");
        assert_eq!(
            opts.auth_file.as_deref(),
            Some(std::path::Path::new("/a.json"))
        );
    }

    #[test]
    fn bad_platform_and_mirror_are_order_errors() {
        let w = Wrapper::parse_from(["x", "--platform", "amd64", "i", "/d"]);
        assert_eq!(w.args.options().unwrap_err().field, "platform");
        let w = Wrapper::parse_from(["x", "--registry-mirror", "docker.io", "i", "/d"]);
        assert_eq!(w.args.options().unwrap_err().field, "registry-mirror");
    }
}
