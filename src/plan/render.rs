//! The readable form of a plan, for `ocimetal plan` without `--json` and for the journal: the
//! main decisions, then one line per step, rendered from the steps themselves.

use super::step::*;
use super::Plan;
use std::fmt::Write;

const GIB: f64 = (1u64 << 30) as f64;

/// Renders the plan as a few aligned lines an operator can check at a glance.
pub fn render_summary(plan: &Plan) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key:<12} {value}");
    };
    line(
        "image",
        format!(
            "{} ({}) from {}",
            plan.image, plan.platform, plan.image_source
        ),
    );
    let disks = plan
        .disk_details
        .iter()
        .map(|d| {
            format!(
                "{} ({:.1} GiB, serial {}, wwn {})",
                d.name,
                d.size as f64 / GIB,
                d.serial.as_deref().unwrap_or("-"),
                d.wwn.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let chosen_by = plan
        .hints_source
        .as_deref()
        .map_or("the only eligible disk".to_string(), |s| {
            format!("hints from {s}")
        });
    line("disks", format!("{disks}; chosen by {chosen_by}"));
    let raid = plan.find(|s| match s {
        Step::Raid(array) => Some(array),
        _ => None,
    });
    line(
        "raid",
        match raid {
            Some(a) => format!(
                "RAID1 {} metadata {} bitmap {} homehost {}",
                a.device, a.metadata, a.bitmap, a.homehost
            ),
            None => "none".to_string(),
        },
    );
    line(
        "wipe",
        format!(
            "{} ({}): {}",
            format!("{:?}", plan.wipe_mode).to_lowercase(),
            plan.wipe_mode_source,
            plan.wipe.join(", ")
        ),
    );
    line(
        "hostname",
        plan.hostname
            .clone()
            .unwrap_or_else(|| "(from the image)".to_string()),
    );
    if let (Some(id), Some(source)) = (&plan.instance_id, &plan.instance_id_source) {
        line("instance id", format!("{id} ({source})"));
    }
    line(
        "configdrive",
        crate::config::merge::configdrive_shown(
            plan.configdrive.as_deref(),
            plan.configdrive_source.as_deref(),
        ),
    );
    if let Some(source) = &plan.user_data_source {
        line("user_data", format!("from {source} (content not shown)"));
    }
    line("then", format!("{:?}", plan.reboot).to_lowercase());
    let _ = writeln!(out, "steps:");
    for (n, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>2}. {:<12} {}",
            n + 1,
            step.name(),
            step_detail(step)
        );
    }
    out
}

/// What one step will do, in one line.
pub fn step_detail(step: &Step) -> String {
    match step {
        Step::Reentry(r) => format!(
            "read the deployment markers on {}: this deployment there → boot it (BootNext, \
             the entry made again if gone) and skip to the end; this node's from other orders \
             → stop (ocimetal.force reinstalls); otherwise install",
            r.esps()
                .into_iter()
                .map(|(_, esp)| esp)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::Validate(v) => format!(
            "refuse targets in use ({}); resolve {} for {} in the registry and start the layer \
             downloads",
            v.not_in_use.join(", "),
            v.image,
            v.platform
        ),
        Step::Wipe(w) => format!(
            "tear down holders (LVM, md) and wipe signatures on {}",
            w.devices.join(", ")
        ),
        Step::Partition(p) => p
            .disks
            .iter()
            .map(|disk| {
                let parts = disk
                    .partitions
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} {}..{} MiB",
                            p.device,
                            p.type_code,
                            p.start >> 20,
                            (p.start + p.size) >> 20
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("GPT on {}: {parts}", disk.disk)
            })
            .collect::<Vec<_>>()
            .join("; "),
        Step::Raid(a) => format!(
            "mdadm RAID{} {} (metadata {}, bitmap {}, homehost {}) on {}",
            a.level,
            a.device,
            a.metadata,
            a.bitmap,
            a.homehost,
            a.members.join(" + ")
        ),
        Step::Lvm(l) => format!("PV {}, VG {}, LV {} {}", l.pv, l.vg, l.lv, l.extents),
        Step::Mkfs(m) => m
            .filesystems
            .iter()
            .map(|f| format!("{} {} ({})", f.fstype.as_str(), f.device, f.label))
            .collect::<Vec<_>>()
            .join(", "),
        Step::Mount(m) => m
            .mounts
            .iter()
            .map(|p| format!("{} on {} ({})", p.device, p.at, p.fstype.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        Step::Pull(p) => format!(
            "apply {} ({}) onto the root filesystem",
            p.image, p.platform
        ),
        Step::Packages(Packages::DependsOnImage { rules, .. }) => format!(
            "depends on the image: apt-get install what it lacks of the rule for its \
             distribution ({}); nothing (no network) when it already has the kernel, GRUB, \
             initramfs-tools, LVM, cloud-init and an init (and mdadm, rsync for RAID1)",
            rules
                .iter()
                .map(|r| r.distro.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::Packages(Packages::Decided { install, purge, .. }) => {
            match (install.is_empty(), purge.is_empty()) {
                (true, true) => "nothing: the image has everything it needs".to_string(),
                _ => format!("install: {}; purge: {}", or_none(install), or_none(purge)),
            }
        }
        Step::Files(f) => {
            let mut text = format!("write {} files", f.files.len());
            if !f.edits.is_empty() {
                let _ = write!(
                    text,
                    " and, depending on the image, {}",
                    f.edits
                        .iter()
                        .map(|e| format!("/{}", super::system::assemble::edit_path(e)))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            text
        }
        Step::Initramfs(_) => "update-initramfs once, after every file is written; an image's \
                               own initramfs that already activates LVM and checks the root is kept on one disk"
            .to_string(),
        Step::Bootloader(b) => format!(
            "grub-install ({}) to {}{}; update-grub",
            b.installs.first().map_or("", |i| i.target.as_str()),
            b.installs
                .iter()
                .map(|i| i.esp.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            match b.installs.first().and_then(|i| i.removable.as_deref()) {
                Some(name) => format!(" with the removable fallback \\EFI\\BOOT\\{name}"),
                None => String::new(),
            }
        ),
        Step::KexecLoad(k) => format!(
            "kexec -l the newest installed kernel (root={}, this boot's consoles)",
            k.root
        ),
        Step::Record(r) => format!(
            "write /{}, the plan and the journal to /{}, flush, and last of all the result \
             and the marker on {}",
            r.path,
            r.log_dir,
            r.markers.join(", ")
        ),
        Step::Finish(f) => match &f.raid {
            Some(array) => format!("unmount everything, deactivate {} and stop {array}", f.vg),
            None => format!("unmount everything and deactivate {}", f.vg),
        },
        Step::EfiEntries(e) => format!(
            "{}; first in BootOrder, BootNext = primary",
            e.entries
                .iter()
                .map(|e| format!(
                    "{:?} on {} part {} {}",
                    e.label, e.disk, e.partition, e.loader
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Step::Power(p) => format!("{:?}", p.action).to_lowercase(),
    }
}

fn or_none(list: &[String]) -> String {
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(" ")
    }
}

/// A file the install would write, as `ocimetal plan --render` shows it.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    pub file: super::system::TargetFile,
    /// An edit of a file the image brings: rendered here as if the image had none of it.
    pub edit: bool,
}

/// Every file of the plan's files step, the edits rendered against an image without those
/// files (and, for RAID1, before the array exists: mdadm.conf without its `ARRAY` line).
pub fn rendered_files(plan: &Plan) -> Vec<RenderedFile> {
    let Some(planned) = plan.find(|s| match s {
        Step::Files(files) => Some(files),
        _ => None,
    }) else {
        return Vec::new();
    };
    let own = planned.files.len();
    let refined = super::refine(&Step::Files(planned.clone()), &Default::default());
    let Ok(Step::Files(all)) = refined else {
        unreachable!("a files step refines into a files step")
    };
    all.files
        .into_iter()
        .enumerate()
        .map(|(index, file)| RenderedFile {
            file,
            edit: index >= own,
        })
        .collect()
}
