//! The validate and pull steps: the image resolved, its distribution checked from its top
//! layers and its layers downloading while the disks are prepared, then applied onto the
//! mounted root filesystem.

use super::context::{Context, PendingPull};
use super::phases::Flow;
use crate::error::OrderError;
use crate::host::systemd::notify_status;
use crate::host::{sysfs, Host};
use crate::oci::peek::{look_into, OsReleasePeek, PeekLimits};
use crate::oci::{ImageRef, ProgressObserver, PullOptions, ResolvedImage, VerifiedBlob};
use crate::plan::system::packages::{installable, no_os_release, OsRelease};
use crate::plan::{Pull, Validate};
use anyhow::Context as _;

/// Refuses targets in use, resolves the image, refuses an image whose distribution cannot be
/// installed and starts its downloads. A distribution that the look into the top layers
/// cannot tell is a warning: it is checked after the pull, as the packages are decided.
pub fn validate(ctx: &mut Context<'_>, step: &Validate) -> anyhow::Result<Flow> {
    refuse_busy_targets(ctx.host, &step.not_in_use)?;
    let options = pull_options(step);
    let resolved = ctx
        .runtime
        .block_on(crate::oci::resolve_image(&step.image, &options))?;
    tracing::info!("image {} is {}", step.image, resolved.manifest_digest);
    let (flow, verified_blobs) = check_distribution(ctx, &step.image, &resolved)?;
    // Layers download while the disks are prepared; they are applied once the root
    // filesystem is mounted. A failed install drops `target_ready`, which ends the pull.
    let (target_ready, target) = std::sync::mpsc::channel();
    let task = ctx.runtime.spawn({
        let resolved = resolved.clone();
        let options = PullOptions {
            layer_buffer: prefetch_buffer(available_memory(), options.parallel_downloads),
            // From the download's own thread: the service status is all it touches.
            progress: Some(ProgressObserver(std::sync::Arc::new(|done, total| {
                notify_status(&pull_status(done, total), true)
            }))),
            verified_blobs,
            ..options
        };
        async move { crate::oci::pull_when_ready(&resolved, &options, target).await }
    });
    ctx.resolved = Some(resolved);
    ctx.pull = Some(PendingPull { target_ready, task });
    Ok(flow)
}

/// Reads the image's os-release from its top layers (within [`PeekLimits`]) and refuses,
/// before anything is wiped, an image that [`installable`] refuses or that has none: the same
/// rule and words as the packages step after the pull. Gives the layers it read, verified,
/// for the pull to apply without downloading them again, within a quarter of the memory
/// available.
fn check_distribution(
    ctx: &Context<'_>,
    image: &ImageRef,
    resolved: &ResolvedImage,
) -> anyhow::Result<(Flow, Vec<VerifiedBlob>)> {
    let limits = PeekLimits {
        keep: available_memory() as u64 / 4,
        ..PeekLimits::default()
    };
    let peek = ctx
        .runtime
        .block_on(look_into(resolved, &limits))
        .map_err(|err| {
            anyhow::anyhow!(
                "{image}: reading its distribution from its layers failed: {err:#}; nothing \
                 was wiped"
            )
        })?;
    let refuse = |why: OrderError| -> anyhow::Error {
        OrderError::new(
            why.field,
            format!(
                "{image} cannot be installed: {}; nothing was wiped",
                why.problem
            ),
        )
        .into()
    };
    let kept = peek.kept;
    if !kept.is_empty() {
        tracing::info!(
            "kept {} MiB of verified layers in memory for the pull",
            kept.iter().map(|b| b.size()).sum::<u64>() >> 20
        );
    }
    let flow = match peek.os_release {
        OsReleasePeek::Found(text) => {
            let os = OsRelease::parse(&text);
            installable(&os).map_err(refuse)?;
            tracing::info!(
                "image {image}: {} (ID={}), read from its layers; installable",
                os.pretty_name.as_deref().unwrap_or(&os.id),
                os.id
            );
            Ok(Flow::Next)
        }
        OsReleasePeek::Absent => Err(refuse(no_os_release())),
        OsReleasePeek::Unknown(why) => {
            let warning = format!(
                "the distribution of {image} was not read from its layers before the wipe \
                 ({why}); it is checked after the pull"
            );
            tracing::warn!("{warning}");
            Ok(Flow::Warned(warning))
        }
    }?;
    Ok((flow, kept))
}

/// Hands the mounted root to the pull started by validate and waits for it.
pub fn apply(ctx: &mut Context<'_>, _step: &Pull) -> anyhow::Result<()> {
    let pull = ctx
        .pull
        .take()
        .context("the pull was not started: the plan has no validate step before it")?;
    // A pull that already ended (it failed) no longer listens; its own error is the one to
    // report, so it is awaited either way.
    let _ = pull.target_ready.send(ctx.root.clone());
    let report = ctx
        .runtime
        .block_on(pull.task)
        .context("the pull task failed")??;
    tracing::info!(
        "pull: {} layers, {} MiB downloaded, {} MiB kept from validate, {} entries, {} MiB \
         written in {:.1} s (downloads started with the disk preparation)",
        report.layers.len(),
        report.downloaded_bytes >> 20,
        report.reused_bytes >> 20,
        report.layers.iter().map(|l| l.entries).sum::<u64>(),
        report.layers.iter().map(|l| l.bytes).sum::<u64>() >> 20,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

/// `STATUS=` while the layers download (from the validate step on, alongside the disk
/// preparation): `image: 42% of 285 MiB in hand`, downloaded or kept from the distribution
/// check.
fn pull_status(done: u64, total: u64) -> String {
    format!(
        "image: {}% of {} MiB in hand",
        done * 100 / total.max(1),
        total >> 20
    )
}

/// How the pull reaches the registry, from the step.
fn pull_options(step: &Validate) -> PullOptions {
    let registry = &step.registry;
    PullOptions {
        platform: step.platform.clone(),
        insecure_registries: registry.insecure_registries.clone(),
        mirrors: registry.mirrors.clone(),
        auth_file: registry.auth_file.clone(),
        pull_secret: registry.pull_secret.clone(),
        ca_file: registry.ca_file.clone(),
        ..PullOptions::default()
    }
}

/// Refuses targets that hold a mounted filesystem: that would be the running system or the
/// installer's own media, which the inventory normally keeps out.
fn refuse_busy_targets(host: &dyn Host, disks: &[String]) -> anyhow::Result<()> {
    let sys = host.sys();
    let mountinfo = host.mountinfo();
    for disk in disks {
        let name = sysfs::kernel_name(disk);
        for dev in sysfs::partitions(&sys, &name)
            .iter()
            .chain(std::iter::once(&name))
        {
            let Some(number) = sysfs::dev_number(&sys, dev) else {
                continue;
            };
            if let Some(point) = sysfs::mountpoints_of(&mountinfo, &number).first() {
                anyhow::bail!(
                    "refusing to touch {disk}: /dev/{dev} is mounted on {point} (the running \
                     system or the installer's media); nothing was wiped"
                );
            }
        }
    }
    Ok(())
}

/// Least a layer may download ahead while the disks are being prepared.
const MIN_PREFETCH: usize = 8 << 20;

/// Compressed bytes each layer may download ahead of its application while the disks are
/// being prepared: a quarter of the available memory shared by the parallel downloads,
/// between 8 and 256 MiB per layer.
fn prefetch_buffer(available: usize, parallel: usize) -> usize {
    (available / 4 / parallel.max(1)).clamp(MIN_PREFETCH, 256 << 20)
}

/// Memory available now, from /proc/meminfo (0 when unreadable).
fn available_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text))
        .unwrap_or(0)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_status_shows_the_pull_in_percent() {
        assert_eq!(
            pull_status(120 << 20, 285 << 20),
            "image: 42% of 285 MiB in hand"
        );
        assert_eq!(pull_status(0, 0), "image: 0% of 0 MiB in hand");
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:        3000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2048 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_prefetch_buffer_is_a_share_of_a_quarter_of_the_memory_within_bounds() {
        const MIB: usize = 1 << 20;
        assert_eq!(prefetch_buffer(1200 * MIB, 3), 100 * MIB);
        assert_eq!(prefetch_buffer(64 * MIB, 3), MIN_PREFETCH);
        assert_eq!(prefetch_buffer(64 * 1024 * MIB, 3), 256 * MIB);
        assert_eq!(prefetch_buffer(0, 0), MIN_PREFETCH);
    }
}
