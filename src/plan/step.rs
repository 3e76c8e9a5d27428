//! The steps of an install, as data: every value decided, in execution order.
//!
//! [`super::plan`] produces a `Vec<Step>`; `ocimetal plan` prints it (readable or JSON) and
//! `ocimetal install` runs exactly that list, one executor module per variant. Values that only
//! the image can decide (which packages it lacks, what its GRUB defaults say) are rules here,
//! made concrete by [`super::refine`] once the image is on disk.

use super::layout::DiskLayout;
use super::system::boot::BootChoices;
use super::system::packages::PackageChoices;
use super::system::record::RecordedDisk;
use super::system::TargetFile;
use crate::arch::Arch;
use crate::config::{RebootAction, RegistryMirror, Secret};
use crate::oci::{ImageRef, Platform};
use serde::Serialize;
use std::path::PathBuf;

/// One step of the install.
#[derive(Debug, Clone)]
pub enum Step {
    /// Boot the installed system instead when the disk already holds this deployment.
    Reentry(Reentry),
    /// Check the targets are not in use and resolve the image in the registry; the layer
    /// downloads start here, while the disks are prepared.
    Validate(Validate),
    /// Tear down holders and erase every signature.
    Wipe(Wipe),
    /// Write the GPTs.
    Partition(PartitionDisks),
    /// Create the md RAID1 array.
    Raid(RaidArray),
    /// PV, VG and root LV.
    Lvm(Lvm),
    /// Create the filesystems.
    Mkfs(Mkfs),
    /// Mount filesystems under the target root.
    Mount(Mount),
    /// Apply the image's layers onto the target root.
    Pull(Pull),
    /// Install what the image lacks, purge what it must not keep.
    Packages(Packages),
    /// Write the installed system's files.
    Files(Files),
    /// Build the initramfs once, after every file is written.
    Initramfs(Initramfs),
    /// grub-install to every ESP, then update-grub.
    Bootloader(Bootloader),
    /// Load the installed kernel for `ocimetal.reboot=kexec` while the target is mounted.
    KexecLoad(KexecLoad),
    /// The deployment record in the target and the markers on the ESPs.
    Record(Record),
    /// Unmount everything and deactivate LVM and md.
    Finish(Finish),
    /// The EFI boot entries in NVRAM.
    EfiEntries(EfiEntries),
    /// What happens at the end: reboot, poweroff, kexec or nothing.
    Power(Power),
}

/// The re-entry check: deployment markers on the ESPs of every eligible disk, judged by
/// [`super::reentry::judge`] before anything is touched.
#[derive(Debug, Clone, Serialize)]
pub struct Reentry {
    /// Every eligible disk: an ESP of ours would be its partition 1, read-only mounted to
    /// read a marker.
    pub disks: Vec<String>,
    /// Ironic's node UUID, when known: the same node means the same deployment.
    pub node_uuid: Option<String>,
    /// Digest of the orders that shape the result (see [`super::orders_hash`]).
    pub orders_hash: String,
    /// The normalised image reference (for markers with an older digest format).
    pub image: String,
    /// Boot loader file names to boot an ESP with, preferred first (shim, then GRUB).
    pub loaders: Vec<String>,
}

impl Reentry {
    /// (disk, ESP partition) for every disk looked at.
    pub fn esps(&self) -> Vec<(String, String)> {
        self.disks
            .iter()
            .map(|disk| (disk.clone(), super::layout::partition_path(disk, 1)))
            .collect()
    }
}

/// Registry access, as ordered. The pull secret is never printed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegistryAccess {
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mirrors tried before the origin.
    pub mirrors: Vec<RegistryMirror>,
    /// A docker `config.json` with credentials.
    pub auth_file: Option<PathBuf>,
    /// Ironic's `image_pull_secret`.
    pub pull_secret: Option<Secret>,
    /// Extra CA certificates.
    pub ca_file: Option<PathBuf>,
}

/// Resolve the image; refuse targets that hold a mounted filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Validate {
    /// Normalised image reference.
    pub image: ImageRef,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: Platform,
    /// How the registry is reached.
    pub registry: RegistryAccess,
    /// Disks that must hold no mounted filesystem (the wipe list and the targets).
    pub not_in_use: Vec<String>,
}

/// The wipe list.
#[derive(Debug, Clone, Serialize)]
pub struct Wipe {
    /// Whole disks, in order.
    pub devices: Vec<String>,
}

/// The GPT of every target disk.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionDisks {
    /// One layout per disk, primary first.
    pub disks: Vec<DiskLayout>,
}

/// The md RAID1 array.
#[derive(Debug, Clone, Serialize)]
pub struct RaidArray {
    pub device: String,
    pub level: u32,
    pub metadata: String,
    pub bitmap: String,
    /// mdadm `--name`.
    pub md_name: String,
    pub homehost: String,
    /// Member partitions, primary first.
    pub members: Vec<String>,
}

/// The LVM stack on the physical volume.
#[derive(Debug, Clone, Serialize)]
pub struct Lvm {
    pub pv: String,
    pub vg: String,
    pub lv: String,
    /// The LV's device path, e.g. `/dev/vg_root/lv_root`.
    pub lv_path: String,
    /// Extents given to the LV.
    pub extents: String,
}

/// Filesystem types ocimetal creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    /// The root filesystem.
    Ext4,
    /// FAT32 ESPs.
    Vfat,
}

impl FsType {
    /// The kernel's (and mount's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ext4 => "ext4",
            Self::Vfat => "vfat",
        }
    }
}

/// A filesystem to create and where it is mounted in the target.
#[derive(Debug, Clone, Serialize)]
pub struct Filesystem {
    pub device: String,
    pub fstype: FsType,
    pub label: String,
    pub mountpoint: String,
}

/// The filesystems to create, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Mkfs {
    pub filesystems: Vec<Filesystem>,
}

/// One mount under the target root.
#[derive(Debug, Clone, Serialize)]
pub struct MountPoint {
    pub device: String,
    /// Path inside the target (`/`, `/boot/efi`).
    pub at: String,
    pub fstype: FsType,
    pub options: Option<String>,
}

/// Mounts made together.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub mounts: Vec<MountPoint>,
}

/// The layers go onto the bare root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Pull {
    pub image: ImageRef,
    pub platform: Platform,
}

/// The package step: a rule until the image is known, then concrete lists.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Packages {
    /// Decided by the image's os-release and dpkg database (see [`super::refine`]).
    DependsOnImage {
        /// The package rule per supported distribution, for this architecture.
        rules: Vec<PackageSet>,
        arch: Arch,
        raid: bool,
        /// What the orders chose (the SSH server).
        choices: PackageChoices,
        /// HTTP proxy for apt (printed without a password).
        #[serde(serialize_with = "crate::config::serialize_proxy")]
        apt_proxy: Option<String>,
    },
    /// What apt does.
    Decided {
        install: Vec<String>,
        purge: Vec<String>,
        /// Wanted but left out: the image boots without them and apt is not needed.
        skipped: Vec<String>,
        #[serde(serialize_with = "crate::config::serialize_proxy")]
        apt_proxy: Option<String>,
    },
}

/// The package rule of one distribution family.
#[derive(Debug, Clone, Serialize)]
pub struct PackageSet {
    /// `debian` or `ubuntu`.
    pub distro: String,
    /// Package names; `{VERSION_ID}` is replaced by the image's os-release value.
    pub packages: Vec<String>,
}

/// A file that edits one the image already has (or makes it when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileEdit {
    /// `/etc/default/grub`: root by label, serial console, OS prober off.
    GrubDefault,
    /// `/etc/initramfs-tools/modules`: the storage modules the root needs.
    InitramfsModules,
    /// `/etc/initramfs-tools/initramfs.conf`: all modules (edited only when present).
    InitramfsConf,
    /// `/etc/mdadm/mdadm.conf` from the array just created.
    MdadmConf,
}

/// The files of the installed system.
#[derive(Debug, Clone, Serialize)]
pub struct Files {
    /// Rendered from the orders alone.
    pub files: Vec<TargetFile>,
    /// Rendered from what the image (or the array) holds, in the refine.
    pub edits: Vec<FileEdit>,
    pub arch: Arch,
    pub raid: bool,
    /// The installed kernel's console and extra arguments (GRUB defaults).
    pub boot: BootChoices,
}

/// Build the initramfs.
#[derive(Debug, Clone, Serialize)]
pub struct Initramfs {
    /// With RAID1 the image's own initramfs is never kept (it cannot assemble md).
    pub raid: bool,
}

/// One `grub-install` run.
#[derive(Debug, Clone, Serialize)]
pub struct BootloaderInstall {
    /// ESP partition.
    pub esp: String,
    /// Mount point inside the target.
    pub efi_directory: String,
    /// GRUB target, e.g. `x86_64-efi`.
    pub target: String,
    /// Removable fallback loader also written (`\EFI\BOOT\BOOTX64.EFI`); `None` for none.
    pub removable: Option<String>,
}

/// GRUB on every ESP.
#[derive(Debug, Clone, Serialize)]
pub struct Bootloader {
    pub installs: Vec<BootloaderInstall>,
    /// The shim loader's file name: when grub-install put it on the primary ESP, the EFI
    /// entries start it (Secure Boot chain), otherwise GRUB itself.
    pub shim: String,
}

/// The installed kernel, loaded with `kexec -l`.
#[derive(Debug, Clone, Serialize)]
pub struct KexecLoad {
    /// The kernel command line's root; the ramdisk's `console=` settings are added.
    pub root: String,
}

/// The deployment record.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub node_uuid: Option<String>,
    pub orders_hash: String,
    pub image: ImageRef,
    pub platform: Platform,
    /// The target disks, by their stable identities.
    pub disks: Vec<RecordedDisk>,
    /// Target-relative path of the record.
    pub path: String,
    /// Target-relative directory that keeps the plan and the install's journal.
    pub log_dir: String,
    /// ESP mount points (in the target) that get the result file and the marker, last of all.
    pub markers: Vec<String>,
}

/// Unmount and deactivate.
#[derive(Debug, Clone, Serialize)]
pub struct Finish {
    pub vg: String,
    pub raid: Option<String>,
}

/// One EFI boot entry.
#[derive(Debug, Clone, Serialize)]
pub struct BootEntry {
    /// Label shown by the firmware; unique per ESP.
    pub label: String,
    /// Disk holding the ESP.
    pub disk: String,
    /// ESP partition number.
    pub partition: u32,
    /// Loader path on the ESP (`{OS_ID}` is the image's os-release ID until refined).
    pub loader: String,
    /// Until refined: the loader to use instead when the ESP has no shim (GRUB itself).
    pub without_shim: Option<String>,
}

/// EFI entries, ours first in BootOrder, BootNext on the primary.
#[derive(Debug, Clone, Serialize)]
pub struct EfiEntries {
    pub entries: Vec<BootEntry>,
}

/// The power action.
#[derive(Debug, Clone, Serialize)]
pub struct Power {
    pub action: RebootAction,
}

impl Step {
    /// The stable step name (`wipe`, `partition`, `pull`...), as the log and JSON show it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reentry(_) => "reentry",
            Self::Validate(_) => "validate",
            Self::Wipe(_) => "wipe",
            Self::Partition(_) => "partition",
            Self::Raid(_) => "raid",
            Self::Lvm(_) => "lvm",
            Self::Mkfs(_) => "mkfs",
            Self::Mount(_) => "mount",
            Self::Pull(_) => "pull",
            Self::Packages(_) => "packages",
            Self::Files(_) => "files",
            Self::Initramfs(_) => "initramfs",
            Self::Bootloader(_) => "bootloader",
            Self::KexecLoad(_) => "kexec-load",
            Self::Record(_) => "record",
            Self::Finish(_) => "finish",
            Self::EfiEntries(_) => "efi-entries",
            Self::Power(_) => "reboot",
        }
    }

    /// True while the step holds a rule that the image's facts decide (see [`super::refine`]).
    pub fn depends_on_image(&self) -> bool {
        match self {
            Self::Packages(Packages::DependsOnImage { .. }) => true,
            Self::Files(files) => !files.edits.is_empty(),
            Self::EfiEntries(efi) => efi.entries.iter().any(|e| e.without_shim.is_some()),
            _ => false,
        }
    }

    /// The step's data as JSON (its fields, without name and detail).
    fn data(&self) -> Result<serde_json::Value, serde_json::Error> {
        match self {
            Self::Reentry(s) => serde_json::to_value(s),
            Self::Validate(s) => serde_json::to_value(s),
            Self::Wipe(s) => serde_json::to_value(s),
            Self::Partition(s) => serde_json::to_value(s),
            Self::Raid(s) => serde_json::to_value(s),
            Self::Lvm(s) => serde_json::to_value(s),
            Self::Mkfs(s) => serde_json::to_value(s),
            Self::Mount(s) => serde_json::to_value(s),
            Self::Pull(s) => serde_json::to_value(s),
            Self::Packages(s) => serde_json::to_value(s),
            Self::Files(s) => serde_json::to_value(s),
            Self::Initramfs(s) => serde_json::to_value(s),
            Self::Bootloader(s) => serde_json::to_value(s),
            Self::KexecLoad(s) => serde_json::to_value(s),
            Self::Record(s) => serde_json::to_value(s),
            Self::Finish(s) => serde_json::to_value(s),
            Self::EfiEntries(s) => serde_json::to_value(s),
            Self::Power(s) => serde_json::to_value(s),
        }
    }
}

/// `{"name": …, "detail": …, …the step's fields}`.
impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let serde_json::Value::Object(fields) = self.data().map_err(S::Error::custom)? else {
            return Err(S::Error::custom("a step serialises to an object"));
        };
        if fields.contains_key("name") || fields.contains_key("detail") {
            return Err(S::Error::custom(format!(
                "step {} has a field named like the step's own name or detail",
                self.name()
            )));
        }
        let mut map = s.serialize_map(Some(fields.len() + 2))?;
        map.serialize_entry("name", self.name())?;
        map.serialize_entry("detail", &super::render::step_detail(self))?;
        for (key, value) in &fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
