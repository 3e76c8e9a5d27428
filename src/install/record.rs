//! The record step: the deployment record, the plan and the install's journal in the target,
//! then the result file and the marker on every ESP; and the result file of a failed install.

use super::context::Context;
use super::reentry::MARKER_PATH;
use crate::host::exec::cmd;
use crate::host::Host;
use crate::plan::system::record::{rfc3339_utc, DeploymentRecord, RecordedImage};
use crate::plan::Record;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The short result of the last install, on every ESP (readable from any machine).
pub const RESULT_PATH: &str = "ocimetal/result.json";

/// Writes `/etc/ocimetal/deployment.json`, the plan and the journal so far, leaves the
/// chroot, flushes the root and every ESP to disk, and only then writes the result and the
/// marker on every ESP, flushing them too: a marker always means a complete install, also
/// after a power cut.
pub fn run(ctx: &mut Context<'_>, step: &Record) -> anyhow::Result<()> {
    ctx.leave_chroot()?;
    let record = DeploymentRecord::new(
        step.node_uuid.clone(),
        step.orders_hash.clone(),
        RecordedImage {
            reference: step.image.to_string(),
            digest: ctx.image_digest().to_string(),
            platform: step.platform.to_string(),
        },
        step.disks.clone(),
        ctx.started,
        SystemTime::now(),
    );
    let file = record.to_file()?;
    let host = ctx.host;
    host.write_file(
        &ctx.root,
        Path::new(&step.path),
        file.contents.bytes(),
        file.mode,
    )?;
    keep_logs(host, &ctx.root, Path::new(&step.log_dir), &ctx.plan_json)?;
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
    let result = serde_json::to_vec_pretty(&serde_json::json!({
        "result": "SUCCESS",
        "image": step.image,
        "digest": ctx.image_digest(),
        "finished_at": record.finished_at,
    }))?;
    for esp in &esps {
        host.write_file(&ctx.root, &esp.join(RESULT_PATH), &result, 0o644)?;
        host.write_file(
            &ctx.root,
            &esp.join(MARKER_PATH),
            file.contents.bytes(),
            file.mode,
        )?;
        host.sync_filesystem(&ctx.root.join(esp))?;
    }
    Ok(())
}

/// The plan and this boot's journal of the service (plain text and JSON, with the structured
/// fields) under `log_dir`, readable by root only. A journal that cannot be read is a warning.
fn keep_logs(host: &dyn Host, root: &Path, log_dir: &Path, plan: &[u8]) -> anyhow::Result<()> {
    host.write_file(root, &log_dir.join("plan.json"), plan, 0o600)?;
    for (format, name) in [("short-precise", "install.log"), ("json", "journal.json")] {
        let read = host.run(&mut cmd(
            "journalctl",
            ["-b", "-u", "ocimetal.service", "-o", format, "--no-pager"],
        ));
        match read {
            Ok(out) => host.write_file(root, &log_dir.join(name), out.stdout.as_bytes(), 0o600)?,
            Err(err) => tracing::warn!("the journal is not kept: {err:#}"),
        }
    }
    Ok(())
}

/// After a failed step: the result file on every ESP that is mounted, so the failure can be
/// read from the disk itself. Best effort: the install has failed already.
pub fn keep_failure(host: &dyn Host, root: &Path, esps: &[PathBuf], step: &str, error: &str) {
    let result = serde_json::json!({
        "result": "FAIL",
        "step": step,
        "error": error,
        "finished_at": rfc3339_utc(SystemTime::now()),
    });
    let Ok(bytes) = serde_json::to_vec_pretty(&result) else {
        return;
    };
    for esp in esps {
        let written = host
            .write_file(root, &esp.join(RESULT_PATH), &bytes, 0o644)
            .and_then(|()| host.sync_filesystem(&root.join(esp)));
        if let Err(err) = written {
            tracing::warn!("the result of the failed install is not kept: {err:#}");
        }
    }
}
