//! Wiping disks: tear down everything stacked on them (mounts, LVM, md), then erase every
//! signature and both GPT headers.

use crate::host::exec::cmd;
use crate::host::{sysfs, Host};
use anyhow::Context;
use std::path::Path;

/// Wipes each disk (whole-disk paths): holders first, recursively, then partitions, then the
/// disk itself. Disks are handled in the given order; a failure stops with the disk named.
pub fn wipe_disks(host: &dyn Host, disks: &[String]) -> anyhow::Result<()> {
    let sys = &host.sys();
    if let Some(refusal) = foreign_member(sys, disks) {
        anyhow::bail!("{refusal}; nothing was wiped");
    }
    for disk in disks {
        let name = sysfs::kernel_name(disk);
        tracing::info!("wipe: {disk}");
        let parts = sysfs::partitions(sys, &name);
        for dev in parts.iter().chain(std::iter::once(&name)) {
            tear_down_holders(host, sys, dev)
                .with_context(|| format!("tearing down holders of {dev}"))?;
            unmount_device(host, sys, dev)?;
        }
        for part in &parts {
            erase_signatures(host, &format!("/dev/{part}"))?;
        }
        erase_signatures(host, disk)?;
        // Both GPT headers and the protective MBR; sgdisk also makes the kernel re-read it.
        host.run(&mut cmd("sgdisk", ["--zap-all", disk.as_str()]))
            .with_context(|| format!("zapping the partition table of {disk}"))?;
    }
    Ok(())
}

/// Why the wipe must not start, if it must not: a device stacked on one of `disks` (an md
/// array, an LVM volume) that also has a member on a disk outside the list. Stopping it
/// would take down, and zeroing its members would damage, a disk that is not ours to wipe.
pub fn foreign_member(sys: &Path, disks: &[String]) -> Option<String> {
    let wiped: Vec<String> = disks.iter().map(|d| sysfs::kernel_name(d)).collect();
    for (disk, name) in disks.iter().zip(&wiped) {
        let devices = sysfs::partitions(sys, name)
            .into_iter()
            .chain(std::iter::once(name.clone()));
        for holder in devices.flat_map(|dev| sysfs::stacked_on(sys, &dev)) {
            for member in sysfs::slaves(sys, &holder) {
                let member_disk = sysfs::whole_disk(sys, &member);
                if member_disk != holder
                    && !wiped.contains(&member_disk)
                    && !is_stacked(&member_disk)
                {
                    return Some(format!(
                        "refusing to wipe {disk}: /dev/{holder} is stacked on it and also on \
                         /dev/{member}, whose disk /dev/{member_disk} is not being wiped; free \
                         /dev/{holder} first, or wipe /dev/{member_disk} too (disk_wipe_mode=all)"
                    ));
                }
            }
        }
    }
    None
}

/// md and device-mapper devices are checked through their own members.
fn is_stacked(name: &str) -> bool {
    name.starts_with("md") || name.starts_with("dm-")
}

/// Erases md superblocks and every filesystem/LVM/RAID signature on one block device.
pub fn erase_signatures(host: &dyn Host, device: &str) -> anyhow::Result<()> {
    // No superblock is the normal case: mdadm then fails, which is fine.
    host.run_tolerant(&mut cmd("mdadm", ["--zero-superblock", "--force", device]));
    host.run(&mut cmd("wipefs", ["--all", "--force", device]))
        .with_context(|| format!("erasing signatures on {device}"))?;
    Ok(())
}

/// Stops/removes every device stacked on `name`, deepest first.
fn tear_down_holders(host: &dyn Host, sys: &Path, name: &str) -> anyhow::Result<()> {
    for holder in sysfs::stacked_on(sys, name) {
        unmount_device(host, sys, &holder)?;
        let path = format!("/dev/{holder}");
        if holder.starts_with("dm-") {
            deactivate_dm(host, sys, &holder)?;
        } else if holder.starts_with("md") {
            let members = sysfs::slaves(sys, &holder);
            tracing::info!("wipe: stopping {path} (members {})", members.join(", "));
            host.run(&mut cmd("mdadm", ["--stop", path.as_str()]))?;
            for member in members {
                host.run_tolerant(&mut cmd(
                    "mdadm",
                    ["--zero-superblock", "--force", &format!("/dev/{member}")],
                ));
            }
        } else {
            anyhow::bail!("{path} is stacked on {name} and is neither device-mapper nor md");
        }
    }
    Ok(())
}

/// Removes one device-mapper device (an LVM LV or anything else), by its dm name.
fn deactivate_dm(host: &dyn Host, sys: &Path, holder: &str) -> anyhow::Result<()> {
    let dm_name = std::fs::read_to_string(sys.join("class/block").join(holder).join("dm/name"))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("reading the dm name of {holder}"))?;
    tracing::info!("wipe: removing device-mapper {dm_name} ({holder})");
    // Scrub the LV's own signatures first so a later scan never finds a stale filesystem.
    host.run_tolerant(&mut cmd(
        "wipefs",
        ["--all", "--force", &format!("/dev/{holder}")],
    ));
    host.run(&mut cmd("dmsetup", ["remove", "--retry", dm_name.as_str()]))?;
    Ok(())
}

/// Unmounts every mount of one device (by kernel name), deepest first.
fn unmount_device(host: &dyn Host, sys: &Path, name: &str) -> anyhow::Result<()> {
    let Some(dev) = sysfs::dev_number(sys, name) else {
        return Ok(());
    };
    for point in sysfs::mountpoints_of(&host.mountinfo(), &dev) {
        tracing::info!("wipe: unmounting {point} (/dev/{name})");
        host.unmount(Path::new(&point))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A sysfs tree: disks with partitions, and stacked devices with their members.
    fn sysfs(disks: &[(&str, &[&str])], stacked: &[(&str, &[&str])]) -> tempfile::TempDir {
        let sys = tempfile::tempdir().unwrap();
        let root = sys.path();
        std::fs::create_dir_all(root.join("class/block")).unwrap();
        let link = |name: &str, target: &str| {
            symlink(
                format!("../../{target}"),
                root.join("class/block").join(name),
            )
            .unwrap()
        };
        for (disk, parts) in disks {
            std::fs::create_dir_all(root.join("block").join(disk).join("holders")).unwrap();
            link(disk, &format!("block/{disk}"));
            for part in *parts {
                let dir = root.join("block").join(disk).join(part);
                std::fs::create_dir_all(dir.join("holders")).unwrap();
                std::fs::write(dir.join("partition"), "1").unwrap();
                link(part, &format!("block/{disk}/{part}"));
            }
        }
        for (device, members) in stacked {
            std::fs::create_dir_all(root.join("block").join(device).join("slaves")).unwrap();
            std::fs::create_dir_all(root.join("block").join(device).join("holders")).unwrap();
            link(device, &format!("block/{device}"));
            for member in *members {
                let member_dir = root.join("class/block").join(member);
                std::fs::write(member_dir.join("holders").join(device), "").unwrap();
                std::fs::write(
                    root.join("block").join(device).join("slaves").join(member),
                    "",
                )
                .unwrap();
            }
        }
        sys
    }

    #[test]
    fn an_array_with_a_member_outside_the_wipe_list_stops_the_wipe() {
        let disks: &[(&str, &[&str])] = &[("sda", &["sda1", "sda2"]), ("sdc", &["sdc1", "sdc2"])];
        let sys = sysfs(disks, &[("md127", &["sda2", "sdc2"]), ("dm-0", &["md127"])]);
        let refusal = foreign_member(sys.path(), &["/dev/sda".into()]).unwrap();
        assert!(
            refusal.starts_with("refusing to wipe /dev/sda: /dev/md127"),
            "{refusal}"
        );
        assert!(
            refusal.contains("/dev/sdc2") && refusal.contains("/dev/sdc "),
            "{refusal}"
        );
        assert_eq!(
            foreign_member(sys.path(), &["/dev/sda".into(), "/dev/sdc".into()]),
            None,
            "every member is being wiped"
        );
        let alone = sysfs(disks, &[("md127", &["sda1", "sda2"])]);
        assert_eq!(foreign_member(alone.path(), &["/dev/sda".into()]), None);
        assert_eq!(sysfs::whole_disk(sys.path(), "sdc2"), "sdc");
        assert_eq!(sysfs::whole_disk(sys.path(), "md127"), "md127");
        assert_eq!(sysfs::stacked_on(sys.path(), "sda2"), ["dm-0", "md127"]);
    }
}
