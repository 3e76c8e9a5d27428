//! GRUB on every ESP (without touching NVRAM, plus the removable fallback path), update-grub,
//! and the single initramfs build.

use super::chroot::Chroot;
use crate::plan::{Bootloader, BootloaderInstall};
use anyhow::Context;
use std::path::Path;

/// grub-install arguments for one ESP. `--no-nvram`: EFI entries are ours to manage, one per
/// ESP with distinct labels; `--force-extra-removable` (Debian and Ubuntu) also writes
/// `\EFI\BOOT\BOOT<ARCH>.EFI`, so firmware finds the disk even with empty NVRAM.
pub fn grub_install_args(target: &str, efi_directory: &str, bootloader_id: &str) -> Vec<String> {
    vec![
        format!("--target={target}"),
        format!("--efi-directory={efi_directory}"),
        format!("--bootloader-id={bootloader_id}"),
        "--no-nvram".to_string(),
        "--force-extra-removable".to_string(),
    ]
}

/// Installs GRUB to one mounted ESP, then checks that both the vendor directory and the
/// removable fallback are there.
fn grub_install(
    chroot: &Chroot,
    install: &BootloaderInstall,
    bootloader_id: &str,
) -> anyhow::Result<()> {
    let (target, efi_directory) = (&install.target, &install.efi_directory);
    tracing::info!("bootloader: grub-install {target} to {efi_directory}");
    let mut args = grub_install_args(target, efi_directory, bootloader_id);
    if install.removable.is_none() {
        args.retain(|a| a != "--force-extra-removable");
    }
    chroot
        .run(chroot.command("grub-install").args(args))
        .with_context(|| format!("installing GRUB to {efi_directory}"))?;
    if let Some(removable_name) = &install.removable {
        let esp = chroot.root().join(efi_directory.trim_start_matches('/'));
        let fallback = find_case_insensitive(&esp, &["EFI", "BOOT", removable_name]);
        anyhow::ensure!(
            fallback.is_some(),
            "grub-install left no removable fallback \\EFI\\BOOT\\{removable_name} on {efi_directory}"
        );
    }
    Ok(())
}

/// The bootloader step: GRUB on every (mounted) ESP, then update-grub. Returns whether the
/// primary ESP now holds shim for `os_id`, which decides the EFI entries' loader.
pub fn run(chroot: &Chroot, step: &Bootloader, os_id: &str) -> anyhow::Result<bool> {
    for install in &step.installs {
        grub_install(chroot, install, os_id)?;
    }
    update_grub(chroot)?;
    let Some(primary) = step.installs.first() else {
        return Ok(false);
    };
    let esp = chroot
        .root()
        .join(primary.efi_directory.trim_start_matches('/'));
    Ok(find_case_insensitive(&esp, &["EFI", os_id, &step.shim]).is_some())
}

/// update-grub in the target.
pub fn update_grub(chroot: &Chroot) -> anyhow::Result<()> {
    chroot
        .run_streamed(&mut chroot.command("update-grub"))
        .context("update-grub")
}

/// Builds the initramfs for every installed kernel, once: create where missing; update where
/// the image shipped one that cannot bring up our root cleanly (md RAID1 needs our mdadm.conf
/// inside; an initramfs without LVM or without the generic disk drivers is of no use; one
/// built on a machine that differs from this one may lack what its own scripts use). An image
/// whose initramfs already activates LVM with `MODULES=most` and has what its scripts need
/// keeps it: rebuilding would take minutes and change nothing the boot depends on.
pub fn build_initramfs(chroot: &Chroot, raid: bool) -> anyhow::Result<()> {
    let root = chroot.root();
    let versions = kernel_versions(root);
    anyhow::ensure!(
        !versions.is_empty(),
        "the target has no kernel in /boot; the packages step should have installed one"
    );
    for version in versions {
        let initrd = format!("/boot/initrd.img-{version}");
        let mode = if !root.join(initrd.trim_start_matches('/')).exists() {
            "-c"
        } else if !raid && initramfs_is_sufficient(chroot, &initrd, &version) {
            tracing::info!(
                "initramfs: {initrd} from the image already activates LVM and has the disk \
                 drivers; kept"
            );
            continue;
        } else {
            "-u"
        };
        tracing::info!("initramfs: update-initramfs {mode} -k {version}");
        chroot.run_streamed(
            chroot
                .command("update-initramfs")
                .args([mode, "-k", &version]),
        )?;
    }
    Ok(())
}

/// What an initramfs of the image must hold to be kept, besides its listing.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepIf {
    /// The kernel has efivarfs built in (`modules.builtin`), so no module is needed for it.
    pub efivarfs_builtin: bool,
    /// The image has busybox: an initramfs built without it uses klibc's tools, which the
    /// hooks of mdadm do not fit.
    pub busybox_installed: bool,
    /// The image has `fsck.ext4`, the checker of the root filesystem. initramfs-tools copies
    /// it in only when it can find the root device at build time, which an image built in a
    /// container cannot: such an initramfs skips the check before the root is mounted
    /// ("fsck not present, so skipping root file system").
    pub root_fsck_installed: bool,
}

/// True when the listing of an initramfs shows LVM and the generic disk drivers that
/// `MODULES=most` brings (AHCI, NVMe, virtio, SCSI disks), efivarfs when one of its scripts
/// mounts it (mdadm's `init-top/00_mount_efivarfs`; an initramfs built on a machine booted
/// without UEFI lacks the module and fails that mount at every boot), busybox when the
/// image has it, and `fsck` with `fsck.ext4` when the image has them.
pub fn listing_is_sufficient(listing: &str, keep: KeepIf) -> bool {
    let has = |suffix: &str| listing.lines().any(|l| l.trim_end().ends_with(suffix));
    let has_module = |m: &str| has(m) || has(&format!("{m}.zst")) || has(&format!("{m}.xz"));
    let lvm = has("sbin/lvm");
    let drivers = ["/ahci.ko", "/nvme.ko", "/virtio_blk.ko", "/sd_mod.ko"]
        .iter()
        .all(|d| has_module(d));
    let mounts_efivarfs = has("/00_mount_efivarfs");
    let efivarfs = !mounts_efivarfs || keep.efivarfs_builtin || has_module("/efivarfs.ko");
    let busybox = !keep.busybox_installed || has("bin/busybox");
    let fsck = !keep.root_fsck_installed || (has("sbin/fsck") && has("sbin/fsck.ext4"));
    lvm && drivers && efivarfs && busybox && fsck
}

fn initramfs_is_sufficient(chroot: &Chroot, initrd: &str, version: &str) -> bool {
    let root = chroot.root();
    let builtin = ["usr/lib/modules", "lib/modules"]
        .iter()
        .filter_map(|dir| {
            std::fs::read_to_string(root.join(dir).join(version).join("modules.builtin")).ok()
        })
        .next()
        .unwrap_or_default();
    let keep = KeepIf {
        efivarfs_builtin: builtin.lines().any(|l| l.ends_with("/efivarfs.ko")),
        busybox_installed: ["usr/bin/busybox", "bin/busybox"]
            .iter()
            .any(|p| root.join(p).exists()),
        root_fsck_installed: ["usr/sbin/fsck.ext4", "sbin/fsck.ext4"]
            .iter()
            .any(|p| root.join(p).exists()),
    };
    match chroot.run(chroot.command("lsinitramfs").arg(initrd)) {
        Ok(out) => listing_is_sufficient(&out.stdout, keep),
        Err(err) => {
            tracing::info!("initramfs: cannot list {initrd} ({err:#}); rebuilding it");
            false
        }
    }
}

/// Kernel versions with an image in /boot, sorted.
pub fn kernel_versions(root: &Path) -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(root.join("boot"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .map(str::to_string)
        })
        .collect();
    versions.sort_by(|a, b| natural_cmp(a, b));
    versions
}

/// Orders version strings with runs of digits compared as numbers, so that `6.1.0-10`
/// comes after `6.1.0-9`.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for ((digits_a, x), (digits_b, y)) in ra.iter().zip(&rb) {
        let order = if *digits_a && *digits_b {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if order.is_ne() {
            return order;
        }
    }
    ra.len().cmp(&rb.len())
}

/// FAT is case-insensitive but our view of it is through names: look each component up
/// without regard to case.
pub fn find_case_insensitive(base: &Path, components: &[&str]) -> Option<std::path::PathBuf> {
    let mut path = base.to_path_buf();
    for component in components {
        let entry = std::fs::read_dir(&path).ok()?.flatten().find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(component))
        })?;
        path = entry.path();
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_sort_by_number_not_by_text() {
        let mut versions = vec![
            "6.1.0-9-amd64",
            "6.12.38+deb13-amd64",
            "6.1.0-10-amd64",
            "5.10.0-28-amd64",
            "6.1.0-10-cloud-amd64",
        ];
        versions.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            versions,
            [
                "5.10.0-28-amd64",
                "6.1.0-9-amd64",
                "6.1.0-10-amd64",
                "6.1.0-10-cloud-amd64",
                "6.12.38+deb13-amd64"
            ]
        );
    }

    #[test]
    fn grub_install_never_touches_nvram_and_adds_the_fallback() {
        let args = grub_install_args("x86_64-efi", "/boot/efi2", "debian");
        assert!(args.contains(&"--no-nvram".to_string()));
        assert!(args.contains(&"--force-extra-removable".to_string()));
        assert!(args.contains(&"--efi-directory=/boot/efi2".to_string()));
        assert!(args.contains(&"--bootloader-id=debian".to_string()));
    }

    /// An initramfs listing with LVM and the generic disk drivers.
    const GOOD_LISTING: &str = "usr/sbin/lvm\n\
        usr/lib/modules/6.12/kernel/drivers/ata/ahci.ko.xz\n\
        usr/lib/modules/6.12/kernel/drivers/nvme/host/nvme.ko.xz\n\
        usr/lib/modules/6.12/kernel/drivers/block/virtio_blk.ko.xz\n\
        usr/lib/modules/6.12/kernel/drivers/scsi/sd_mod.ko.xz\n";

    #[test]
    fn only_an_initramfs_with_lvm_and_generic_drivers_is_kept() {
        let good = GOOD_LISTING;
        let keep = KeepIf::default();
        assert!(listing_is_sufficient(good, keep));
        assert!(!listing_is_sufficient(
            &good.replace("usr/sbin/lvm\n", ""),
            keep
        ));
        // MODULES=dep built on another machine: no generic drivers.
        assert!(!listing_is_sufficient(
            "usr/sbin/lvm\nkernel/drivers/block/virtio_blk.ko\n",
            keep
        ));
    }

    #[test]
    fn an_initramfs_that_mounts_efivarfs_without_the_module_or_lacks_busybox_is_rebuilt() {
        let good = GOOD_LISTING;
        // Built on a host booted without UEFI: mdadm's script is there, the module is not.
        let no_module = format!("{good}scripts/init-top/00_mount_efivarfs\n");
        assert!(!listing_is_sufficient(&no_module, KeepIf::default()));
        let builtin = KeepIf {
            efivarfs_builtin: true,
            ..KeepIf::default()
        };
        assert!(listing_is_sufficient(&no_module, builtin));
        let with_module =
            format!("{no_module}usr/lib/modules/6.12/kernel/fs/efivarfs/efivarfs.ko.xz\n");
        assert!(listing_is_sufficient(&with_module, KeepIf::default()));
        let busybox = KeepIf {
            busybox_installed: true,
            ..KeepIf::default()
        };
        assert!(!listing_is_sufficient(&with_module, busybox));
        assert!(listing_is_sufficient(
            &format!("{with_module}usr/bin/busybox\n"),
            busybox
        ));
    }

    #[test]
    fn an_initramfs_without_the_root_checker_is_rebuilt_when_the_image_has_it() {
        let fsck = KeepIf {
            root_fsck_installed: true,
            ..KeepIf::default()
        };
        // Built in a container: the hook could not see the root device, so no fsck.
        assert!(listing_is_sufficient(GOOD_LISTING, KeepIf::default()));
        assert!(!listing_is_sufficient(GOOD_LISTING, fsck));
        let only_fsck = format!("{GOOD_LISTING}usr/sbin/fsck\n");
        assert!(!listing_is_sufficient(&only_fsck, fsck));
        let with_checker = format!("{only_fsck}usr/sbin/fsck.ext4\nusr/sbin/logsave\n");
        assert!(listing_is_sufficient(&with_checker, fsck));
    }

    #[test]
    fn fallback_lookup_ignores_case_and_kernels_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("efi/boot")).unwrap();
        std::fs::write(dir.path().join("efi/boot/bootx64.efi"), "x").unwrap();
        assert!(find_case_insensitive(dir.path(), &["EFI", "BOOT", "BOOTX64.EFI"]).is_some());
        assert!(find_case_insensitive(dir.path(), &["EFI", "BOOT", "BOOTAA64.EFI"]).is_none());
        std::fs::create_dir_all(dir.path().join("boot")).unwrap();
        for v in ["6.12.2-amd64", "6.1.0-amd64"] {
            std::fs::write(dir.path().join(format!("boot/vmlinuz-{v}")), "k").unwrap();
        }
        assert_eq!(
            kernel_versions(dir.path()),
            vec!["6.1.0-amd64", "6.12.2-amd64"]
        );
    }
}
