//! Decisions only the image can settle, made concrete: a pure function of a planned step and
//! the facts read from the target once the image is on disk.

use super::step::{BootEntry, EfiEntries, Files, Packages, Step};
use super::system::assemble::{edit_path, render_edit};
use super::system::dpkg::{
    installed_packages, missing_packages, packages_to_install, renderer_needs,
};
use super::system::packages::{no_os_release, packages_for, packages_to_purge, OsRelease};
use crate::error::OrderError;
use std::collections::BTreeMap;

/// What the target (and, for Secure Boot and the array, the machine) shows at the time a step
/// runs. The executor fills in what it has read so far.
#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    /// The image's os-release.
    pub os: Option<OsRelease>,
    /// The image's `/var/lib/dpkg/status`.
    pub dpkg_status: String,
    /// Whether the image carries a kernel with its modules.
    pub has_kernel: bool,
    /// Whether the firmware enforces Secure Boot.
    pub secure_boot: bool,
    /// The current content of the files the plan edits, by target-relative path.
    pub existing: BTreeMap<String, String>,
    /// `mdadm --detail --scan` once the array exists.
    pub mdadm_scan: String,
    /// Whether the primary ESP holds shim for the image's OS (after grub-install).
    pub shim_on_esp: Option<bool>,
}

impl ImageFacts {
    /// The image's os-release `ID` (`debian`, `ubuntu`), once read.
    pub fn os_id(&self) -> &str {
        self.os.as_ref().map_or("", |os| os.id.as_str())
    }

    /// The target-relative paths whose content a step's refinement needs.
    pub fn paths_needed(step: &Step) -> Vec<&'static str> {
        match step {
            Step::Files(files) => files.edits.iter().map(edit_path).collect(),
            _ => Vec::new(),
        }
    }
}

/// The step with every "depends on the image" value decided from `facts`; steps without such
/// values come back as they are.
pub fn refine(step: &Step, facts: &ImageFacts) -> Result<Step, OrderError> {
    Ok(match step {
        Step::Packages(Packages::DependsOnImage {
            arch,
            raid,
            choices,
            apt_proxy,
            ..
        }) => {
            let os = facts.os.as_ref().ok_or_else(no_os_release)?;
            let installed = installed_packages(&facts.dpkg_status);
            let mut wanted = packages_for(os, *arch, *choices)?;
            wanted.extend(renderer_needs(&installed));
            let missing = missing_packages(&wanted, &installed, facts.has_kernel);
            let (install, skipped) = packages_to_install(&missing, *raid, facts.secure_boot);
            Step::Packages(Packages::Decided {
                install,
                purge: packages_to_purge(os)
                    .into_iter()
                    .filter(|p| installed.contains(p))
                    .collect(),
                skipped,
                apt_proxy: apt_proxy.clone(),
            })
        }
        Step::Files(files) if step.depends_on_image() => {
            let existing = |path: &str| facts.existing.get(path).cloned();
            let mut all = files.files.clone();
            all.extend(files.edits.iter().filter_map(|edit| {
                render_edit(edit, &existing, &facts.mdadm_scan, files.raid, &files.boot)
            }));
            Step::Files(Files {
                files: all,
                edits: Vec::new(),
                ..files.clone()
            })
        }
        Step::EfiEntries(efi) if step.depends_on_image() => {
            let os = facts.os.as_ref().ok_or_else(no_os_release)?;
            let shim = facts.shim_on_esp.unwrap_or(false);
            Step::EfiEntries(EfiEntries {
                entries: efi
                    .entries
                    .iter()
                    .map(|entry| BootEntry {
                        loader: match (&entry.without_shim, shim) {
                            (Some(grub), false) => grub.clone(),
                            _ => entry.loader.clone(),
                        }
                        .replace("{OS_ID}", &os.id),
                        without_shim: None,
                        ..entry.clone()
                    })
                    .collect(),
            })
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::plan::step::PackageSet;
    use crate::plan::system::packages::PackageChoices;

    fn debian() -> OsRelease {
        OsRelease::parse("ID=debian\nVERSION_ID=\"13\"\n")
    }

    fn packages_rule(raid: bool) -> Step {
        Step::Packages(Packages::DependsOnImage {
            rules: vec![PackageSet {
                distro: "debian".into(),
                packages: vec![],
            }],
            arch: Arch::X86_64,
            raid,
            choices: PackageChoices::default(),
            apt_proxy: None,
        })
    }

    #[test]
    fn a_bootable_image_needs_no_apt_and_a_bare_one_gets_everything_missing() {
        let wanted = packages_for(&debian(), Arch::X86_64, PackageChoices::default()).unwrap();
        let everything: String = wanted
            .iter()
            .map(|p| format!("Package: {p}\nStatus: install ok installed\n\n"))
            .collect();
        let facts = ImageFacts {
            os: Some(debian()),
            dpkg_status: everything,
            has_kernel: true,
            ..ImageFacts::default()
        };
        let Step::Packages(Packages::Decided { install, .. }) =
            refine(&packages_rule(true), &facts).unwrap()
        else {
            panic!("not decided")
        };
        assert!(install.is_empty(), "{install:?}");

        let bare = ImageFacts {
            os: Some(debian()),
            ..ImageFacts::default()
        };
        let Step::Packages(Packages::Decided { install, .. }) =
            refine(&packages_rule(true), &bare).unwrap()
        else {
            panic!("not decided")
        };
        assert_eq!(install, wanted);
    }

    #[test]
    fn without_os_release_the_image_is_refused_with_one_line() {
        let err = refine(&packages_rule(false), &ImageFacts::default()).unwrap_err();
        assert_eq!(err.field, "image");
        assert!(err.problem.contains("os-release"), "{}", err.problem);
    }

    #[test]
    fn the_efi_loader_is_shim_when_the_esp_has_it_and_grub_otherwise() {
        let planned = Step::EfiEntries(EfiEntries {
            entries: vec![BootEntry {
                label: "ocimetal EFI".into(),
                disk: "/dev/sda".into(),
                partition: 1,
                loader: "\\EFI\\{OS_ID}\\shimx64.efi".into(),
                without_shim: Some("\\EFI\\{OS_ID}\\grubx64.efi".into()),
            }],
        });
        let loader = |shim| {
            let facts = ImageFacts {
                os: Some(debian()),
                shim_on_esp: Some(shim),
                ..ImageFacts::default()
            };
            match refine(&planned, &facts).unwrap() {
                Step::EfiEntries(efi) => efi.entries[0].loader.clone(),
                _ => unreachable!(),
            }
        };
        assert_eq!(loader(true), "\\EFI\\debian\\shimx64.efi");
        assert_eq!(loader(false), "\\EFI\\debian\\grubx64.efi");
    }
}
