//! The dpkg database of the image and what apt has to do about it: pure decisions.

use std::collections::BTreeSet;

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

/// Packages the image's own network stack needs: cloud-init renders ENI first when ifupdown
/// is installed (its default renderer order), and the ENI renderer adds network_data's routes
/// with `route` from net-tools, behind `|| true`: without it every static route is lost
/// without a word.
pub fn renderer_needs(installed: &BTreeSet<String>) -> Vec<String> {
    if installed.contains("ifupdown") {
        vec!["net-tools".to_string()]
    } else {
        Vec::new()
    }
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

/// Without these the installed system cannot boot as planned, or not cleanly: kernel, GRUB's
/// EFI build, the initramfs generator and the busybox its hooks need, LVM, an init, cloud-init
/// for the seed and the `ip` its network renderers need, the tools of the filesystems the install made (fsck runs at every boot); with
/// RAID1 also mdadm and the rsync the ESP mirroring needs; with Secure Boot on, shim and the
/// signed GRUB too.
pub fn is_boot_critical(name: &str, raid: bool, secure_boot: bool) -> bool {
    let signed = name.ends_with("-signed");
    let grub_efi = name.starts_with("grub-efi-") && (!signed || secure_boot);
    let shim = name.starts_with("shim-signed") && secure_boot;
    let always = [
        "initramfs-tools",
        "lvm2",
        "cloud-init",
        "systemd-sysv",
        "e2fsprogs",
        "dosfstools",
        "busybox",
        "busybox-initramfs",
        "iproute2",
        "net-tools",
    ];
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
fn is_kernel_package(name: &str) -> bool {
    name.starts_with("linux-image-") || name.starts_with("linux-generic")
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
    fn an_image_with_ifupdown_needs_net_tools_for_its_routes() {
        let with = installed_packages("Package: ifupdown\nStatus: install ok installed\n");
        assert_eq!(renderer_needs(&with), ["net-tools"]);
        assert!(renderer_needs(&installed_packages(STATUS)).is_empty());
        assert!(is_boot_critical("net-tools", false, false));
    }

    #[test]
    fn the_tools_a_clean_first_boot_needs_are_essential_the_ssh_server_is_not() {
        for name in [
            "e2fsprogs",
            "dosfstools",
            "busybox",
            "busybox-initramfs",
            "iproute2",
        ] {
            assert!(is_boot_critical(name, false, false), "{name}");
        }
        let ssh = vec!["openssh-server".to_string()];
        assert_eq!(packages_to_install(&ssh, false, false), (vec![], ssh));
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
}
