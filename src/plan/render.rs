//! The readable form of a plan, for `ocimetal plan` without `--json` and for the journal.

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
    line(
        "raid",
        match &plan.raid_array {
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
    for disk in &plan.layout {
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
        line("gpt", format!("{}: {parts}", disk.disk));
    }
    line(
        "lvm",
        format!(
            "{} on {} ({})",
            plan.lvm.lv_path, plan.lvm.pv, plan.lvm.extents
        ),
    );
    for fs in &plan.filesystems {
        line(
            "mkfs",
            format!(
                "{} {} label {} at {}",
                fs.fstype, fs.device, fs.label, fs.mountpoint
            ),
        );
    }
    line(
        "hostname",
        plan.hostname
            .clone()
            .unwrap_or_else(|| "(from the image)".to_string()),
    );
    for set in &plan.packages {
        line(
            "packages",
            format!("{}: {}", set.distro, set.packages.join(" ")),
        );
    }
    for entry in &plan.boot_entries {
        line(
            "efi entry",
            format!(
                "{:?} {} part {} {}",
                entry.label, entry.disk, entry.partition, entry.loader
            ),
        );
    }
    line("then", format!("{:?}", plan.reboot).to_lowercase());
    let _ = writeln!(out, "steps:");
    for (n, step) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {:>2}. {:<12} {}", n + 1, step.name, step.detail);
    }
    out
}
