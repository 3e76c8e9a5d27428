//! The mount step: filesystems mounted under the target root.

use super::context::Context;
use crate::plan::{FsType, Mount};
use std::path::PathBuf;

/// Mounts every planned filesystem under the target root, in order.
pub fn run(ctx: &mut Context<'_>, step: &Mount) -> anyhow::Result<()> {
    for point in &step.mounts {
        let at = ctx.root.join(point.at.trim_start_matches('/'));
        ctx.mounts.mount_fs(
            &point.device,
            &at,
            point.fstype.as_str(),
            point.options.as_deref(),
        )?;
        if point.fstype == FsType::Vfat {
            ctx.esps
                .push(PathBuf::from(point.at.trim_start_matches('/')));
        }
    }
    Ok(())
}
