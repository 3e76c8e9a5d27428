//! The record step: the deployment record in the target, then the markers on the ESPs.

use super::context::Context;
use super::reentry::MARKER_PATH;
use crate::plan::system::record::{DeploymentRecord, RecordedImage};
use crate::plan::Record;

/// Writes `/etc/ocimetal/deployment.json`, leaves the chroot, and writes the marker on every
/// ESP last of all, so that a marker always means a complete install.
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
    ctx.host
        .write_file(&ctx.root.join(&step.path), file.contents.bytes(), file.mode)?;
    for esp in &step.markers {
        let path = ctx.root.join(esp.trim_start_matches('/')).join(MARKER_PATH);
        ctx.host
            .write_file(&path, file.contents.bytes(), file.mode)?;
    }
    Ok(())
}
