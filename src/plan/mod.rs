//! The plan: a pure function of orders, inventory and architecture.
//!
//! Every decision the installer makes (image, disks, wipe list, layout, storage stack, packages,
//! files, bootloader, EFI entries, what happens at the end) is taken here, validated, and
//! recorded in a serialisable [`Plan`] that `ocimetal plan` prints and `ocimetal install`
//! executes. Nothing here touches a disk or the network.

pub mod layout;
mod render;

pub use layout::{partition_path, DiskLayout, Partition};
pub use render::render_summary;

use crate::config::{Orders, RebootAction, Sourced, WipeMode};
use crate::error::OrderError;
use crate::hints::{select_targets, RootDeviceHints};
use crate::inventory::BlockDevice;
use crate::target::packages::{Arch, OsRelease};
use serde::Serialize;

/// The md array the seed creates for RAID1.
pub const RAID_DEVICE: &str = "/dev/md0";
/// The md array name (`--name`).
pub const RAID_NAME: &str = "root";
/// Volume group of the root LV.
pub const VG_NAME: &str = "vg_root";
/// Root logical volume.
pub const LV_NAME: &str = "lv_root";
/// ext4 label of the root filesystem.
pub const ROOT_LABEL: &str = "ROOTFS";
/// Label of the first (or only) EFI system partition.
pub const ESP_LABEL: &str = "EFI";
/// Label of the second EFI system partition (RAID1 only).
pub const ESP2_LABEL: &str = "EFI2";
/// Where the first ESP is mounted.
pub const ESP_MOUNT: &str = "/boot/efi";
/// Where the second ESP is mounted when it is synced.
pub const ESP2_MOUNT: &str = "/boot/efi2";
/// Prefix of our EFI boot entry labels; entries with these labels are ours to replace.
pub const BOOT_ENTRY_PREFIX: &str = "ocimetal";

/// Everything the install will do, decided up front.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Normalised image reference, e.g. `docker.io/library/ubuntu:24.04`.
    pub image: String,
    /// Which order gave the image (`instance_info.image_source`, `default`...).
    pub image_source: String,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: String,
    /// Machine architecture the install targets.
    pub arch: Arch,
    /// Target disk paths, primary first.
    pub disks: Vec<String>,
    /// The target disks as the inventory described them.
    pub disk_details: Vec<BlockDevice>,
    /// The parsed hints that chose the disks, if any.
    pub hints: Option<RootDeviceHints>,
    /// Which order gave the hints.
    pub hints_source: Option<String>,
    /// Two disks mirrored with md RAID1.
    pub raid: bool,
    /// Wipe mode in force.
    pub wipe_mode: WipeMode,
    /// Which order gave the wipe mode (`default` when derived from RAID or not).
    pub wipe_mode_source: String,
    /// Every device that gets wiped, in order.
    pub wipe: Vec<String>,
    /// GPT per target disk.
    pub layout: Vec<DiskLayout>,
    /// The md mirror, for RAID1.
    pub raid_array: Option<RaidArray>,
    /// The LVM stack.
    pub lvm: Lvm,
    /// Filesystems to create, in order.
    pub filesystems: Vec<Filesystem>,
    /// Hostname of the installed system.
    pub hostname: Option<String>,
    /// Packages installed in the target, per distribution, for this architecture.
    pub packages: Vec<PackageSet>,
    /// Files written into the target (paths relative to its root).
    pub files: Vec<String>,
    /// GRUB installs, one per ESP.
    pub bootloader: Vec<BootloaderInstall>,
    /// EFI boot entries created in NVRAM, primary first.
    pub boot_entries: Vec<BootEntry>,
    /// What happens after a successful install.
    pub reboot: RebootAction,
    /// Reinstall even when the same deployment is on disk.
    pub force: bool,
    /// The ordered steps the installer executes.
    pub steps: Vec<Step>,
}

/// The md RAID1 array.
#[derive(Debug, Clone, Serialize)]
pub struct RaidArray {
    pub device: String,
    pub level: u32,
    pub metadata: String,
    pub bitmap: String,
    pub name: String,
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

/// A filesystem to create and where it is mounted in the target.
#[derive(Debug, Clone, Serialize)]
pub struct Filesystem {
    pub device: String,
    pub fstype: String,
    pub label: String,
    pub mountpoint: String,
}

/// The packages for one distribution family.
#[derive(Debug, Clone, Serialize)]
pub struct PackageSet {
    /// `debian` or `ubuntu`.
    pub distro: String,
    /// Package names; `{VERSION_ID}` is replaced by the image's os-release value.
    pub packages: Vec<String>,
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
    /// Also install the removable fallback path (`\EFI\BOOT\BOOTX64.EFI`).
    pub removable: bool,
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
    /// Loader path on the ESP; `{OS_ID}` is the image's os-release ID (`debian`, `ubuntu`).
    pub loader: String,
}

/// One step of the install, in execution order.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Stable step name (`wipe`, `partition`, `pull`...).
    pub name: String,
    /// What the step will do, for the operator.
    pub detail: String,
}

/// The inputs of [`plan`]: orders, the eligible disks, and the architecture.
pub struct PlanInput<'a> {
    pub orders: &'a Orders,
    /// Eligible disks (the installer's own media and mounted disks already excluded).
    pub devices: &'a [BlockDevice],
    pub arch: Arch,
}

/// Decides everything; validates every order. Pure: no I/O.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, OrderError> {
    let orders = input.orders;
    let image = normalize_image(&orders.image)?;
    let selection = select_targets(orders.root_device_hints.as_ref(), input.devices)?;
    let hints_field = orders
        .root_device_hints
        .as_ref()
        .map_or("root_device_hints", |h| h.key.as_str());
    let raid = selection.raid;
    let disks: Vec<String> = selection.disks.iter().map(|d| d.name.clone()).collect();

    let (wipe_mode, wipe_mode_source) = match &orders.wipe_mode {
        Some(mode) => (mode.value, mode.key.clone()),
        None if raid => (WipeMode::All, "default for RAID1".to_string()),
        None => (WipeMode::Target, "default for one disk".to_string()),
    };
    let wipe = match wipe_mode {
        WipeMode::All => input.devices.iter().map(|d| d.name.clone()).collect(),
        WipeMode::Target => disks.clone(),
    };

    let layout = layout::layouts(&selection.disks, raid, hints_field)?;
    let hostname = orders.hostname.as_ref().map(|h| h.value.clone());
    let raid_array = raid.then(|| RaidArray {
        device: RAID_DEVICE.to_string(),
        level: 1,
        metadata: "1.2".to_string(),
        bitmap: "internal".to_string(),
        name: RAID_NAME.to_string(),
        homehost: homehost(orders),
        members: layout
            .iter()
            .map(|l| l.partitions[1].device.clone())
            .collect(),
    });
    let pv = match &raid_array {
        Some(array) => array.device.clone(),
        None => layout[0].partitions[1].device.clone(),
    };
    let lvm = Lvm {
        pv,
        vg: VG_NAME.to_string(),
        lv: LV_NAME.to_string(),
        lv_path: format!("/dev/{VG_NAME}/{LV_NAME}"),
        extents: "100%FREE".to_string(),
    };
    let filesystems = filesystems(&layout, &lvm);
    let packages = package_sets(input.arch)?;
    let bootloader = bootloader_installs(&layout, input.arch);
    let boot_entries = boot_entries(&layout, input.arch);

    let mut plan = Plan {
        image,
        image_source: orders.image.key.clone(),
        platform: input.arch.oci_platform().to_string(),
        arch: input.arch,
        disks,
        disk_details: selection.disks.clone(),
        hints: selection.hints.clone(),
        hints_source: orders.root_device_hints.as_ref().map(|h| h.key.clone()),
        raid,
        wipe_mode,
        wipe_mode_source,
        wipe,
        layout,
        raid_array,
        lvm,
        filesystems,
        hostname,
        packages,
        files: Vec::new(),
        bootloader,
        boot_entries,
        reboot: orders.reboot.value,
        force: orders.force,
        steps: Vec::new(),
    };
    plan.files = target_files(&plan, orders)?;
    plan.steps = steps(&plan);
    Ok(plan)
}

/// Normalises an image reference the way Docker does (`ubuntu:24.04` →
/// `docker.io/library/ubuntu:24.04`); an invalid one is an error naming the order key.
pub fn normalize_image(image: &Sourced<String>) -> Result<String, OrderError> {
    let raw = image.value.trim();
    raw.parse::<oci_client::Reference>()
        .map(|r| r.whole())
        .map_err(|e| {
            OrderError::new(
                &image.key,
                format!(
                    "{raw:?} is not a valid image reference ({e}); expected e.g. \
                     `debian:13`, `registry.example.com:5000/team/os:1.2` or `name@sha256:<64 hex>`"
                ),
            )
        })
}

/// md `--homehost`: the seed uses metal3-name; fall back to the hostname, then a fixed name.
fn homehost(orders: &Orders) -> String {
    orders
        .metal3_name
        .clone()
        .or_else(|| orders.hostname.as_ref().map(|h| h.value.clone()))
        .unwrap_or_else(|| "ocimetal".to_string())
}

fn filesystems(layout: &[DiskLayout], lvm: &Lvm) -> Vec<Filesystem> {
    let mut out = vec![Filesystem {
        device: lvm.lv_path.clone(),
        fstype: "ext4".to_string(),
        label: ROOT_LABEL.to_string(),
        mountpoint: "/".to_string(),
    }];
    for (index, disk) in layout.iter().enumerate() {
        out.push(Filesystem {
            device: disk.partitions[0].device.clone(),
            fstype: "vfat".to_string(),
            label: layout::esp_label(index).to_string(),
            mountpoint: esp_mountpoint(index),
        });
    }
    out
}

/// `/boot/efi` for the primary ESP, `/boot/efi2` for the second (the seed's names).
pub fn esp_mountpoint(index: usize) -> String {
    match index {
        0 => ESP_MOUNT.to_string(),
        1 => ESP2_MOUNT.to_string(),
        n => format!("{ESP_MOUNT}{}", n + 1),
    }
}

/// The package rule for each supported family, shown with a placeholder version: Debian 13
/// and Ubuntu 24.04 (an LTS, which gets the HWE kernel; other releases get linux-generic).
fn package_sets(arch: Arch) -> Result<Vec<PackageSet>, OrderError> {
    [("debian", "13"), ("ubuntu", "24.04")]
        .iter()
        .map(|(distro, version)| {
            let os = OsRelease::parse(&format!("ID={distro}\nVERSION_ID=\"{version}\"\n"));
            let packages = crate::target::packages::packages_for(&os, arch)?
                .into_iter()
                .map(|p| p.replace(version, "{VERSION_ID}"))
                .collect();
            Ok(PackageSet {
                distro: distro.to_string(),
                packages,
            })
        })
        .collect()
}

fn bootloader_installs(layout: &[DiskLayout], arch: Arch) -> Vec<BootloaderInstall> {
    layout
        .iter()
        .enumerate()
        .map(|(index, disk)| BootloaderInstall {
            esp: disk.partitions[0].device.clone(),
            efi_directory: esp_mountpoint(index),
            target: arch.efi_target().to_string(),
            removable: true,
        })
        .collect()
}

fn boot_entries(layout: &[DiskLayout], arch: Arch) -> Vec<BootEntry> {
    layout
        .iter()
        .enumerate()
        .map(|(index, disk)| BootEntry {
            label: format!("{BOOT_ENTRY_PREFIX} {}", layout::esp_label(index)),
            disk: disk.disk.clone(),
            partition: 1,
            loader: format!("\\EFI\\{{OS_ID}}\\{}", arch.shim_loader_name()),
        })
        .collect()
}

/// The files the installer will write, rendered now with empty image files: the same code
/// path as the install, so network_data, hostname and proxy orders are validated here.
fn target_files(plan: &Plan, orders: &Orders) -> Result<Vec<String>, OrderError> {
    let empty = |_: &str| Some(String::new());
    let files = crate::target::write::target_files(plan, orders, "", &empty).map_err(|err| {
        err.downcast::<OrderError>()
            .unwrap_or_else(|other| OrderError::new("configdrive", format!("{other:#}")))
    })?;
    let mut paths: Vec<String> = files
        .iter()
        .map(|f| format!("/{}", f.path.display()))
        .collect();
    paths.push(format!(
        "/{}",
        crate::target::record::DEPLOYMENT_RECORD_PATH
    ));
    Ok(paths)
}

fn steps(plan: &Plan) -> Vec<Step> {
    let step = |name: &str, detail: String| Step {
        name: name.to_string(),
        detail,
    };
    let mut steps = vec![
        step(
            "validate",
            format!(
                "resolve {} for {} in the registry",
                plan.image, plan.platform
            ),
        ),
        step(
            "wipe",
            format!(
                "tear down holders (LVM, md) and wipe signatures on {}",
                plan.wipe.join(", ")
            ),
        ),
        step(
            "partition",
            format!(
                "GPT on {}: ESP 2 MiB..2050 MiB, data to the end",
                plan.disks.join(", ")
            ),
        ),
    ];
    if let Some(array) = &plan.raid_array {
        steps.push(step(
            "raid",
            format!(
                "mdadm RAID1 {} (metadata {}, bitmap {}, homehost {}) on {}",
                array.device,
                array.metadata,
                array.bitmap,
                array.homehost,
                array.members.join(" + ")
            ),
        ));
    }
    steps.extend([
        step(
            "lvm",
            format!(
                "PV {}, VG {}, LV {} {}",
                plan.lvm.pv, plan.lvm.vg, plan.lvm.lv, plan.lvm.extents
            ),
        ),
        step(
            "mkfs",
            plan.filesystems
                .iter()
                .map(|f| format!("{} {} ({})", f.fstype, f.device, f.label))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        step(
            "mount",
            "root LV and ESP(s) under a private mount point".to_string(),
        ),
        step(
            "pull",
            format!(
                "apply {} ({}) onto the root filesystem",
                plan.image, plan.platform
            ),
        ),
        step(
            "packages",
            "apt-get install what the image lacks; nothing (no network) when it already has \
             the kernel, GRUB, initramfs-tools, LVM, cloud-init and an init (and mdadm, rsync \
             for RAID1)"
                .to_string(),
        ),
        step("files", format!("write {} files", plan.files.len())),
        step(
            "initramfs",
            "update-initramfs once, after every file is written; an image's own initramfs \
             that already activates LVM is kept on one disk"
                .to_string(),
        ),
        step(
            "bootloader",
            format!(
                "grub-install ({}) to {} with the removable fallback; update-grub",
                plan.arch.efi_target(),
                plan.bootloader
                    .iter()
                    .map(|b| b.esp.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        step(
            "efi-entries",
            format!(
                "{}; first in BootOrder, BootNext = primary",
                plan.boot_entries
                    .iter()
                    .map(|e| format!("{:?} on {} part {}", e.label, e.disk, e.partition))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        step(
            "finish",
            "unmount and deactivate in reverse order".to_string(),
        ),
        step("reboot", format!("{:?}", plan.reboot).to_lowercase()),
    ]);
    steps
}
