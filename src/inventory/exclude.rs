//! Which devices are never install targets, and why.
//!
//! Kinds that are not disks (loop, RAM, md, dm, optical...), read-only or empty devices, the
//! configuration drive (by label, or named by `ocimetal.configdrive=`), the installer's own
//! boot media, and every disk under a mounted
//! filesystem: wiping any of those would destroy the orders or the running system.

use super::{Found, ScanRoots, BOOT_MEDIA_ARG, BOOT_MEDIA_LABEL, CONFIG_DRIVE_LABEL};
use crate::host::cmdline::{self, Key};
use crate::host::escape::decode_hex_escapes;
use crate::host::{mountinfo, sysfs};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// For each device of `found` (same order), the reasons to exclude it; empty means a candidate.
pub(super) fn reasons(roots: &ScanRoots, found: &[Found]) -> Vec<Vec<String>> {
    let owners = Owners::new(found);
    let mut reasons: Vec<Vec<String>> = found.iter().map(intrinsic_reasons).collect();
    let mut add = |disk: &str, reason: String| {
        if let Some(index) = found.iter().position(|device| device.name == disk) {
            if !reasons[index].contains(&reason) {
                reasons[index].push(reason);
            }
        }
    };

    for (holder, label, kind) in labelled(roots, found, &owners) {
        if label.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL) {
            if holder.name != holder.disk && is_fixed_disk(found, &holder.disk) {
                // A configdrive partition on a fixed disk is what an earlier deploy left
                // (IPA writes one at the end of its target): orders arrive on removable or
                // virtual media, so that disk stays a candidate.
                continue;
            }
            add(
                &holder.disk,
                format!(
                    "configuration drive ({kind} labelled {label} on {})",
                    holder.name
                ),
            );
        } else if label.eq_ignore_ascii_case(BOOT_MEDIA_LABEL) {
            add(
                &holder.disk,
                format!(
                    "installer boot media ({kind} labelled {label} on {})",
                    holder.name
                ),
            );
        }
    }

    for value in values(&roots.cmdline, Key::BootMedia) {
        if let Some(holder) = owners.resolve_path(&roots.dev, &value) {
            add(
                &holder.disk,
                format!("installer boot media ({BOOT_MEDIA_ARG}={value})"),
            );
        }
    }

    // A configdrive named on the command line is read like the config-2 medium, whatever
    // its label: it is never a target nor wiped.
    for value in values(&roots.cmdline, Key::Configdrive) {
        if let Some(holder) = owners.resolve_path(&roots.dev, &value) {
            add(
                &holder.disk,
                format!("configuration drive ({}={value})", Key::Configdrive.param()),
            );
        }
    }

    for mount in mountinfo::parse_mountinfo(&roots.mountinfo) {
        let device = owners
            .by_devno
            .get(&mount.major_minor)
            .cloned()
            .or_else(|| {
                mount
                    .source
                    .as_deref()
                    .and_then(|source| owners.resolve_path(&roots.dev, source))
                    .map(|holder| holder.name)
            });
        let Some(device) = device else { continue };
        for disk in owners.disks_below(&roots.sys, &device) {
            add(
                &disk,
                format!(
                    "holds a mounted filesystem ({} on {device})",
                    mount.mount_point
                ),
            );
        }
    }
    reasons
}

/// A disk that is neither removable nor on USB: where an earlier install lives, not where
/// orders arrive.
fn is_fixed_disk(found: &[Found], disk: &str) -> bool {
    let Some(device) = found.iter().find(|d| d.name == disk) else {
        return false;
    };
    let usb_by_udev = device
        .udev
        .as_ref()
        .is_some_and(|u| u.get("ID_BUS") == Some("usb"));
    !sysfs::removable_or_usb(&device.dir) && !usb_by_udev
}

/// Reasons that follow from the device alone: its kind, read-only flag and size.
fn intrinsic_reasons(device: &Found) -> Vec<String> {
    let mut reasons = Vec::new();
    if let Some(kind) = non_disk_kind(&device.name, &device.dir) {
        reasons.push(kind.to_owned());
    }
    // lsblk (hence IPA) skips hidden devices: the per-path nodes of NVMe multipath.
    if sysfs::read_u64(&device.dir.join("hidden")) == Some(1) {
        reasons.push("hidden (a path of a multipath NVMe namespace)".to_owned());
    }
    if sysfs::read_u64(&device.dir.join("ro")) == Some(1) {
        reasons.push("read-only".to_owned());
    }
    if sysfs::read_u64(&device.dir.join("size")).unwrap_or(0) == 0 {
        reasons.push("size 0 (no medium)".to_owned());
    }
    reasons
}

/// Kernel devices that are block devices but never install targets.
fn non_disk_kind(name: &str, dir: &Path) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        ("loop", "loop device"),
        ("zram", "compressed RAM disk"),
        ("ram", "RAM disk"),
        ("md", "software RAID (md) device"),
        ("dm-", "device-mapper device"),
        ("sr", "optical drive"),
        ("fd", "floppy drive"),
    ];
    if let Some((_, kind)) = KINDS.iter().find(|(prefix, _)| name.starts_with(prefix)) {
        return Some(kind);
    }
    // SCSI peripheral type 5 is a CD/DVD drive whatever its name.
    (sysfs::read_trimmed(&dir.join("device/type")).as_deref() == Some("5"))
        .then_some("optical drive")
}

/// A kernel device (disk or partition) and the disk it belongs to.
#[derive(Debug, Clone)]
struct Holder {
    name: String,
    disk: String,
}

/// Maps kernel names and device numbers of disks and partitions to their disk.
struct Owners {
    disk_of: HashMap<String, String>,
    by_devno: HashMap<String, String>,
}

impl Owners {
    fn new(found: &[Found]) -> Self {
        let mut disk_of = HashMap::new();
        let mut by_devno = HashMap::new();
        for device in found {
            disk_of.insert(device.name.clone(), device.name.clone());
            if let Some(devno) = &device.major_minor {
                by_devno.insert(devno.clone(), device.name.clone());
            }
            for (partition, _) in &device.partitions {
                disk_of.insert(partition.name.clone(), device.name.clone());
                by_devno.insert(partition.major_minor.clone(), partition.name.clone());
            }
        }
        Self { disk_of, by_devno }
    }

    fn holder(&self, name: &str) -> Option<Holder> {
        self.disk_of.get(name).map(|disk| Holder {
            name: name.to_owned(),
            disk: disk.clone(),
        })
    }

    /// Resolves `/dev/...` (following links under the `/dev` root) or a bare kernel name.
    fn resolve_path(&self, dev_root: &Path, value: &str) -> Option<Holder> {
        let name = match value.strip_prefix("/dev/") {
            Some(relative) => {
                let path = dev_root.join(relative);
                let resolved = std::fs::canonicalize(&path).unwrap_or(path);
                resolved.file_name()?.to_str()?.to_owned()
            }
            None => value.to_owned(),
        };
        self.holder(&name)
    }

    /// The disks under kernel device `name`, through partitions and stacked devices
    /// (`slaves/` of md and dm), so that a mounted LV protects its physical disks.
    fn disks_below(&self, sys: &Path, name: &str) -> Vec<String> {
        let mut disks = Vec::new();
        let mut seen = HashSet::new();
        let mut pending = vec![name.to_owned()];
        while let Some(current) = pending.pop() {
            let Some(disk) = self.disk_of.get(&current).cloned() else {
                continue;
            };
            if !seen.insert(disk.clone()) {
                continue;
            }
            // Members of a stacked device are listed on the whole device, also for md0p1.
            pending.extend(sysfs::slaves_in(&sys.join("block").join(&disk)));
            disks.push(disk);
        }
        disks
    }
}

/// Every (device, label, "filesystem"/"partition") found in udev data or `/dev/disk/by-*label`.
fn labelled(
    roots: &ScanRoots,
    found: &[Found],
    owners: &Owners,
) -> Vec<(Holder, String, &'static str)> {
    let mut labels = Vec::new();
    for device in found {
        let entries = std::iter::once((device.name.as_str(), device.udev.as_ref())).chain(
            device
                .partitions
                .iter()
                .map(|(partition, udev)| (partition.name.as_str(), udev.as_ref())),
        );
        for (name, udev) in entries {
            let Some(udev) = udev else { continue };
            let holder = Holder {
                name: name.to_owned(),
                disk: device.name.clone(),
            };
            if let Some(label) = udev.fs_label() {
                labels.push((holder.clone(), label, "filesystem"));
            }
            if let Some(label) = udev.partition_label() {
                labels.push((holder, label, "partition"));
            }
        }
    }
    for (dir, kind) in [
        ("disk/by-label", "filesystem"),
        ("disk/by-partlabel", "partition"),
    ] {
        let Ok(entries) = std::fs::read_dir(roots.dev.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Some(link) = entry.file_name().to_str().map(decode_hex_escapes) else {
                continue;
            };
            let target = std::fs::canonicalize(entry.path()).ok();
            let holder = target
                .as_deref()
                .and_then(Path::file_name)
                .and_then(|name| name.to_str())
                .and_then(|name| owners.holder(name));
            if let Some(holder) = holder {
                labels.push((holder, link, kind));
            }
        }
    }
    labels
}

/// Non-empty values of `key` on the kernel command line.
fn values(cmdline: &str, key: Key) -> Vec<String> {
    cmdline::values_of(cmdline, key)
        .into_iter()
        .flatten()
        .filter(|value| !value.is_empty())
        .collect()
}
