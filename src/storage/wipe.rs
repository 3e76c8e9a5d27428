//! Wiping disks: tear down everything stacked on them (mounts, LVM, md), then erase every
//! signature and both GPT headers.

use super::sysfs;
use crate::exec::{cmd, run, run_tolerant};
use anyhow::Context;
use std::path::Path;

const SYS: &str = "/sys";

/// Wipes each disk (whole-disk paths): holders first, recursively, then partitions, then the
/// disk itself. Disks are handled in the given order; a failure stops with the disk named.
pub fn wipe_disks(disks: &[String]) -> anyhow::Result<()> {
    let sys = Path::new(SYS);
    for disk in disks {
        let name = sysfs::kernel_name(disk);
        tracing::info!("wipe: {disk}");
        let parts = sysfs::partitions(sys, &name);
        for dev in parts.iter().chain(std::iter::once(&name)) {
            tear_down_holders(sys, dev)
                .with_context(|| format!("tearing down holders of {dev}"))?;
            unmount_device(sys, dev)?;
        }
        for part in &parts {
            erase_signatures(&format!("/dev/{part}"))?;
        }
        erase_signatures(disk)?;
        // Both GPT headers and the protective MBR; sgdisk also makes the kernel re-read it.
        run(&mut cmd("sgdisk", ["--zap-all", disk.as_str()]))
            .with_context(|| format!("zapping the partition table of {disk}"))?;
    }
    Ok(())
}

/// Erases md superblocks and every filesystem/LVM/RAID signature on one block device.
pub fn erase_signatures(device: &str) -> anyhow::Result<()> {
    // No superblock is the normal case: mdadm then fails, which is fine.
    run_tolerant(&mut cmd("mdadm", ["--zero-superblock", "--force", device]));
    run(&mut cmd("wipefs", ["--all", "--force", device]))
        .with_context(|| format!("erasing signatures on {device}"))?;
    Ok(())
}

/// Stops/removes every device stacked on `name`, deepest first.
fn tear_down_holders(sys: &Path, name: &str) -> anyhow::Result<()> {
    for holder in sysfs::holders(sys, name) {
        tear_down_holders(sys, &holder)?;
        unmount_device(sys, &holder)?;
        let path = format!("/dev/{holder}");
        if holder.starts_with("dm-") {
            deactivate_dm(sys, &holder)?;
        } else if holder.starts_with("md") {
            let members = sysfs::slaves(sys, &holder);
            tracing::info!("wipe: stopping {path} (members {})", members.join(", "));
            run(&mut cmd("mdadm", ["--stop", path.as_str()]))?;
            for member in members {
                run_tolerant(&mut cmd(
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
fn deactivate_dm(sys: &Path, holder: &str) -> anyhow::Result<()> {
    let dm_name = std::fs::read_to_string(sys.join("class/block").join(holder).join("dm/name"))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("reading the dm name of {holder}"))?;
    tracing::info!("wipe: removing device-mapper {dm_name} ({holder})");
    // Scrub the LV's own signatures first so a later scan never finds a stale filesystem.
    run_tolerant(&mut cmd(
        "wipefs",
        ["--all", "--force", &format!("/dev/{holder}")],
    ));
    run(&mut cmd("dmsetup", ["remove", "--retry", dm_name.as_str()]))?;
    Ok(())
}

/// Unmounts every mount of one device (by kernel name), deepest first.
fn unmount_device(sys: &Path, name: &str) -> anyhow::Result<()> {
    let Some(dev) = sysfs::dev_number(sys, name) else {
        return Ok(());
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in sysfs::mountpoints_of(&mountinfo, &dev) {
        tracing::info!("wipe: unmounting {point} (/dev/{name})");
        nix::mount::umount2(point.as_str(), nix::mount::MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {point}"))?;
    }
    Ok(())
}
