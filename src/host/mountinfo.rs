//! The mount table of this process (`/proc/self/mountinfo`).

use super::escape::decode_octal_escapes;

/// `/proc/self/mountinfo`, the mount table as this process sees it.
pub const PROC_MOUNTINFO: &str = "/proc/self/mountinfo";

/// Reads the mount table; empty when it cannot be read.
pub fn read() -> String {
    std::fs::read_to_string(PROC_MOUNTINFO).unwrap_or_default()
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
                mount_point: decode_octal_escapes(fields.get(4)?),
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
}
