//! The executor: runs the plan's steps, exactly those and in that order, one small logged
//! module per kind of step, through a [`Host`]. Mounts are undone and the storage stack is
//! deactivated whatever happens.

pub mod apt;
mod apt_progress;
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

use crate::config::FailureAction;
use crate::host::exec::{CommandFailed, TAIL_LINES};
use crate::host::report::{Event, Outcome};
use crate::host::Host;
use crate::plan::{refine, step_detail, Plan, Step};
use context::Context;
use phases::{Flow, Phases};
use std::path::Path;

pub use context::TARGET_ROOT;

/// How long queued events may take to reach the webhook before a reboot or a failed exit.
const REPORT_FLUSH: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs every step of `plan` on `host`, with the target root mounted at `root`. Errors leave
/// the machine up, with everything unmounted and deactivated. The operator's webhook gets a
/// `start` and a `finish` event per step and for the whole install.
pub fn execute(plan: &Plan, host: &dyn Host, root: &Path) -> anyhow::Result<()> {
    host.report(&Event::start(
        "ocimetal",
        format!("install {} on {}", plan.image, plan.disks.join(" + ")),
    ));
    let mut phases = Phases::default();
    let result = run_steps(plan, host, root, &mut phases);
    if let Err(err) = &result {
        end_failed(host, &failure_event(err, &phases), plan.on_failure);
    }
    result
}

/// The orders cannot be read or planned on this machine (`why`, one line): nothing was
/// touched, the webhook hears why (the final `ocimetal` event, `FAIL`, with the `error`
/// line), and `on_failure` applies as after a failed step, so that an operator who watches
/// only the webhook or the power state learns it too.
pub fn refuse(host: &dyn Host, why: &str, on_failure: FailureAction) {
    let event = Event::finish("ocimetal", Outcome::Fail, format!("nothing touched: {why}"))
        .with("error", why.into());
    end_failed(host, &event, on_failure);
}

/// A dry run: the webhook hears the plan in the final `ocimetal` event (`SUCCESS`, field
/// `plan`), which, unlike the console, a program can read whole.
pub fn report_dry_run(host: &dyn Host, plan: &Plan) -> anyhow::Result<()> {
    let event = Event::finish(
        "ocimetal",
        Outcome::Success,
        format!(
            "dry run: would install {} on {}; nothing touched",
            plan.image,
            plan.disks.join(" + ")
        ),
    )
    .with("plan", serde_json::to_value(plan)?);
    host.report(&event);
    host.flush_reports(REPORT_FLUSH);
    Ok(())
}

/// Reports a failure's final event, waits for its delivery, then does what `on_failure` says.
fn end_failed(host: &dyn Host, event: &Event, on_failure: FailureAction) {
    host.report(event);
    host.flush_reports(REPORT_FLUSH);
    let unit = match on_failure {
        FailureAction::Stay => None,
        FailureAction::Poweroff => Some("poweroff.target"),
        FailureAction::Reboot => Some("reboot.target"),
    };
    if let Some(unit) = unit {
        tracing::error!("ocimetal failed: {}", event.description);
        tracing::info!("ocimetal.on_failure: {unit}");
        if let Err(power) = host.start_power_unit(unit) {
            tracing::warn!("{power:#}");
        }
    }
}

/// When the orders cannot be planned on today's disks (a RAID1 member died, the hints no
/// longer match): if this deployment is on one of them, boot it instead of failing in the
/// ramdisk. `Ok(true)` when the machine is on its way to the installed system.
pub fn boot_installed_instead(
    host: &dyn Host,
    step: &crate::plan::Reentry,
    reboot: crate::config::RebootAction,
    why: &crate::error::OrderError,
) -> anyhow::Result<bool> {
    tracing::warn!(
        "the orders cannot be planned on these disks ({why}); looking for this deployment on them"
    );
    match reentry::run(host, step) {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(err) => {
            tracing::error!("{err:#}");
            return Ok(false);
        }
    }
    host.report(&Event::finish(
        "ocimetal",
        Outcome::Success,
        format!("already deployed: booting the installed system (the orders cannot be planned on these disks: {why})"),
    ));
    host.flush_reports(REPORT_FLUSH);
    let reboot = match reboot {
        crate::config::RebootAction::Kexec => crate::config::RebootAction::Reboot,
        other => other,
    };
    power::run(host, reboot, None)?;
    Ok(true)
}

fn run_steps(plan: &Plan, host: &dyn Host, root: &Path, phases: &mut Phases) -> anyhow::Result<()> {
    let mut ctx = Context::new(host, root, serde_json::to_vec_pretty(plan)?)?;
    for planned in &plan.steps {
        if let Step::Power(_) = planned {
            tracing::info!(
                ocimetal_result = "SUCCESS",
                ocimetal_image = %plan.image,
                ocimetal_image_digest = ctx.image_digest(),
                ocimetal_disks = plan.disks.join(" "),
                "installed {} ({}) on {}; {}",
                plan.image,
                ctx.image_digest(),
                plan.disks.join(" + "),
                phases.summary()
            );
            host.notify("installed", true);
            host.report(&success_event(plan, &ctx, phases));
            host.flush_reports(REPORT_FLUSH);
        }
        let ran = phases.run(host, planned.name(), &step_detail(planned), || {
            ctx.observe(planned)?;
            let step = refine(planned, &ctx.facts)?;
            if planned.depends_on_image() {
                tracing::info!("{}: decided: {}", step.name(), step_detail(&step));
            }
            run_step(&mut ctx, &step)
        });
        let flow = match ran {
            Ok(flow) => flow,
            Err(err) => {
                let esps = std::mem::take(&mut ctx.esps);
                record::keep_failure(host, root, &esps, planned.name(), &format!("{err:#}"));
                return Err(err);
            }
        };
        if flow == Flow::SkipToEnd {
            host.report(&Event::finish(
                "ocimetal",
                Outcome::Success,
                "already deployed: booting the installed system",
            ));
            host.flush_reports(REPORT_FLUSH);
            // The disk already holds this deployment: only the power action is left.
            if let Some(power @ Step::Power(_)) = plan.steps.last() {
                run_step(&mut ctx, power)?;
            }
            return Ok(());
        }
    }
    Ok(())
}

/// The final event of a complete install: the deployment record's facts and the durations.
fn success_event(plan: &Plan, ctx: &Context<'_>, phases: &Phases) -> Event {
    let record = serde_json::json!({
        "node_uuid": plan.steps.iter().find_map(|s| match s {
            Step::Record(r) => r.node_uuid.clone(),
            _ => None,
        }),
        "image": plan.image,
        "digest": ctx.image_digest(),
        "platform": plan.platform,
        "disks": plan.disk_details.iter().map(|d| serde_json::json!({
            "device": d.name, "serial": d.serial, "wwn": d.wwn, "size": d.size,
        })).collect::<Vec<_>>(),
        "raid": plan.raid,
    });
    Event::finish(
        "ocimetal",
        Outcome::Success,
        format!("installed {} ({})", plan.image, ctx.image_digest()),
    )
    .with("record", record)
    .with("durations", phases.durations())
}

/// The final event of a failed install: the error line and the failing command's last lines.
fn failure_event(err: &anyhow::Error, phases: &Phases) -> Event {
    let line = format!("{err:#}");
    let tail = err
        .chain()
        .find_map(|e| e.downcast_ref::<CommandFailed>())
        .map(|failed| failed.tail[failed.tail.len().saturating_sub(TAIL_LINES)..].to_vec())
        .unwrap_or_default();
    Event::finish("ocimetal", Outcome::Fail, line.clone())
        .with("error", line.into())
        .with("output_tail", tail.into())
        .with("durations", phases.durations())
}

/// Runs one step.
fn run_step(ctx: &mut Context<'_>, step: &Step) -> anyhow::Result<Flow> {
    let host = ctx.host;
    match step {
        Step::Reentry(s) => {
            if reentry::run(host, s)? {
                return Ok(Flow::SkipToEnd);
            }
        }
        Step::Validate(s) => return pull::validate(ctx, s),
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
        Step::EfiEntries(s) => {
            match efi::ensure_entries(host, &efi::checked_entries(host, &s.entries)) {
                Ok(numbers) => tracing::info!("efi: entries {}", numbers.join(", ")),
                // The removable fallback path is on every ESP: the disk still boots.
                Err(err) => {
                    let warning =
                        format!("EFI entries not written ({err:#}); firmware will use \\EFI\\BOOT");
                    tracing::warn!("{warning}");
                    return Ok(Flow::Warned(warning));
                }
            }
        }
        Step::Power(s) => power::run(host, s.action, ctx.kexec.take())?,
    }
    Ok(Flow::Next)
}
