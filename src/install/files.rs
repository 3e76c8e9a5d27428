//! The files step: every rendered file written into the target.

use super::context::Context;
use crate::plan::Files;

/// Writes the step's files under the target root (paths come from our own renderers).
pub fn run(ctx: &mut Context<'_>, step: &Files) -> anyhow::Result<()> {
    for file in &step.files {
        ctx.host
            .write_file(&ctx.root, &file.path, file.contents.bytes(), file.mode)?;
        tracing::info!("files: /{} ({:o})", file.path.display(), file.mode);
    }
    Ok(())
}
