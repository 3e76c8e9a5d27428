//! What gets installed into (and removed from) the image, by distribution and architecture.
//!
//! The list is the seed's (`install_packages` and `get_architecture_config`), with decisions
//! of our own, each written next to its rule: the tools of every filesystem the install creates
//! (so fsck and cloud-init's resizefs work), busybox for the initramfs hooks, an SSH server
//! unless the orders opt out, `systemd-resolved` on Debian (so the DNS servers of network_data
//! reach `/etc/resolv.conf`), the signed GRUB and shim on aarch64 like x86_64 (both
//! distributions build them), and `linux-generic` on Ubuntu releases without an HWE kernel.

use crate::arch::Arch;
use crate::error::OrderError;
use serde::Serialize;

/// The fields of `/etc/os-release` that decide the package list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `ID`, e.g. `ubuntu`, `debian`.
    pub id: String,
    /// `ID_LIKE`, split on spaces, e.g. `["debian"]` on Ubuntu.
    pub id_like: Vec<String>,
    /// `VERSION_ID`, e.g. `24.04` or `13`; absent on Debian testing/unstable.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, e.g. `noble`, `trixie`.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for messages.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses os-release text (shell-style `KEY=value` lines, values optionally quoted).
    /// A missing `ID` means `linux`, as os-release(5) says.
    pub fn parse(text: &str) -> Self {
        let mut os = OsRelease {
            id: "linux".into(),
            ..Default::default()
        };
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            match key.trim() {
                "ID" => os.id = value.to_ascii_lowercase(),
                "ID_LIKE" => {
                    os.id_like = value
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect()
                }
                "VERSION_ID" => os.version_id = Some(value).filter(|v| !v.is_empty()),
                "VERSION_CODENAME" => os.version_codename = Some(value).filter(|v| !v.is_empty()),
                "PRETTY_NAME" => os.pretty_name = Some(value).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        os
    }

    /// Which family's package names apply, if any.
    pub fn family(&self) -> Option<Family> {
        let is = |name: &str| self.id == name || self.id_like.iter().any(|l| l == name);
        if self.id == "ubuntu" || (self.id != "debian" && is("ubuntu")) {
            Some(Family::Ubuntu)
        } else if is("debian") {
            Some(Family::Debian)
        } else {
            None
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("ID={}", self.id);
        if !self.id_like.is_empty() {
            s.push_str(&format!(" ID_LIKE=\"{}\"", self.id_like.join(" ")));
        }
        if let Some(p) = &self.pretty_name {
            s.push_str(&format!(" ({p})"));
        }
        s
    }
}

/// Removes one level of shell quoting and the backslash escapes os-release allows.
fn unquote(raw: &str) -> String {
    let inner = if raw.len() >= 2
        && ((raw.starts_with('"') && raw.ends_with('"'))
            || (raw.starts_with('\'') && raw.ends_with('\'')))
    {
        &raw[1..raw.len() - 1]
    } else {
        raw
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Package-naming family of a Debian-like distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Ubuntu and distributions with `ubuntu` in `ID_LIKE`.
    Ubuntu,
    /// Debian and its other derivatives.
    Debian,
}

/// One package to install and why, for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageRule {
    /// Debian package name.
    pub package: String,
    /// Why it is installed.
    pub reason: &'static str,
}

impl PackageRule {
    fn new(package: impl Into<String>, reason: &'static str) -> Self {
        Self {
            package: package.into(),
            reason,
        }
    }
}

/// Packages every install gets, whatever the distribution and architecture.
const BASE_PACKAGES: &[(&str, &str)] = &[
    (
        "cloud-init",
        "first-boot configuration from the NoCloud seed",
    ),
    (
        "curl",
        "as the seed installs it (cloud-init user scripts expect it)",
    ),
    ("efibootmgr", "UEFI boot entries"),
    ("grub-common", "update-grub and the GRUB tools"),
    (
        "initramfs-tools",
        "builds the initramfs that assembles RAID and activates LVM",
    ),
    (
        "iproute2",
        "cloud-init renames NICs and its network renderers need `ip`",
    ),
    ("lvm2", "root filesystem is on LVM"),
    ("mdadm", "RAID1 assembly (harmless without RAID)"),
    (
        "netplan.io",
        "cloud-init's network renderer, the same on Debian and Ubuntu",
    ),
    ("rsync", "keeps the second ESP in sync with the first"),
    (
        "e2fsprogs",
        "fsck.ext4 and resize2fs for the ext4 root (boot-time check, cloud-init's resizefs)",
    ),
    ("dosfstools", "fsck.vfat for the ESPs that fstab lists"),
    ("sudo", "cloud-init's default user gets sudo"),
    (
        "systemd-sysv",
        "systemd as init (container images may lack it)",
    ),
];

/// What the orders choose about the package list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PackageChoices {
    /// Install an SSH server (`ocimetal.ssh_server`, on unless the orders say no): cloud-init
    /// generates host keys and installs `public_keys` for it.
    pub ssh_server: bool,
}

impl Default for PackageChoices {
    fn default() -> Self {
        Self { ssh_server: true }
    }
}

/// Whether ocimetal installs into the distribution `os` describes, and with which family's
/// package names: Debian, Ubuntu, and distributions whose `ID_LIKE` names either. The one
/// rule behind the check before the wipe (on the os-release read from the image's layers)
/// and the package decision after the pull (on the os-release of the target), so the two
/// cannot disagree.
pub fn installable(os: &OsRelease) -> Result<Family, OrderError> {
    os.family().ok_or_else(|| {
        OrderError::new(
            "image",
            format!(
                "the image's /etc/os-release says {}; ocimetal installs Debian, Ubuntu and \
                 distributions whose ID_LIKE names debian or ubuntu",
                os.describe()
            ),
        )
    })
}

/// The refusal of an image without an os-release, before the wipe and after the pull alike.
pub fn no_os_release() -> OrderError {
    OrderError::new(
        "image",
        "the image has no /etc/os-release or /usr/lib/os-release; use a Debian or Ubuntu image",
    )
}

/// The rules for `os` on `arch`: base tools, boot loader, kernel, in install order.
pub fn package_rules(
    os: &OsRelease,
    arch: Arch,
    choices: PackageChoices,
) -> Result<Vec<PackageRule>, OrderError> {
    let family = installable(os)?;
    let mut rules: Vec<PackageRule> = BASE_PACKAGES
        .iter()
        .map(|(name, reason)| PackageRule::new(*name, reason))
        .collect();
    // initramfs-tools falls back to klibc without busybox, and the hooks of mdadm (`rm`, a
    // `mount -o relatime` of efivarfs) fail under klibc at every boot.
    rules.push(PackageRule::new(
        match family {
            Family::Debian => "busybox",
            Family::Ubuntu => "busybox-initramfs",
        },
        "the initramfs hooks (mdadm's) need busybox's tools, klibc's do not fit them",
    ));
    if choices.ssh_server {
        rules.push(PackageRule::new(
            "openssh-server",
            "a server is reached over SSH: cloud-init makes host keys and installs public_keys \
             (opt out with ocimetal.ssh_server=no)",
        ));
    }
    if family == Family::Debian {
        // Ubuntu's systemd ships resolved; Debian split it out, and without it netplan's
        // nameservers never reach /etc/resolv.conf.
        rules.push(PackageRule::new(
            "systemd-resolved",
            "applies the DNS servers netplan configures (a separate package on Debian)",
        ));
    }
    let boot: &[&str] = match arch {
        Arch::X86_64 => &["grub-efi-amd64", "grub-efi-amd64-signed", "shim-signed"],
        // The seed installs only the unsigned pair; Debian and Ubuntu both publish signed GRUB
        // and shim for arm64, so Secure Boot works there too.
        Arch::Aarch64 => &[
            "grub-efi-arm64",
            "grub-efi-arm64-bin",
            "grub-efi-arm64-signed",
            "shim-signed",
        ],
    };
    rules.extend(
        boot.iter()
            .map(|p| PackageRule::new(*p, "UEFI boot loader (GRUB, signed GRUB and shim)")),
    );
    rules.push(kernel_rule(os, family, arch));
    Ok(rules)
}

/// The package names of [`package_rules`], in order.
pub fn packages_for(
    os: &OsRelease,
    arch: Arch,
    choices: PackageChoices,
) -> Result<Vec<String>, OrderError> {
    Ok(package_rules(os, arch, choices)?
        .into_iter()
        .map(|r| r.package)
        .collect())
}

fn kernel_rule(os: &OsRelease, family: Family, arch: Arch) -> PackageRule {
    match family {
        Family::Ubuntu => match os.version_id.as_deref() {
            // HWE metapackages exist for LTS releases only (YY.04 with an even YY).
            Some(v) if os.id == "ubuntu" && is_ubuntu_lts(v) => PackageRule::new(
                format!("linux-generic-hwe-{v}"),
                "kernel: Ubuntu LTS hardware-enablement kernel",
            ),
            _ => PackageRule::new(
                "linux-generic",
                "kernel: Ubuntu generic kernel (no HWE kernel for this release)",
            ),
        },
        Family::Debian => PackageRule::new(
            format!("linux-image-{}", arch.deb_arch()),
            "kernel: Debian kernel metapackage",
        ),
    }
}

fn is_ubuntu_lts(version: &str) -> bool {
    match version.split_once('.') {
        Some((year, "04")) => year.parse::<u32>().is_ok_and(|y| y % 2 == 0),
        _ => false,
    }
}

/// The snap names in `snap list` output: the first column of the lines under the `Name ...`
/// header (no header, as in "No snaps are installed yet.", means none).
pub fn parse_snap_list(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some("Name"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The order to `snap remove --purge` the installed snaps in: a snap cannot go while another
/// needs it, so applications first, then `lxd`, then the `core*` bases, then `snapd` (the
/// seed's order).
pub fn snap_removal_order(installed: &[String]) -> Vec<String> {
    let rank = |name: &str| match name {
        "lxd" => 1,
        "snapd" => 3,
        n if n.starts_with("core") => 2,
        _ => 0,
    };
    let mut ordered: Vec<String> = installed.to_vec();
    // Stable: snaps of the same rank keep `snap list` order.
    ordered.sort_by_key(|name| rank(name));
    ordered
}

/// Packages purged before installing, so no snap machinery stays behind (Ubuntu family only;
/// Debian images do not carry them).
pub fn packages_to_purge(os: &OsRelease) -> Vec<String> {
    match os.family() {
        Some(Family::Ubuntu) => ["lxd", "lxd-agent-loader", "lxd-installer", "snapd"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UBUNTU_2404: &str = r#"PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
UBUNTU_CODENAME=noble
"#;

    const DEBIAN_13: &str = r#"PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
"#;

    #[test]
    fn parses_os_release_quoting_and_fields() {
        let os = OsRelease::parse(UBUNTU_2404);
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.id_like, ["debian"]);
        assert_eq!(os.version_id.as_deref(), Some("24.04"));
        assert_eq!(os.version_codename.as_deref(), Some("noble"));
        assert_eq!(os.pretty_name.as_deref(), Some("Ubuntu 24.04.1 LTS"));

        let os = OsRelease::parse(
            "# comment\nID='pop'\nID_LIKE=\"ubuntu debian\"\nNAME=\"A \\\"q\\\"\"\n",
        );
        assert_eq!(os.id, "pop");
        assert_eq!(os.id_like, ["ubuntu", "debian"]);
        assert_eq!(os.version_id, None);
        assert_eq!(os.family(), Some(Family::Ubuntu));
        assert_eq!(OsRelease::parse("").id, "linux");
    }

    #[test]
    fn ubuntu_lts_on_x86_64_gets_the_seed_list_and_the_hwe_kernel() {
        let os = OsRelease::parse(UBUNTU_2404);
        assert_eq!(
            packages_for(&os, Arch::X86_64, PackageChoices::default()).expect("supported"),
            [
                "cloud-init",
                "curl",
                "efibootmgr",
                "grub-common",
                "initramfs-tools",
                "iproute2",
                "lvm2",
                "mdadm",
                "netplan.io",
                "rsync",
                "e2fsprogs",
                "dosfstools",
                "sudo",
                "systemd-sysv",
                "busybox-initramfs",
                "openssh-server",
                "grub-efi-amd64",
                "grub-efi-amd64-signed",
                "shim-signed",
                "linux-generic-hwe-24.04",
            ]
        );
    }

    #[test]
    fn debian_on_aarch64_gets_resolved_signed_arm64_grub_and_the_arm64_kernel() {
        let os = OsRelease::parse(DEBIAN_13);
        let pkgs = packages_for(&os, Arch::Aarch64, PackageChoices::default()).expect("supported");
        assert_eq!(
            pkgs[14..],
            [
                "busybox",
                "openssh-server",
                "systemd-resolved",
                "grub-efi-arm64",
                "grub-efi-arm64-bin",
                "grub-efi-arm64-signed",
                "shim-signed",
                "linux-image-arm64",
            ]
        );
        assert_eq!(
            packages_for(&os, Arch::X86_64, PackageChoices::default())
                .expect("supported")
                .last()
                .map(String::as_str),
            Some("linux-image-amd64")
        );
    }

    #[test]
    fn ubuntu_interim_releases_and_derivatives_get_linux_generic() {
        let interim = OsRelease::parse("ID=ubuntu\nVERSION_ID=\"24.10\"\n");
        let mint = OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22\"\n");
        let old_lts = OsRelease::parse("ID=ubuntu\nVERSION_ID=\"22.04\"\n");
        let last = |os: &OsRelease| {
            packages_for(os, Arch::X86_64, PackageChoices::default())
                .expect("ok")
                .pop()
        };
        assert_eq!(last(&interim).as_deref(), Some("linux-generic"));
        assert_eq!(last(&mint).as_deref(), Some("linux-generic"));
        assert_eq!(last(&old_lts).as_deref(), Some("linux-generic-hwe-22.04"));
        assert_eq!(
            last(&OsRelease::parse("ID=ubuntu\nVERSION_ID=23.04")).as_deref(),
            Some("linux-generic")
        );
    }

    #[test]
    fn non_debian_images_are_an_order_error_naming_what_is_supported() {
        let os = OsRelease::parse("ID=fedora\nVERSION_ID=41\nPRETTY_NAME=\"Fedora Linux 41\"\n");
        let e =
            packages_for(&os, Arch::X86_64, PackageChoices::default()).expect_err("unsupported");
        assert_eq!(e.field, "image");
        assert!(e.problem.contains("ID=fedora"), "{e}");
        assert!(e.problem.contains("Debian, Ubuntu"), "{e}");
    }

    #[test]
    fn one_rule_says_which_distributions_are_installable() {
        let family = |text: &str| installable(&OsRelease::parse(text)).ok();
        assert_eq!(family(DEBIAN_13), Some(Family::Debian));
        assert_eq!(family(UBUNTU_2404), Some(Family::Ubuntu));
        assert_eq!(
            family("ID=raspbian\nID_LIKE=debian\n"),
            Some(Family::Debian)
        );
        assert_eq!(
            family("ID=pop\nID_LIKE=\"ubuntu debian\"\n"),
            Some(Family::Ubuntu)
        );
        for other in [
            "ID=fedora\n",
            "ID=alpine\n",
            "",
            "ID_LIKE=\"rhel fedora\"\n",
        ] {
            let err = installable(&OsRelease::parse(other)).expect_err(other);
            assert_eq!(err.field, "image");
        }
        // The package rules refuse exactly what the rule refuses.
        for text in [
            DEBIAN_13,
            UBUNTU_2404,
            "ID=fedora\n",
            "ID=linuxmint\nID_LIKE=ubuntu\n",
        ] {
            let os = OsRelease::parse(text);
            assert_eq!(
                installable(&os).is_ok(),
                package_rules(&os, Arch::X86_64, PackageChoices::default()).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn the_ssh_server_is_on_by_default_and_the_orders_can_leave_it_out() {
        let os = OsRelease::parse(DEBIAN_13);
        let with = packages_for(&os, Arch::X86_64, PackageChoices::default()).expect("ok");
        let without =
            packages_for(&os, Arch::X86_64, PackageChoices { ssh_server: false }).expect("ok");
        assert!(with.iter().any(|p| p == "openssh-server"));
        assert!(!without.iter().any(|p| p == "openssh-server"));
        assert_eq!(with.len(), without.len() + 1);
        for tool in ["e2fsprogs", "dosfstools", "busybox"] {
            assert!(without.iter().any(|p| p == tool), "{tool}");
        }
    }

    #[test]
    fn every_rule_has_a_reason() {
        let os = OsRelease::parse(DEBIAN_13);
        let rules = package_rules(&os, Arch::X86_64, PackageChoices::default()).expect("ok");
        assert!(rules.iter().all(|r| !r.reason.is_empty()));
        let json = serde_json::to_value(&rules[0]).expect("serialise");
        assert_eq!(json["package"], "cloud-init");
    }

    #[test]
    fn purges_snap_machinery_on_ubuntu_only() {
        assert_eq!(
            packages_to_purge(&OsRelease::parse(UBUNTU_2404)),
            ["lxd", "lxd-agent-loader", "lxd-installer", "snapd"]
        );
        assert!(packages_to_purge(&OsRelease::parse(DEBIAN_13)).is_empty());
    }

    #[test]
    fn snaps_are_removed_applications_first_then_lxd_bases_and_snapd() {
        let listed = "Name    Version   Rev    Tracking       Publisher   Notes\n\
                      core22  20240111  1122   latest/stable  canonical✓  base\n\
                      lxd     5.21.1    28463  5.21/stable    canonical✓  -\n\
                      snapd   2.63      21759  latest/stable  canonical✓  snapd\n\
                      hello   2.10      42     latest/stable  canonical✓  -\n\
                      core20  20240227  2264   latest/stable  canonical✓  base\n";
        let names = parse_snap_list(listed);
        assert_eq!(names, ["core22", "lxd", "snapd", "hello", "core20"]);
        assert_eq!(
            snap_removal_order(&names),
            ["hello", "lxd", "core22", "core20", "snapd"]
        );
        assert!(parse_snap_list("No snaps are installed yet.\n").is_empty());
    }

    #[test]
    fn arch_names() {
        for (input, arch) in [
            ("x86_64", Arch::X86_64),
            ("amd64", Arch::X86_64),
            ("aarch64", Arch::Aarch64),
            ("arm64", Arch::Aarch64),
        ] {
            assert_eq!(Arch::parse(input).expect("valid"), arch);
        }
        assert_eq!(Arch::parse("riscv64").expect_err("invalid").field, "arch");
        assert_eq!(Arch::X86_64.efi_target(), "x86_64-efi");
        assert_eq!(Arch::Aarch64.efi_target(), "arm64-efi");
        assert_eq!(Arch::X86_64.removable_efi_name(), "BOOTX64.EFI");
        assert_eq!(Arch::Aarch64.removable_efi_name(), "BOOTAA64.EFI");
        assert_eq!(Arch::X86_64.oci_platform().to_string(), "linux/amd64");
        assert_eq!(Arch::Aarch64.oci_platform().to_string(), "linux/arm64");
        assert_eq!(Arch::Aarch64.deb_arch(), "arm64");
        assert_eq!(Arch::Aarch64.to_string(), "aarch64");
        assert_eq!(serde_json::to_value(Arch::X86_64).expect("ser"), "x86_64");
    }
}
