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
    for holder in sysfs::holders(sys, name) {
        tear_down_holders(host, sys, &holder)?;
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
