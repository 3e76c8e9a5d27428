//! The record step: the deployment record in the target, then the markers on the ESPs.

use super::context::Context;
use super::reentry::MARKER_PATH;
use crate::plan::system::record::{DeploymentRecord, RecordedImage};
use crate::plan::Record;
use std::path::Path;

/// Writes `/etc/ocimetal/deployment.json`, leaves the chroot, flushes the root and every ESP
/// to disk, and only then writes the marker on every ESP, flushing it too: a marker always
/// means a complete install, also after a power cut.
pub fn run(ctx: &mut Context<'_>, step: &Record) -> anyhow::Result<()> {
    ctx.leave_chroot()?;
    let record = DeploymentRecord::new(
        step.node_uuid.clone(),
        step.orders_hash.clone(),
        RecordedImage {
            reference: step.image.clone(),
            digest: ctx.image_digest().to_string(),
            platform: step.platform.clone(),
        },
        step.disks.clone(),
        ctx.started,
        std::time::SystemTime::now(),
    );
    let file = record.to_file()?;
    let host = ctx.host;
    host.write_file(
        &ctx.root,
        Path::new(&step.path),
        file.contents.bytes(),
        file.mode,
    )?;
    host.sync_filesystem(&ctx.root)?;
    // The ESPs are filesystems we made and mounted: their mount points are ours.
    let esps: Vec<&Path> = step
        .markers
        .iter()
        .map(|esp| Path::new(esp.trim_start_matches('/')))
        .collect();
    for esp in &esps {
        host.sync_filesystem(&ctx.root.join(esp))?;
    }
    for esp in &esps {
        let marker = esp.join(MARKER_PATH);
        host.write_file(&ctx.root, &marker, file.contents.bytes(), file.mode)?;
        host.sync_filesystem(&ctx.root.join(esp))?;
    }
    Ok(())
}
