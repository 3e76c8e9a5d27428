//! The live `config-2` medium: finding it by label and reading it through a private,
//! read-only mount that is always undone.

use super::configdrive::ConfigDrive;
use crate::host::mount::MountGuard;
use crate::host::{sysfs, udev};
use anyhow::{bail, Context};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Labels a configdrive may carry: OpenStack's, and the upper-case form FAT tools produce.
pub const LABELS: &[&str] = &["config-2", "CONFIG-2"];

/// Filesystems a configdrive is made with, tried in order.
const FILESYSTEMS: &[&str] = &["iso9660", "vfat"];

/// Where the system keeps the devices and their udev properties.
#[derive(Debug, Clone)]
pub struct DeviceRoots {
    /// `/dev/disk/by-label`.
    pub by_label: PathBuf,
    /// The udev database, `/run/udev/data`.
    pub udev_data: PathBuf,
    /// `/sys/dev/block` (`MAJ:MIN/uevent` gives `DEVNAME`).
    pub sys_dev_block: PathBuf,
    /// `/dev`.
    pub dev: PathBuf,
}

impl Default for DeviceRoots {
    fn default() -> Self {
        Self {
            by_label: "/dev/disk/by-label".into(),
            udev_data: udev::DATA_DIR.into(),
            sys_dev_block: "/sys/dev/block".into(),
            dev: "/dev".into(),
        }
    }
}

/// The block device labelled `config-2`, if any. Every labelled device in the udev database
/// is a candidate; removable and virtual media (CD, USB, floppy, a whole device) come first,
/// then by name, so the choice is the same at every boot and logged when there are several. A
/// `config-2` partition on a fixed disk is what an earlier deploy left there (IPA writes one
/// at the end of its target): never read as today's orders. Without a udev database, the
/// `by-label` symlink.
pub fn find_config2(roots: &DeviceRoots) -> Option<PathBuf> {
    let mut media: Vec<(Medium, PathBuf)> = udev::block_entries(&roots.udev_data)
        .into_iter()
        .filter(|(_, entry)| {
            entry
                .properties
                .get("ID_FS_LABEL")
                .is_some_and(|label| LABELS.contains(&label.as_str()))
        })
        .map(|(major_minor, _)| {
            (
                medium(&roots.sys_dev_block.join(&major_minor)),
                device_node(roots, &major_minor),
            )
        })
        .collect();
    media.sort();
    if media.len() > 1 {
        let listed: Vec<String> = media
            .iter()
            .map(|(kind, path)| format!("{} ({kind:?})", path.display()))
            .collect();
        tracing::info!("config-2 media: {}", listed.join(", "));
    }
    if !media.is_empty() {
        return media
            .into_iter()
            .find(|(kind, _)| *kind != Medium::PartitionOfFixedDisk)
            .map(|(_, path)| path);
    }
    LABELS
        .iter()
        .find_map(|label| fs::canonicalize(roots.by_label.join(label)).ok())
}

/// What kind of device holds a `config-2` filesystem, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Medium {
    /// A removable disk or a partition of one, USB, an optical or floppy drive.
    Removable,
    /// A whole fixed device (a configdrive attached as its own disk), or unknown to sysfs.
    WholeDevice,
    /// A partition of a fixed disk: an earlier deploy's, ignored.
    PartitionOfFixedDisk,
}

/// Classifies the device whose `/sys/dev/block/MAJ:MIN` link is `sys_link`.
fn medium(sys_link: &Path) -> Medium {
    let Ok(real) = fs::canonicalize(sys_link) else {
        return Medium::WholeDevice;
    };
    let partition = real.join("partition").is_file();
    let disk = if partition {
        real.parent().unwrap_or(&real)
    } else {
        &real
    };
    let name = disk
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let removable =
        sysfs::removable_or_usb(disk) || ["sr", "fd"].iter().any(|prefix| name.starts_with(prefix));
    match (removable, partition) {
        (true, _) => Medium::Removable,
        (false, false) => Medium::WholeDevice,
        (false, true) => Medium::PartitionOfFixedDisk,
    }
}

/// `/dev/NAME` for a `MAJ:MIN`, from sysfs; `/dev/block/MAJ:MIN` when sysfs does not say.
fn device_node(roots: &DeviceRoots, major_minor: &str) -> PathBuf {
    sysfs::uevent_value(&roots.sys_dev_block.join(major_minor), "DEVNAME")
        .map(|name| roots.dev.join(name))
        .unwrap_or_else(|| roots.dev.join("block").join(major_minor))
}

/// Mounts `device` read-only in a private temporary directory, reads the configdrive, and
/// unmounts it again, also when reading fails.
pub fn read_device(device: &Path) -> anyhow::Result<ConfigDrive> {
    read_device_as(device, FILESYSTEMS)
}

fn read_device_as(device: &Path, filesystems: &[&str]) -> anyhow::Result<ConfigDrive> {
    let mounted = ReadOnlyMount::new(device, filesystems)?;
    let drive = ConfigDrive::from_dir_as(mounted.path(), &device.display().to_string())?;
    mounted.unmount()?;
    Ok(drive)
}

/// A read-only mount in a private directory; dropping it unmounts and removes the directory.
struct ReadOnlyMount {
    dir: PathBuf,
    mounts: MountGuard,
}

impl ReadOnlyMount {
    fn new(device: &Path, filesystems: &[&str]) -> anyhow::Result<Self> {
        let dir = private_dir()?;
        let mut guard = Self {
            dir,
            mounts: MountGuard::new(),
        };
        let mut errors = Vec::new();
        for fstype in filesystems {
            match guard.mounts.mount_read_only(device, &guard.dir, fstype) {
                Ok(()) => return Ok(guard),
                Err(errno) => errors.push(format!("{fstype}: {errno}")),
            }
        }
        bail!(
            "mounting the configdrive {} read-only failed ({})",
            device.display(),
            errors.join(", ")
        )
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    /// Unmounts now, reporting a failure (dropping only logs it).
    fn unmount(mut self) -> anyhow::Result<()> {
        self.release()
    }

    fn release(&mut self) -> anyhow::Result<()> {
        self.mounts.unmount_all()?;
        fs::remove_dir(&self.dir).with_context(|| format!("removing {}", self.dir.display()))
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        if self.dir.exists() {
            if let Err(err) = self.release() {
                tracing::warn!("{err:#}");
            }
        }
    }
}

/// A new directory only root can enter, for the mount point.
fn private_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let dir = base.join(format!("ocimetal-config-2.{pid}.{attempt}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("creating {}", dir.display()));
            }
        }
    }
    bail!("no free name for a mount point under {}", base.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::configdrive::tests::{iso_from_tree, write_tree};
    use crate::config::configdrive::LATEST;
    use serde_json::json;
    use std::process::Command;

    fn roots(base: &Path) -> DeviceRoots {
        let roots = DeviceRoots {
            by_label: base.join("by-label"),
            udev_data: base.join("udev"),
            sys_dev_block: base.join("sys"),
            dev: base.join("dev"),
        };
        fs::create_dir_all(&roots.by_label).unwrap();
        fs::create_dir_all(&roots.udev_data).unwrap();
        fs::create_dir_all(&roots.dev).unwrap();
        roots
    }

    #[test]
    fn finds_label_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let roots = roots(dir.path());
        assert_eq!(find_config2(&roots), None);
        // As udev makes it: a relative link from by-label to the device node.
        fs::write(dir.path().join("sr0"), b"").unwrap();
        std::os::unix::fs::symlink("../sr0", roots.by_label.join("config-2")).unwrap();
        assert_eq!(
            find_config2(&roots),
            Some(fs::canonicalize(dir.path().join("sr0")).unwrap())
        );
    }

    #[test]
    fn scans_udev_database_when_symlink_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let roots = roots(dir.path());
        fs::write(roots.udev_data.join("b8:0"), "E:ID_FS_LABEL=rootfs\n").unwrap();
        fs::write(roots.udev_data.join("c4:64"), "E:ID_FS_LABEL=config-2\n").unwrap();
        assert_eq!(
            find_config2(&roots),
            None,
            "character devices are not media"
        );
        fs::write(
            roots.udev_data.join("b11:0"),
            "S:disk/by-id/ata-QEMU\nE:ID_FS_TYPE=iso9660\nE:ID_FS_LABEL=config-2\n",
        )
        .unwrap();
        fs::create_dir_all(roots.sys_dev_block.join("11:0")).unwrap();
        fs::write(
            roots.sys_dev_block.join("11:0/uevent"),
            "MAJOR=11\nMINOR=0\nDEVNAME=sr0\nDEVTYPE=disk\n",
        )
        .unwrap();
        assert_eq!(find_config2(&roots), Some(roots.dev.join("sr0")));
        // Without sysfs the /dev/block link names it.
        fs::remove_dir_all(roots.sys_dev_block.join("11:0")).unwrap();
        assert_eq!(find_config2(&roots), Some(roots.dev.join("block/11:0")));
    }

    /// A sysfs device directory under `base/devices/PATH` with `/sys/dev/block/MAJ:MIN`
    /// pointing at it.
    fn sys_device(roots: &DeviceRoots, base: &Path, path: &str, devno: &str, partition: bool) {
        let dir = base.join("devices").join(path);
        fs::create_dir_all(&dir).unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        fs::write(dir.join("uevent"), format!("DEVNAME={name}\n")).unwrap();
        if partition {
            fs::write(dir.join("partition"), "2\n").unwrap();
        } else {
            fs::write(dir.join("removable"), "0\n").unwrap();
        }
        fs::create_dir_all(&roots.sys_dev_block).unwrap();
        std::os::unix::fs::symlink(&dir, roots.sys_dev_block.join(devno)).unwrap();
        fs::write(
            roots.udev_data.join(format!("b{devno}")),
            "E:ID_FS_LABEL=config-2\n",
        )
        .unwrap();
    }

    #[test]
    fn a_stale_partition_on_a_fixed_disk_is_never_read_and_removable_media_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let roots = roots(dir.path());
        // The fixed disk's disk-level attributes, then its config-2 partition.
        fs::create_dir_all(dir.path().join("devices/pci0/virtio3/block/vda")).unwrap();
        fs::write(
            dir.path().join("devices/pci0/virtio3/block/vda/removable"),
            "0\n",
        )
        .unwrap();
        sys_device(
            &roots,
            dir.path(),
            "pci0/virtio3/block/vda/vda2",
            "254:2",
            true,
        );
        assert_eq!(find_config2(&roots), None, "only a stale partition");
        // A USB stick's partition and a virtual CD: the CD (by name) of the removable ones.
        sys_device(
            &roots,
            dir.path(),
            "pci0/usb1/1-1/host6/block/sdc/sdc1",
            "8:33",
            true,
        );
        assert_eq!(find_config2(&roots), Some(roots.dev.join("sdc1")));
        sys_device(
            &roots,
            dir.path(),
            "pci0/ata1/host0/block/sr0",
            "11:0",
            false,
        );
        assert_eq!(find_config2(&roots), Some(roots.dev.join("sdc1")));
        fs::remove_file(roots.udev_data.join("b8:33")).unwrap();
        assert_eq!(find_config2(&roots), Some(roots.dev.join("sr0")));
    }

    #[test]
    fn upper_case_fat_label_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let roots = roots(dir.path());
        fs::write(roots.udev_data.join("b8:17"), "E:ID_FS_LABEL=CONFIG-2\n").unwrap();
        assert_eq!(find_config2(&roots), Some(roots.dev.join("block/8:17")));
    }

    /// Mount tests look at the process's mount table; run them one at a time.
    static MOUNT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Attaches `image` to a read-only loop device, or `None` with a printed reason.
    fn loop_device(image: &Path) -> Option<PathBuf> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: mounting needs root");
            return None;
        }
        let out = Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(image)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(PathBuf::from(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )),
            other => {
                eprintln!("skipping: no loop device ({other:?})");
                None
            }
        }
    }

    fn detach(device: &Path) {
        let _ = Command::new("losetup").arg("-d").arg(device).status();
    }

    fn own_mount_points() -> Vec<PathBuf> {
        let mine = format!("ocimetal-config-2.{}.", std::process::id());
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.contains(&mine))
            .map(PathBuf::from)
            .collect()
    }

    fn own_dirs() -> Vec<PathBuf> {
        let mine = format!("ocimetal-config-2.{}.", std::process::id());
        fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(&mine))
            .collect()
    }

    /// An ext4 image holding `tree` (mke2fs -d), or `None` with a printed reason.
    fn ext4_image(tree: &Path, image: &Path) -> Option<()> {
        let status = Command::new("mkfs.ext4")
            .args(["-q", "-L", "config-2", "-d"])
            .arg(tree)
            .arg(image)
            .arg("4M")
            .status();
        match status {
            Ok(s) if s.success() => Some(()),
            other => {
                eprintln!("skipping: mkfs.ext4 -d unavailable ({other:?})");
                None
            }
        }
    }

    /// The mount, read and unmount path, on a filesystem every Linux host can mount (the
    /// configdrive filesystems may be missing from a build host's kernel).
    #[test]
    fn reads_through_a_read_only_mount_and_unmounts() {
        let _serial = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(
            &tree,
            &json!({"local-hostname": "from-disk"}),
            Some(b"ud"),
            None,
        );
        let image = dir.path().join("cd.img");
        if ext4_image(&tree, &image).is_none() {
            return;
        }
        let Some(device) = loop_device(&image) else {
            return;
        };
        let result = read_device_as(&device, &["ext4"]);
        let (mounts, dirs) = (own_mount_points(), own_dirs());
        detach(&device);
        let drive = result.unwrap();
        assert_eq!(drive.meta_data["local-hostname"], "from-disk");
        assert_eq!(drive.user_data.unwrap().expose(), b"ud");
        assert_eq!(drive.origin, device.display().to_string());
        assert!(mounts.is_empty(), "left mounted: {mounts:?}");
        assert!(dirs.is_empty(), "left behind: {dirs:?}");
    }

    /// The per-mount options of the mount at `dir`, from mountinfo.
    fn mount_options(dir: &Path) -> Vec<String> {
        let dir = dir.to_string_lossy();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|fields| fields.get(4) == Some(&dir.as_ref()))
            .map(|fields| fields[5].split(',').map(str::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn the_medium_is_mounted_without_symlinks_devices_or_execution() {
        let _serial = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"local-hostname": "n"}), None, None);
        std::os::unix::fs::symlink("/dev/zero", tree.join(LATEST).join("user_data")).unwrap();
        let image = dir.path().join("links.img");
        if ext4_image(&tree, &image).is_none() {
            return;
        }
        let Some(device) = loop_device(&image) else {
            return;
        };
        let mounted = ReadOnlyMount::new(&device, &["ext4"]);
        let options = mounted
            .as_ref()
            .map(|m| mount_options(m.path()))
            .map_err(|e| format!("{e:#}"));
        drop(mounted);
        let result = read_device_as(&device, &["ext4"]);
        detach(&device);
        let options = options.unwrap();
        for wanted in ["ro", "nosuid", "nodev", "noexec", "nosymfollow"] {
            assert!(options.iter().any(|o| o == wanted), "{wanted}: {options:?}");
        }
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid order {}: openstack/latest/user_data is a symbolic link (or lies behind one); links are not followed here",
                device.display()
            )
        );
    }

    #[test]
    fn unmounts_also_when_the_drive_is_invalid() {
        let _serial = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("openstack/latest")).unwrap();
        fs::write(tree.join("openstack/latest/meta_data.json"), "[]").unwrap();
        let image = dir.path().join("bad.img");
        if ext4_image(&tree, &image).is_none() {
            return;
        }
        let Some(device) = loop_device(&image) else {
            return;
        };
        let result = read_device_as(&device, &["ext4"]);
        let (mounts, dirs) = (own_mount_points(), own_dirs());
        detach(&device);
        let err = result.unwrap_err();
        assert!(
            err.downcast_ref::<crate::error::OrderError>().is_some(),
            "{err:#}"
        );
        assert!(mounts.is_empty(), "left mounted: {mounts:?}");
        assert!(dirs.is_empty(), "left behind: {dirs:?}");
    }

    #[test]
    fn mounts_an_iso_device() {
        let _serial = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
        if !filesystems.lines().any(|l| l.ends_with("iso9660")) {
            eprintln!("skipping: this kernel has no iso9660 filesystem loaded");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"local-hostname": "from-cd"}), None, None);
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let image = dir.path().join("cd.iso");
        fs::write(&image, iso).unwrap();
        let Some(device) = loop_device(&image) else {
            return;
        };
        let result = read_device(&device);
        let mounts = own_mount_points();
        detach(&device);
        assert_eq!(result.unwrap().meta_data["local-hostname"], "from-cd");
        assert!(mounts.is_empty(), "left mounted: {mounts:?}");
    }

    #[test]
    fn mount_failure_is_reported_and_cleaned_up() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: mounting needs root");
            return;
        }
        let _serial = MOUNT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let err = read_device(&dir.path().join("no-such-device")).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("iso9660") && text.contains("vfat"), "{text}");
        assert!(own_dirs().is_empty(), "mount point left behind");
    }
}
