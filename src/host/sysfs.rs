//! Block device relations read from sysfs: partitions, holders, mounts.

use std::fs;
use std::path::{Path, PathBuf};

/// Kernel name of a device path: `/dev/sda` → `sda`, `/dev/md0` → `md0`. Follows
/// `/dev/disk/by-*` and `/dev/VG/LV` symlinks.
pub fn kernel_name(device: &str) -> String {
    let resolved = fs::canonicalize(device).unwrap_or_else(|_| PathBuf::from(device));
    resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| device.trim_start_matches("/dev/").to_string())
}

/// Partitions of a whole disk, by kernel name (`sda1`, `nvme0n1p2`...), sorted.
pub fn partitions(sys: &Path, disk: &str) -> Vec<String> {
    let dir = sys.join("block").join(disk);
    let mut parts: Vec<String> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("partition").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    parts.sort();
    parts
}

/// Devices stacked directly on `name` (dm-N, mdN), by kernel name.
pub fn holders(sys: &Path, name: &str) -> Vec<String> {
    entry_names(&sys.join("class/block").join(name).join("holders"))
}

/// Members (slaves) of a stacked device, by kernel name.
pub fn slaves(sys: &Path, name: &str) -> Vec<String> {
    entry_names(&sys.join("class/block").join(name).join("slaves"))
}

/// Sorted names in a directory; none when it does not exist.
fn entry_names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// `major:minor` of a block device by kernel name.
pub fn dev_number(sys: &Path, name: &str) -> Option<String> {
    fs::read_to_string(sys.join("class/block").join(name).join("dev"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// One line of `/proc/self/mountinfo`, the parts the installer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `MAJOR:MINOR` of the mounted device.
    pub major_minor: String,
    /// Where it is mounted, unescaped.
    pub mount_point: String,
    /// The mount source when it is a `/dev/` path.
    pub source: Option<String>,
}

/// Parses `/proc/self/mountinfo`; malformed lines are skipped.
pub fn parse_mountinfo(mountinfo: &str) -> Vec<MountEntry> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ").unwrap_or((line, ""));
            let fields: Vec<&str> = before.split_whitespace().collect();
            let source = after.split_whitespace().nth(1);
            Some(MountEntry {
                major_minor: fields.get(2)?.to_string(),
                mount_point: unescape_mount_path(fields.get(4)?),
                source: source
                    .filter(|source| source.starts_with("/dev/"))
                    .map(str::to_string),
            })
        })
        .collect()
}

/// Mount points whose source is the device `major:minor`, deepest first (unmount order).
pub fn mountpoints_of(mountinfo: &str, dev: &str) -> Vec<String> {
    let mut points: Vec<String> = parse_mountinfo(mountinfo)
        .into_iter()
        .filter(|m| m.major_minor == dev)
        .map(|m| m.mount_point)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        if let (b'\\', Some(digits)) = (bytes[i], octal) {
            let text = std::str::from_utf8(digits).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(text, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw
40 22 8:2 / /mnt/with\\040space rw - vfat /dev/sda2 rw
41 40 8:2 / /mnt/with\\040space/inner rw - vfat /dev/sda2 rw
";

    #[test]
    fn mountinfo_lines_give_device_unescaped_point_and_dev_source() {
        let entries = parse_mountinfo(MOUNTINFO);
        assert_eq!(entries.len(), 3);
        assert_eq!(
            entries[1],
            MountEntry {
                major_minor: "8:2".into(),
                mount_point: "/mnt/with space".into(),
                source: Some("/dev/sda2".into()),
            }
        );
        let tmpfs = parse_mountinfo("30 22 0:25 / /run rw - tmpfs tmpfs rw\nbroken\n");
        assert_eq!(tmpfs.len(), 1);
        assert_eq!(tmpfs[0].source, None);
    }

    #[test]
    fn mountpoints_are_unescaped_and_deepest_first() {
        assert_eq!(
            mountpoints_of(MOUNTINFO, "8:2"),
            vec!["/mnt/with space/inner", "/mnt/with space"]
        );
        assert!(mountpoints_of(MOUNTINFO, "8:3").is_empty());
    }

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
}
