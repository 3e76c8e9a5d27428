//! The storage stack on the data partition(s): md RAID1, LVM, filesystems.

use super::wipe::erase_signatures;
use crate::host::exec::cmd;
use crate::host::Host;
use crate::plan::{Filesystem, FsType, Lvm, RaidArray};
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
        format!("--name={}", array.md_name),
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
pub fn create_raid(host: &dyn Host, array: &RaidArray) -> anyhow::Result<()> {
    for member in &array.members {
        erase_signatures(host, member)?;
    }
    tracing::info!(
        "raid: creating {} on {}",
        array.device,
        array.members.join(" + ")
    );
    host.run(&mut cmd("mdadm", mdadm_create_args(array)))
        .with_context(|| format!("creating {}", array.device))?;
    host.wait_for_device(Path::new(&array.device), DEVICE_TIMEOUT)?;
    Ok(())
}

/// `mdadm --detail --scan`: the `ARRAY` lines for the target's mdadm.conf.
pub fn mdadm_scan(host: &dyn Host) -> anyhow::Result<String> {
    Ok(host.run(&mut cmd("mdadm", ["--detail", "--scan"]))?.stdout)
}

/// PV, VG and the root LV over all free extents.
pub fn create_lvm(host: &dyn Host, lvm: &Lvm) -> anyhow::Result<()> {
    tracing::info!("lvm: {} on {}", lvm.lv_path, lvm.pv);
    erase_signatures(host, &lvm.pv)?;
    host.run(&mut cmd(
        "lvm",
        ["pvcreate", "-ff", "-y", "--zero", "y", lvm.pv.as_str()],
    ))?;
    host.run(&mut cmd(
        "lvm",
        ["vgcreate", "-y", lvm.vg.as_str(), lvm.pv.as_str()],
    ))?;
    host.run(&mut cmd(
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
    host.wait_for_device(Path::new(&lvm.lv_path), DEVICE_TIMEOUT)?;
    Ok(())
}

/// mkfs command line for one planned filesystem.
pub fn mkfs_command(fs: &Filesystem) -> (&'static str, Vec<String>) {
    match fs.fstype {
        FsType::Ext4 => (
            "mkfs.ext4",
            vec![
                "-F".into(),
                "-q".into(),
                "-L".into(),
                fs.label.clone(),
                fs.device.clone(),
            ],
        ),
        FsType::Vfat => (
            "mkfs.vfat",
            vec![
                "-F".into(),
                "32".into(),
                "-n".into(),
                fs.label.clone(),
                fs.device.clone(),
            ],
        ),
    }
}

/// Creates every planned filesystem.
pub fn make_filesystems(host: &dyn Host, filesystems: &[Filesystem]) -> anyhow::Result<()> {
    for fs in filesystems {
        let (program, args) = mkfs_command(fs);
        let fstype = fs.fstype.as_str();
        tracing::info!("mkfs: {fstype} {} ({})", fs.device, fs.label);
        host.run(&mut cmd(program, &args))
            .with_context(|| format!("creating {fstype} on {}", fs.device))?;
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
            md_name: "root".into(),
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
            fstype: FsType::Vfat,
            label: "EFI".into(),
            mountpoint: "/boot/efi".into(),
        };
        let (program, args) = mkfs_command(&esp);
        assert_eq!(program, "mkfs.vfat");
        assert_eq!(args, ["-F", "32", "-n", "EFI", "/dev/vda1"]);
        let root = Filesystem {
            device: "/dev/vg_root/lv_root".into(),
            fstype: FsType::Ext4,
            label: "ROOTFS".into(),
            mountpoint: "/".into(),
        };
        assert_eq!(
            mkfs_command(&root),
            (
                "mkfs.ext4",
                ["-F", "-q", "-L", "ROOTFS", "/dev/vg_root/lv_root"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }
}
