//! Installing packages in the target with apt, only what the image lacks, with services and
//! initramfs generation held back until every file is in place.

use super::chroot::Chroot;
use crate::exec::{run, run_streamed, run_tolerant};
use anyhow::Context;
use std::collections::BTreeSet;
use std::path::Path;

/// `/usr/sbin/policy-rc.d` that keeps package scripts from starting services in the chroot.
const POLICY_RC_D: &str = "usr/sbin/policy-rc.d";
/// Diverted so each kernel/package trigger does not rebuild the initramfs (minutes under
/// emulation); the installer runs it once at the end.
const UPDATE_INITRAMFS: &str = "/usr/sbin/update-initramfs";
const UPDATE_INITRAMFS_DIVERTED: &str = "/usr/sbin/update-initramfs.ocimetal";
/// dpkg configuration that skips fsync while the installer runs apt in the target.
const DPKG_UNSAFE_IO: &str = "etc/dpkg/dpkg.cfg.d/ocimetal-unsafe-io";

/// Packages that dpkg reports as installed (`Status: install ok installed`).
pub fn installed_packages(dpkg_status: &str) -> BTreeSet<String> {
    dpkg_status
        .split("\n\n")
        .filter_map(|stanza| {
            let mut name = None;
            let mut installed = false;
            for line in stanza.lines() {
                if let Some(v) = line.strip_prefix("Package:") {
                    name = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("Status:") {
                    installed = v.trim() == "install ok installed";
                }
            }
            name.filter(|_| installed)
        })
        .collect()
}

/// Packages in `rc` state (removed, configuration left), to purge.
pub fn config_only_packages(dpkg_status: &str) -> Vec<String> {
    dpkg_status
        .split("\n\n")
        .filter_map(|stanza| {
            let name = stanza
                .lines()
                .find_map(|l| l.strip_prefix("Package:"))?
                .trim();
            let status = stanza.lines().find_map(|l| l.strip_prefix("Status:"))?;
            (status.trim() == "deinstall ok config-files").then(|| name.to_string())
        })
        .collect()
}

/// True when the target already has a kernel image with its modules.
pub fn has_kernel(root: &Path) -> bool {
    super::bootloader::kernel_versions(root)
        .into_iter()
        .any(|version| {
            ["usr/lib/modules", "lib/modules"]
                .iter()
                .any(|dir| root.join(dir).join(&version).is_dir())
        })
}

/// What still has to be installed: `wanted` minus installed packages; kernel packages count as
/// present when the image already carries a kernel.
pub fn missing_packages(
    wanted: &[String],
    installed: &BTreeSet<String>,
    kernel_present: bool,
) -> Vec<String> {
    wanted
        .iter()
        .filter(|p| !installed.contains(p.as_str()))
        .filter(|p| !(kernel_present && is_kernel_package(p)))
        .cloned()
        .collect()
}

/// Without these the installed system cannot boot as planned: kernel, GRUB's EFI build, the
/// initramfs generator, LVM, an init, cloud-init for the seed; with RAID1 also mdadm and the
/// rsync the ESP mirroring needs; with Secure Boot on, shim and the signed GRUB too.
pub fn is_boot_critical(name: &str, raid: bool, secure_boot: bool) -> bool {
    let signed = name.ends_with("-signed");
    let grub_efi = name.starts_with("grub-efi-") && (!signed || secure_boot);
    let shim = name.starts_with("shim-signed") && secure_boot;
    let always = ["initramfs-tools", "lvm2", "cloud-init", "systemd-sysv"];
    let with_raid = ["mdadm", "rsync"];
    grub_efi
        || shim
        || is_kernel_package(name)
        || always.contains(&name)
        || (raid && with_raid.contains(&name))
}

/// What apt has to install. When the image already holds everything boot-critical the
/// install needs no apt at all (no network, no mirror): the remaining conveniences are
/// returned as skipped, for the log. Otherwise everything missing is installed.
pub fn packages_to_install(
    missing: &[String],
    raid: bool,
    secure_boot: bool,
) -> (Vec<String>, Vec<String>) {
    if missing
        .iter()
        .any(|p| is_boot_critical(p, raid, secure_boot))
    {
        (missing.to_vec(), Vec::new())
    } else {
        (Vec::new(), missing.to_vec())
    }
}

/// Whether the firmware booted this machine with Secure Boot enforcing (the `SecureBoot`
/// EFI variable: four attribute bytes, then 1 for on).
pub fn secure_boot_enabled() -> bool {
    std::fs::read("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c")
        .is_ok_and(|bytes| bytes.get(4) == Some(&1))
}

fn is_kernel_package(name: &str) -> bool {
    name.starts_with("linux-image-") || name.starts_with("linux-generic")
}

/// Installs `missing` (and removes `unwanted` when installed), with service starts blocked
/// and initramfs generation deferred. Does nothing at all — no apt, no network — when
/// nothing is missing or unwanted.
pub fn install(
    chroot: &Chroot,
    missing: &[String],
    unwanted: &[String],
    apt_proxy: Option<&str>,
) -> anyhow::Result<()> {
    if missing.is_empty() && unwanted.is_empty() {
        tracing::info!("packages: the image has everything; apt not needed");
        return Ok(());
    }
    let root = chroot.root();
    let _guard = AptGuard::arm(chroot, apt_proxy)?;
    if !unwanted.is_empty() {
        tracing::info!("packages: purging {}", unwanted.join(" "));
        let mut purge = chroot.command("apt-get");
        purge.args(["purge", "-y"]).args(unwanted);
        run_streamed(&mut purge)?;
    }
    if !missing.is_empty() {
        tracing::info!("packages: installing {}", missing.join(" "));
        run_streamed(chroot.command("apt-get").args(["update", "-q"]))?;
        let mut install = chroot.command("apt-get");
        install
            .args([
                "install",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confold",
            ])
            .args(missing);
        run_streamed(&mut install).context("installing packages in the target")?;
    }
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let leftovers = config_only_packages(&status);
    if !leftovers.is_empty() {
        run_streamed(chroot.command("dpkg").arg("--purge").args(&leftovers))?;
    }
    run_streamed(
        chroot
            .command("apt-get")
            .args(["autoremove", "--purge", "-y", "-q"]),
    )?;
    run_tolerant(chroot.command("apt-get").arg("clean"));
    Ok(())
}

/// Puts policy-rc.d, the update-initramfs diversion, dpkg's unsafe-io setting and the apt
/// proxy in place; removes them again on drop.
struct AptGuard<'a> {
    chroot: &'a Chroot,
    proxy_file: Option<std::path::PathBuf>,
}

impl<'a> AptGuard<'a> {
    fn arm(chroot: &'a Chroot, apt_proxy: Option<&str>) -> anyhow::Result<Self> {
        let root = chroot.root();
        put(
            &root.join(POLICY_RC_D),
            "#!/bin/sh\n# ocimetal: no service starts in the chroot\nexit 101\n",
            Some(0o755),
        )?;
        run(&mut divert_update_initramfs(chroot, "--add"))?;
        put(
            &root.join(UPDATE_INITRAMFS.trim_start_matches('/')),
            "#!/bin/sh\n# ocimetal: deferred until the install's end\nexit 0\n",
            Some(0o755),
        )?;
        // The target is unmounted (hence flushed) at the end and remade if the install fails,
        // so dpkg's fsync after every unpacked file buys nothing and costs minutes.
        put(
            &root.join(DPKG_UNSAFE_IO),
            "# ocimetal: removed again at the end of the install\nforce-unsafe-io\n",
            None,
        )?;
        let proxy_file = match apt_proxy {
            Some(proxy) => {
                let path = root.join("etc/apt/apt.conf.d/00ocimetal-install-proxy");
                std::fs::write(&path, format!("Acquire::http::Proxy \"{proxy}\";\n"))?;
                Some(path)
            }
            None => None,
        };
        Ok(Self { chroot, proxy_file })
    }
}

impl Drop for AptGuard<'_> {
    fn drop(&mut self) {
        let root = self.chroot.root();
        let _ = std::fs::remove_file(root.join(POLICY_RC_D));
        let _ = std::fs::remove_file(root.join(DPKG_UNSAFE_IO));
        let _ = std::fs::remove_file(root.join(UPDATE_INITRAMFS.trim_start_matches('/')));
        run_tolerant(&mut divert_update_initramfs(self.chroot, "--remove"));
        if let Some(path) = &self.proxy_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `dpkg-divert` adding (`--add`) or removing (`--remove`) the diversion that parks the real
/// update-initramfs while apt runs.
fn divert_update_initramfs(chroot: &Chroot, action: &str) -> std::process::Command {
    let mut divert = chroot.command("dpkg-divert");
    divert.args([
        "--local",
        "--rename",
        "--divert",
        UPDATE_INITRAMFS_DIVERTED,
        action,
        UPDATE_INITRAMFS,
    ]);
    divert
}

/// Writes a file of the installer's into the target, creating its directory, with `mode`
/// when given.
fn put(path: &Path, text: &str, mode: Option<u32>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    match mode {
        Some(mode) => set_mode(path, mode),
        None => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: mdadm
Status: install ok installed
Version: 4.4-1

Package: lvm2
Status: deinstall ok config-files
Version: 2.03

Package: linux-image-6.12.38+deb13-amd64
Status: install ok installed
";

    #[test]
    fn installed_and_config_only_packages_are_told_apart() {
        let installed = installed_packages(STATUS);
        assert!(installed.contains("mdadm"));
        assert!(!installed.contains("lvm2"));
        assert_eq!(config_only_packages(STATUS), vec!["lvm2"]);
    }

    #[test]
    fn only_missing_packages_are_installed_and_kernels_are_not_doubled() {
        let installed = installed_packages(STATUS);
        let wanted: Vec<String> = ["mdadm", "lvm2", "linux-image-amd64", "cloud-init"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            missing_packages(&wanted, &installed, true),
            vec!["lvm2", "cloud-init"]
        );
        assert_eq!(
            missing_packages(&wanted, &installed, false),
            vec!["lvm2", "linux-image-amd64", "cloud-init"]
        );
    }

    #[test]
    fn a_bootable_image_needs_no_apt_but_a_missing_essential_brings_everything() {
        let conveniences: Vec<String> = ["curl", "sudo", "netplan.io", "shim-signed"]
            .map(String::from)
            .to_vec();
        let (install, skipped) = packages_to_install(&conveniences, false, false);
        assert!(install.is_empty());
        assert_eq!(skipped, conveniences);
        let mut with_grub = conveniences.clone();
        with_grub.push("grub-efi-amd64".into());
        let (install, skipped) = packages_to_install(&with_grub, false, false);
        assert_eq!(install, with_grub);
        assert!(skipped.is_empty());
        let rsync = vec!["rsync".to_string()];
        assert!(packages_to_install(&rsync, false, false).0.is_empty());
        assert_eq!(packages_to_install(&rsync, true, false).0, rsync);
        assert!(is_boot_critical("linux-generic-hwe-24.04", false, false));
        assert!(!is_boot_critical("grub-efi-amd64-signed", true, false));
    }

    #[test]
    fn with_secure_boot_shim_and_signed_grub_are_essential() {
        for name in [
            "shim-signed",
            "grub-efi-amd64-signed",
            "grub-efi-arm64-signed",
        ] {
            assert!(is_boot_critical(name, false, true), "{name}");
            assert!(!is_boot_critical(name, false, false), "{name}");
        }
        let missing = vec!["curl".to_string(), "shim-signed".to_string()];
        assert_eq!(packages_to_install(&missing, false, true).0, missing);
    }

    #[test]
    fn a_kernel_needs_its_modules_to_count() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("boot")).unwrap();
        std::fs::write(root.path().join("boot/vmlinuz-6.12.1-amd64"), "k").unwrap();
        assert!(!has_kernel(root.path()));
        std::fs::create_dir_all(root.path().join("usr/lib/modules/6.12.1-amd64")).unwrap();
        assert!(has_kernel(root.path()));
    }
}
