//! Reading sysfs: attributes, partitions, holders and members of block devices, and the order
//! the kernel gives their names.
//!
//! Functions taking `sys` look below a sysfs mount (`/sys`, or a fake tree in tests); those
//! taking a directory read that device's own directory (`/sys/block/<name>`).

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

pub use super::mountinfo::{mountpoints_of, parse_mountinfo, MountEntry};

/// Whether the disk at `disk_dir` (`/sys/block/NAME` or its real path) is removable media or
/// sits on a USB bus: where orders and installers arrive, not where an install lives.
pub fn removable_or_usb(disk_dir: &Path) -> bool {
    read_u64(&disk_dir.join("removable")) == Some(1)
        || fs::canonicalize(disk_dir).is_ok_and(|real| {
            real.components()
                .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"))
        })
}

/// Reads a sysfs attribute, trimmed; `None` when missing or blank.
pub fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Reads a numeric sysfs attribute.
pub fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// One `KEY=VALUE` of a device's `uevent` file, e.g. `DEVNAME`.
pub fn uevent_value(device_dir: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(device_dir.join("uevent")).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    })
}

/// Kernel name of a device path: `/dev/sda` → `sda`, `/dev/md0` → `md0`. Follows
/// `/dev/disk/by-*` and `/dev/VG/LV` symlinks.
pub fn kernel_name(device: &str) -> String {
    let resolved = fs::canonicalize(device).unwrap_or_else(|_| PathBuf::from(device));
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| device.trim_start_matches("/dev/").to_string())
}

/// One partition of a disk, as sysfs lists it under the disk's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`, `nvme0n1p2`.
    pub name: String,
    /// `major:minor`, the key of the udev database and of mountinfo.
    pub major_minor: String,
}

/// The partitions of the disk at `disk_dir` that have a device number, in kernel order.
pub fn partitions_in(disk_dir: &Path) -> Vec<Partition> {
    partition_dirs(disk_dir)
        .into_iter()
        .filter_map(|(name, dir)| {
            Some(Partition {
                name,
                major_minor: read_trimmed(&dir.join("dev"))?,
            })
        })
        .collect()
}

/// Partitions of a whole disk, by kernel name (`sda1`, `nvme0n1p2`...), in kernel order.
pub fn partitions(sys: &Path, disk: &str) -> Vec<String> {
    partition_dirs(&sys.join("block").join(disk))
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Sub-directories of a disk's directory holding a `partition` attribute, in kernel order.
fn partition_dirs(disk_dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = fs::read_dir(disk_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.path().join("partition").is_file())
        .filter_map(|entry| Some((entry.file_name().to_str()?.to_owned(), entry.path())))
        .collect();
    found.sort_by(|a, b| kernel_name_order(&a.0, &b.0));
    found
}

/// Devices stacked directly on `name` (dm-N, mdN), by kernel name.
pub fn holders(sys: &Path, name: &str) -> Vec<String> {
    entry_names(&sys.join("class/block").join(name).join("holders"))
}

/// The whole disk a block device belongs to: `sda2` → `sda`; a disk (or md, dm) is its own.
pub fn whole_disk(sys: &Path, name: &str) -> String {
    let dir = sys.join("class/block").join(name);
    if !dir.join("partition").is_file() {
        return name.to_string();
    }
    // class/block/sda2 links to …/block/sda/sda2: the parent directory is the disk.
    fs::canonicalize(&dir)
        .ok()
        .and_then(|real| real.parent()?.file_name()?.to_str().map(str::to_owned))
        .unwrap_or_else(|| name.to_string())
}

/// Every device stacked on `name`, at any depth, the deepest first (the order to take them
/// down in).
pub fn stacked_on(sys: &Path, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for holder in holders(sys, name) {
        out.extend(stacked_on(sys, &holder));
        if !out.contains(&holder) {
            out.push(holder);
        }
    }
    out
}

/// Members (slaves) of a stacked device, by kernel name.
pub fn slaves(sys: &Path, name: &str) -> Vec<String> {
    slaves_in(&sys.join("class/block").join(name))
}

/// Members (slaves) of the stacked device at `device_dir`, e.g. the disks of `md0`.
pub fn slaves_in(device_dir: &Path) -> Vec<String> {
    entry_names(&device_dir.join("slaves"))
}

/// Sorted names in a directory; none when it does not exist.
pub fn entry_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

/// `major:minor` of a block device by kernel name.
pub fn dev_number(sys: &Path, name: &str) -> Option<String> {
    read_trimmed(&sys.join("class/block").join(name).join("dev"))
}

/// Orders kernel names as the kernel allocates them: chunk by chunk, numbers by value, and
/// letter suffixes of one family shorter first, so `nvme2n1` < `nvme10n1` < `sda` and
/// `sdz` < `sdaa`.
pub fn kernel_name_order(a: &str, b: &str) -> Ordering {
    chunks(a).cmp(&chunks(b))
}

/// A run of letters or digits of a kernel name; letters sort before digits.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Chunk<'a> {
    /// Letters: by family (first two letters, `sd`, `vd`, `nv`...), then length, then text.
    Letters(&'a str, usize, &'a str),
    /// Digits: by value (as length without leading zeros, then text), then as written.
    Digits(usize, &'a str, &'a str),
}

fn chunks(name: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = name;
    while let Some(first) = rest.chars().next() {
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        out.push(if digits {
            let value = run.trim_start_matches('0');
            Chunk::Digits(value.len(), value, run)
        } else {
            let family = run.get(..2).unwrap_or(run);
            Chunk::Letters(family, run.len(), run)
        });
        rest = tail;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_holders_come_from_sysfs() {
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("block/sda");
        for part in ["sda1", "sda2"] {
            fs::create_dir_all(disk.join(part)).unwrap();
            fs::write(disk.join(part).join("partition"), "1").unwrap();
        }
        fs::create_dir_all(disk.join("queue")).unwrap();
        assert_eq!(partitions(sys.path(), "sda"), vec!["sda1", "sda2"]);
        let holders_dir = sys.path().join("class/block/sda2/holders");
        fs::create_dir_all(holders_dir.join("md0")).unwrap();
        assert_eq!(holders(sys.path(), "sda2"), vec!["md0"]);
        assert!(holders(sys.path(), "sda1").is_empty());
    }

    #[test]
    fn partitions_come_in_kernel_order_with_their_numbers() {
        let sys = tempfile::tempdir().unwrap();
        let disk = sys.path().join("block/nvme0n1");
        for (part, dev) in [("nvme0n1p10", "259:10"), ("nvme0n1p2", "259:2")] {
            fs::create_dir_all(disk.join(part)).unwrap();
            fs::write(disk.join(part).join("partition"), "1").unwrap();
            fs::write(disk.join(part).join("dev"), format!("{dev}\n")).unwrap();
        }
        assert_eq!(
            partitions_in(&disk),
            vec![
                Partition {
                    name: "nvme0n1p2".into(),
                    major_minor: "259:2".into()
                },
                Partition {
                    name: "nvme0n1p10".into(),
                    major_minor: "259:10".into()
                },
            ]
        );
    }

    #[test]
    fn uevent_values_by_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("uevent"),
            "MAJOR=11\nDEVNAME=sr0\nDEVNAMEX=no\n",
        )
        .unwrap();
        assert_eq!(uevent_value(dir.path(), "DEVNAME").as_deref(), Some("sr0"));
        assert_eq!(uevent_value(dir.path(), "DEVTYPE"), None);
    }
}
