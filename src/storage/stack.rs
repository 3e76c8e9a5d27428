//! The storage stack on the data partition(s): md RAID1, LVM, filesystems.

use super::wait::wait_for_device;
use super::wipe::erase_signatures;
use crate::exec::{cmd, run};
use crate::plan::{Filesystem, Lvm, RaidArray};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

const DEVICE_TIMEOUT: Duration = Duration::from_secs(60);

/// mdadm arguments for the planned array.
pub fn mdadm_create_args(array: &RaidArray) -> Vec<String> {
    let mut args = vec![
        "--create".to_string(),
        array.device.clone(),
        format!("--level={}", array.level),
        format!("--raid-devices={}", array.members.len()),
        format!("--metadata={}", array.metadata),
        format!("--name={}", array.name),
        format!("--bitmap={}", array.bitmap),
        format!("--homehost={}", array.homehost),
        "--run".to_string(),
        // Both members are fresh partitions: no initial resync, so a degraded boot works at
        // once and the array is clean from the start (the seed's choice as well).
        "--assume-clean".to_string(),
    ];
    args.extend(array.members.iter().cloned());
    args
}

/// Creates the md RAID1 array after scrubbing old signatures from its members (a new partition
/// at the same offset would otherwise bring an old superblock back).
pub fn create_raid(array: &RaidArray) -> anyhow::Result<()> {
    for member in &array.members {
        erase_signatures(member)?;
    }
    tracing::info!(
        "raid: creating {} on {}",
        array.device,
        array.members.join(" + ")
    );
    run(&mut cmd("mdadm", mdadm_create_args(array)))
        .with_context(|| format!("creating {}", array.device))?;
    wait_for_device(Path::new(&array.device), DEVICE_TIMEOUT)?;
    Ok(())
}

/// The `ARRAY` lines for the target's mdadm.conf.
pub fn mdadm_array_lines() -> anyhow::Result<Vec<String>> {
    let out = run(&mut cmd("mdadm", ["--detail", "--scan"]))?;
    Ok(out
        .stdout
        .lines()
        .filter(|l| l.starts_with("ARRAY"))
        .map(str::to_string)
        .collect())
}

/// PV, VG and the root LV over all free extents.
pub fn create_lvm(lvm: &Lvm) -> anyhow::Result<()> {
    tracing::info!("lvm: {} on {}", lvm.lv_path, lvm.pv);
    erase_signatures(&lvm.pv)?;
    run(&mut cmd(
        "lvm",
        ["pvcreate", "-ff", "-y", "--zero", "y", lvm.pv.as_str()],
    ))?;
    run(&mut cmd(
        "lvm",
        ["vgcreate", "-y", lvm.vg.as_str(), lvm.pv.as_str()],
    ))?;
    run(&mut cmd(
        "lvm",
        [
            "lvcreate",
            "-y",
            "-W",
            "y",
            "-n",
            lvm.lv.as_str(),
            "-l",
            lvm.extents.as_str(),
            lvm.vg.as_str(),
        ],
    ))?;
    wait_for_device(Path::new(&lvm.lv_path), DEVICE_TIMEOUT)?;
    Ok(())
}

/// mkfs command line for one planned filesystem.
pub fn mkfs_command(fs: &Filesystem) -> anyhow::Result<(String, Vec<String>)> {
    match fs.fstype.as_str() {
        "ext4" => Ok((
            "mkfs.ext4".into(),
            vec![
                "-F".into(),
                "-q".into(),
                "-L".into(),
                fs.label.clone(),
                fs.device.clone(),
            ],
        )),
        "vfat" => Ok((
            "mkfs.vfat".into(),
            vec![
                "-F".into(),
                "32".into(),
                "-n".into(),
                fs.label.clone(),
                fs.device.clone(),
            ],
        )),
        other => anyhow::bail!("no mkfs for filesystem type {other}"),
    }
}

/// Creates every planned filesystem.
pub fn make_filesystems(filesystems: &[Filesystem]) -> anyhow::Result<()> {
    for fs in filesystems {
        let (program, args) = mkfs_command(fs)?;
        tracing::info!("mkfs: {} {} ({})", fs.fstype, fs.device, fs.label);
        run(&mut cmd(&program, &args))
            .with_context(|| format!("creating {} on {}", fs.fstype, fs.device))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdadm_gets_the_seed_settings() {
        let array = RaidArray {
            device: "/dev/md0".into(),
            level: 1,
            metadata: "1.2".into(),
            bitmap: "internal".into(),
            name: "root".into(),
            homehost: "node-1".into(),
            members: vec!["/dev/vda2".into(), "/dev/sda2".into()],
        };
        let args = mdadm_create_args(&array).join(" ");
        assert_eq!(
            args,
            "--create /dev/md0 --level=1 --raid-devices=2 --metadata=1.2 --name=root \
             --bitmap=internal --homehost=node-1 --run --assume-clean /dev/vda2 /dev/sda2"
        );
    }

    #[test]
    fn mkfs_uses_labels_and_fat32() {
        let esp = Filesystem {
            device: "/dev/vda1".into(),
            fstype: "vfat".into(),
            label: "EFI".into(),
            mountpoint: "/boot/efi".into(),
        };
        let (program, args) = mkfs_command(&esp).unwrap();
        assert_eq!(program, "mkfs.vfat");
        assert_eq!(args, ["-F", "32", "-n", "EFI", "/dev/vda1"]);
        let bad = Filesystem {
            fstype: "zfs".into(),
            ..esp
        };
        assert!(mkfs_command(&bad).is_err());
    }
}
