//! The executor: runs the plan's steps, exactly those and in that order, one small logged
//! module per kind of step, through a [`Host`]. Mounts are undone and the storage stack is
//! deactivated whatever happens.

pub mod apt;
pub mod bootloader;
pub mod chroot;
mod context;
pub mod efi;
mod files;
mod mount;
pub mod partition;
mod phases;
mod power;
mod pull;
mod record;
pub mod reentry;
pub mod stack;
pub mod wipe;

use crate::host::Host;
use crate::plan::{refine, step_detail, Plan, Step};
use context::Context;
use phases::Phases;
use std::path::Path;

pub use context::TARGET_ROOT;

/// Runs every step of `plan` on `host`, with the target root mounted at `root`. Errors leave
/// the machine up, with everything unmounted and deactivated.
pub fn execute(plan: &Plan, host: &dyn Host, root: &Path) -> anyhow::Result<()> {
    let mut ctx = Context::new(host, root)?;
    let mut phases = Phases::default();
    for planned in &plan.steps {
        if let Step::Power(_) = planned {
            tracing::info!(
                "installed {} ({}) on {}; {}",
                plan.image,
                ctx.image_digest(),
                plan.disks.join(" + "),
                phases.summary()
            );
            host.notify("installed", true);
        }
        let skip_to_end = phases.run(host, planned.name(), || {
            ctx.observe(planned)?;
            let step = refine(planned, &ctx.facts)?;
            if planned.depends_on_image() {
                tracing::info!("{}: decided: {}", step.name(), step_detail(&step));
            }
            run_step(&mut ctx, &step)
        })?;
        if skip_to_end {
            // The disk already holds this deployment: only the power action is left.
            if let Some(power @ Step::Power(_)) = plan.steps.last() {
                run_step(&mut ctx, power)?;
            }
            return Ok(());
        }
    }
    Ok(())
}

/// Runs one step; true when the rest of the install is to be skipped (re-entry).
fn run_step(ctx: &mut Context<'_>, step: &Step) -> anyhow::Result<bool> {
    let host = ctx.host;
    match step {
        Step::Reentry(s) => return Ok(reentry::run(host, s)),
        Step::Validate(s) => pull::validate(ctx, s)?,
        Step::Wipe(s) => wipe::wipe_disks(host, &s.devices)?,
        Step::Partition(s) => partition::run(host, s)?,
        Step::Raid(s) => {
            ctx.storage.raid = Some(s.device.clone());
            stack::create_raid(host, s)?
        }
        Step::Lvm(s) => {
            ctx.storage.vg = Some(s.vg.clone());
            stack::create_lvm(host, s)?
        }
        Step::Mkfs(s) => stack::make_filesystems(host, &s.filesystems)?,
        Step::Mount(s) => mount::run(ctx, s)?,
        Step::Pull(s) => pull::apply(ctx, s)?,
        Step::Packages(s) => apt::run(ctx.chroot()?, s)?,
        Step::Files(s) => files::run(ctx, s)?,
        Step::Initramfs(s) => bootloader::build_initramfs(ctx.chroot()?, s.raid)?,
        Step::Bootloader(s) => {
            let os_id = ctx.facts.os_id().to_string();
            let shim = bootloader::run(ctx.chroot()?, s, &os_id)?;
            ctx.facts.shim_on_esp = Some(shim);
        }
        Step::KexecLoad(s) => ctx.kexec = Some(power::load_kexec(host, &ctx.root, s)?),
        Step::Record(s) => record::run(ctx, s)?,
        Step::Finish(s) => ctx.finish(s)?,
        Step::EfiEntries(s) => match efi::ensure_entries(host, &s.entries) {
            Ok(numbers) => tracing::info!("efi: entries {}", numbers.join(", ")),
            // The removable fallback path is on every ESP: the disk still boots.
            Err(err) => {
                tracing::warn!("EFI entries not written ({err:#}); firmware will use \\EFI\\BOOT")
            }
        },
        Step::Power(s) => power::run(host, s.action, ctx.kexec.take())?,
    }
    Ok(false)
}
