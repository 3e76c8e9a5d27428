//! The plan: a pure function of orders, inventory and architecture.
//!
//! Every decision the installer makes (image, disks, wipe list, layout, storage stack, packages,
//! files, bootloader, EFI entries, what happens at the end) is taken here, validated, and
//! recorded as a list of typed [`Step`]s that `ocimetal plan` prints and `ocimetal install`
//! runs, in that order. Nothing here touches a disk or the network.

pub mod layout;
pub mod reentry;
mod refine;
mod render;
pub mod step;
pub mod system;

pub use layout::{partition_path, DiskLayout, Partition};
pub use reentry::orders_hash;
pub use refine::{refine, ImageFacts};
pub use render::{render_summary, rendered_files, step_detail, RenderedFile};
pub use step::*;

use crate::arch::Arch;
use crate::config::{FailureAction, HintsInput, Orders, RebootAction, Secret, Sourced, WipeMode};
use crate::error::OrderError;
use crate::hints::{select_targets, RootDeviceHints};
use crate::inventory::BlockDevice;
use crate::oci::{ImageRef, Platform};
use serde::Serialize;
use system::packages::{OsRelease, PackageChoices};

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
/// Where the installed system keeps the plan and the install's journal (target-relative).
pub const LOG_DIR: &str = "var/log/ocimetal";
/// Prefix of our EFI boot entry labels; entries with these labels are ours to replace.
pub const BOOT_ENTRY_PREFIX: &str = "ocimetal";

/// Everything the install will do, decided up front: the main decisions for the operator, then
/// the steps that carry out every one of them.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Normalised image reference, e.g. `docker.io/library/ubuntu:24.04`.
    pub image: ImageRef,
    /// Which order gave the image (`instance_info.image_source`, `default`...).
    pub image_source: String,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: Platform,
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
    /// Hostname of the installed system.
    pub hostname: Option<String>,
    /// cloud-init's instance id.
    pub instance_id: Option<String>,
    /// Where it came from (`meta_data.uuid`, the node's `uuid`, `SMBIOS system UUID`,
    /// `derived from the orders`).
    pub instance_id_source: Option<String>,
    /// Where the configdrive was read from: a device, directory or image, a node field, a
    /// URL (without password or query); `None` when there is none.
    pub configdrive: Option<String>,
    /// Which source gave it (`--configdrive`, `ocimetal.configdrive`,
    /// `instance_info.configdrive`, `config-2 medium`, `ocimetal.configdrive_url`,
    /// `installer ISO`).
    pub configdrive_source: Option<String>,
    /// Which source gave the user_data (`configdrive`, `ocimetal.user_data_url`); the content
    /// is never shown.
    pub user_data_source: Option<String>,
    /// What happens after a successful install.
    pub reboot: RebootAction,
    /// Reinstall even when the same deployment is on disk (no re-entry step).
    pub force: bool,
    /// What a failed install does once it has reported the failure.
    pub on_failure: FailureAction,
    /// The webhook that hears every step's events; printed without credentials or query.
    #[serde(serialize_with = "serialize_url")]
    pub report_url: Option<String>,
    /// The webhook's `Authorization` header value.
    pub report_auth: Option<Secret>,
    /// The ordered steps the installer executes.
    pub steps: Vec<Step>,
    /// Notes about the orders for the log (ignored keys, fallbacks), free of secrets.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Plan {
    /// The first step of a kind, e.g. `plan.find(|s| match s { Step::Raid(r) => Some(r), _ => None })`.
    pub fn find<'a, T>(&'a self, pick: impl Fn(&'a Step) -> Option<&'a T>) -> Option<&'a T> {
        self.steps.iter().find_map(pick)
    }
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
    let arch = input.arch;
    let image = normalize_image(&orders.image)?;
    let platform = arch.oci_platform();
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
    let wipe: Vec<String> = match wipe_mode {
        WipeMode::All => input.devices.iter().map(|d| d.name.clone()).collect(),
        WipeMode::Target => disks.clone(),
    };

    let layout = layout::layouts(&selection.disks, raid, hints_field)?;
    let hostname = orders.hostname.as_ref().map(|h| h.value.clone());
    let (order_files, warnings) = system::assemble::order_files(orders, raid)?;
    let orders_hash = orders_hash(orders);
    let esps: Vec<MountPoint> = layout
        .iter()
        .enumerate()
        .map(|(index, disk)| MountPoint {
            device: disk.partitions[0].device.clone(),
            at: esp_mountpoint(index),
            fstype: FsType::Vfat,
            options: Some("umask=0077".to_string()),
        })
        .collect();
    let raid_array = raid.then(|| RaidArray {
        device: RAID_DEVICE.to_string(),
        level: 1,
        metadata: "1.2".to_string(),
        bitmap: "internal".to_string(),
        md_name: RAID_NAME.to_string(),
        homehost: homehost(orders),
        members: layout
            .iter()
            .map(|l| l.partitions[1].device.clone())
            .collect(),
    });
    let lvm = Lvm {
        pv: match &raid_array {
            Some(array) => array.device.clone(),
            None => layout[0].partitions[1].device.clone(),
        },
        vg: VG_NAME.to_string(),
        lv: LV_NAME.to_string(),
        lv_path: format!("/dev/{VG_NAME}/{LV_NAME}"),
        extents: "100%FREE".to_string(),
    };
    let boot_entries = boot_entries(&layout, arch);

    let mut steps = Vec::new();
    if !orders.force {
        steps.push(Step::Reentry(reentry::reentry_step(
            orders,
            input.devices,
            arch,
        )?));
    }
    let mut not_in_use = wipe.clone();
    not_in_use.extend(disks.iter().filter(|d| !wipe.contains(d)).cloned());
    steps.push(Step::Validate(Validate {
        image: image.clone(),
        platform: platform.clone(),
        registry: RegistryAccess {
            insecure_registries: orders.insecure_registries.clone(),
            mirrors: orders.registry_mirrors.clone(),
            auth_file: orders.auth_file.clone(),
            pull_secret: orders.image_pull_secret.clone(),
            ca_file: orders.ca_file.clone(),
        },
        not_in_use,
    }));
    steps.push(Step::Wipe(Wipe {
        devices: wipe.clone(),
    }));
    steps.push(Step::Partition(PartitionDisks {
        disks: layout.clone(),
    }));
    if let Some(array) = &raid_array {
        steps.push(Step::Raid(array.clone()));
    }
    steps.push(Step::Lvm(lvm.clone()));
    steps.push(Step::Mkfs(Mkfs {
        filesystems: filesystems(&lvm, &esps),
    }));
    steps.push(Step::Mount(Mount {
        mounts: vec![MountPoint {
            device: lvm.lv_path.clone(),
            at: "/".to_string(),
            fstype: FsType::Ext4,
            options: None,
        }],
    }));
    // Layers go onto the bare root filesystem: the applier never crosses a mount point, so
    // the ESP is mounted only afterwards.
    steps.push(Step::Pull(Pull {
        image: image.clone(),
        platform: platform.clone(),
    }));
    steps.push(Step::Mount(Mount {
        mounts: esps[..1].to_vec(),
    }));
    let choices = PackageChoices {
        ssh_server: orders.ssh_server,
    };
    steps.push(Step::Packages(Packages::DependsOnImage {
        rules: package_sets(arch, choices)?,
        arch,
        raid,
        choices,
        apt_proxy: orders.apt_proxy.clone(),
    }));
    let mut edits = vec![FileEdit::InitramfsModules, FileEdit::InitramfsConf];
    edits.push(FileEdit::GrubDefault);
    if raid {
        edits.push(FileEdit::MdadmConf);
    }
    steps.push(Step::Files(Files {
        files: order_files,
        edits,
        arch,
        raid,
        boot: system::boot::BootChoices::from_orders(
            orders.console.as_deref(),
            &orders.kernel_args,
            arch,
        )?,
    }));
    steps.push(Step::Initramfs(Initramfs { raid }));
    if esps.len() > 1 {
        steps.push(Step::Mount(Mount {
            mounts: esps[1..].to_vec(),
        }));
    }
    steps.push(Step::Bootloader(Bootloader {
        installs: esps
            .iter()
            .map(|esp| BootloaderInstall {
                esp: esp.device.clone(),
                efi_directory: esp.at.clone(),
                target: arch.efi_target().to_string(),
                removable: Some(arch.removable_efi_name().to_string()),
            })
            .collect(),
        shim: arch.shim_loader_name().to_string(),
    }));
    if orders.reboot.value == RebootAction::Kexec {
        steps.push(Step::KexecLoad(KexecLoad {
            root: format!("LABEL={ROOT_LABEL}"),
        }));
    }
    steps.push(Step::Record(Record {
        node_uuid: reentry::node_identity(orders),
        orders_hash,
        image: image.clone(),
        platform: platform.clone(),
        disks: selection.disks.iter().map(Into::into).collect(),
        path: system::record::DEPLOYMENT_RECORD_PATH.to_string(),
        log_dir: LOG_DIR.to_string(),
        markers: esps.iter().map(|esp| esp.at.clone()).collect(),
    }));
    steps.push(Step::Finish(Finish {
        vg: lvm.vg.clone(),
        raid: raid_array.as_ref().map(|a| a.device.clone()),
    }));
    steps.push(Step::EfiEntries(EfiEntries {
        entries: boot_entries,
    }));
    steps.push(Step::Power(Power {
        action: orders.reboot.value,
    }));

    Ok(Plan {
        image,
        image_source: orders.image.key.clone(),
        platform,
        arch,
        disks,
        disk_details: selection.disks.clone(),
        hints: selection.hints.clone(),
        hints_source: orders.root_device_hints.as_ref().map(|h| h.key.clone()),
        raid,
        wipe_mode,
        wipe_mode_source,
        wipe,
        hostname,
        instance_id: orders.instance_id.as_ref().map(|id| id.value.clone()),
        instance_id_source: orders.instance_id.as_ref().map(|id| id.key.clone()),
        configdrive: orders.configdrive_origin.clone(),
        configdrive_source: orders.configdrive_source.clone(),
        user_data_source: orders.user_data_source.clone(),
        reboot: orders.reboot.value,
        force: orders.force,
        on_failure: orders.on_failure,
        report_url: orders.report_url.as_ref().map(|u| u.value.clone()),
        report_auth: orders.report_auth.clone(),
        steps,
        warnings,
    })
}

fn serialize_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&crate::config::display_url(url)),
        None => s.serialize_none(),
    }
}

/// The checks of [`plan`] that need no disks: the image reference, the hints' grammar, and
/// the files the orders become (hostname, cloud-init seed, network config). For orders that
/// travel to another machine before they are planned, such as those an ISO carries.
pub fn check_orders(orders: &Orders) -> Result<(), OrderError> {
    normalize_image(&orders.image)?;
    let raid = match &orders.root_device_hints {
        Some(hints) if !matches!(&hints.value, HintsInput::Map(map) if map.is_empty()) => {
            RootDeviceHints::parse(&hints.value, &hints.key)?.is_raid1()
        }
        _ => false,
    };
    system::assemble::order_files(orders, raid)?;
    Ok(())
}

/// Normalises an image reference the way Docker does (`ubuntu:24.04` →
/// `docker.io/library/ubuntu:24.04`); an invalid one is an error naming the order key.
pub fn normalize_image(image: &Sourced<String>) -> Result<ImageRef, OrderError> {
    let raw = image.value.trim();
    raw.parse::<ImageRef>().map_err(|e| {
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

fn filesystems(lvm: &Lvm, esps: &[MountPoint]) -> Vec<Filesystem> {
    let root = Filesystem {
        device: lvm.lv_path.clone(),
        fstype: FsType::Ext4,
        label: ROOT_LABEL.to_string(),
        mountpoint: "/".to_string(),
    };
    let esps = esps.iter().enumerate().map(|(index, esp)| Filesystem {
        device: esp.device.clone(),
        fstype: FsType::Vfat,
        label: layout::esp_label(index).to_string(),
        mountpoint: esp.at.clone(),
    });
    std::iter::once(root).chain(esps).collect()
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
fn package_sets(arch: Arch, choices: PackageChoices) -> Result<Vec<PackageSet>, OrderError> {
    [("debian", "13"), ("ubuntu", "24.04")]
        .iter()
        .map(|(distro, version)| {
            let os = OsRelease::parse(&format!("ID={distro}\nVERSION_ID=\"{version}\"\n"));
            let packages = system::packages::packages_for(&os, arch, choices)?
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

fn boot_entries(layout: &[DiskLayout], arch: Arch) -> Vec<BootEntry> {
    layout
        .iter()
        .enumerate()
        .map(|(index, disk)| BootEntry {
            label: format!("{BOOT_ENTRY_PREFIX} {}", layout::esp_label(index)),
            disk: disk.disk.clone(),
            partition: 1,
            loader: format!("\\EFI\\{{OS_ID}}\\{}", arch.shim_loader_name()),
            without_shim: Some(format!("\\EFI\\{{OS_ID}}\\{}", arch.grub_loader_name())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Orders;
    use crate::config::{RebootAction, Secret, Source, Sourced};

    fn orders() -> Orders {
        Orders {
            node_uuid: None,
            image: Sourced::new("debian:13".to_string(), Source::Default, "default"),
            root_device_hints: None,
            wipe_mode: None,
            hostname: None,
            metal3_name: None,
            meta_data: Default::default(),
            user_data: Some(Secret::new("#cloud-config\n")),
            network_data: None,
            insecure_registries: vec![],
            registry_mirrors: vec![],
            image_pull_secret: None,
            auth_file: None,
            ca_file: None,
            apt_proxy: None,
            reboot: Sourced::new(RebootAction::Reboot, Source::Default, "default"),
            on_failure: Default::default(),
            report_url: None,
            report_auth: None,
            force: false,
            ssh_server: true,
            ssh_keys: Vec::new(),
            console: None,
            kernel_args: Vec::new(),
            debug: false,
            dry_run: false,
            configdrive_origin: None,
            configdrive_source: None,
            user_data_source: None,
            instance_id: None,
            warnings: vec![],
        }
    }

    #[test]
    fn digest_changes_with_what_shapes_the_system_and_hides_secrets() {
        let base = orders();
        let same = orders_hash(&base);
        assert_eq!(same, orders_hash(&orders()));
        let prefix = reentry::ORDERS_HASH_PREFIX;
        assert!(same.starts_with(prefix) && same.len() == prefix.len() + 64);
        // The digest of these orders is fixed: a change of ocimetal that changes it must bump
        // the format version, or every deployed node would look re-ordered.
        assert_eq!(
            same,
            "ocimetal-orders/2:sha256:58eec35cdbd30208e36e67270d52d9951b2ebd59d18805336d4ae4668ff0bdc2"
        );
        let mut other_wipe = orders();
        other_wipe.wipe_mode = Some(Sourced::new(WipeMode::All, Source::Cmdline, "x"));
        assert_ne!(same, orders_hash(&other_wipe));
        let mut other_image = orders();
        other_image.image.value = "debian:12".into();
        assert_ne!(same, orders_hash(&other_image));
        let mut other_user_data = orders();
        other_user_data.user_data = Some(Secret::new("#cloud-config\nx: 1\n"));
        assert_ne!(same, orders_hash(&other_user_data));
        let mut other_node = orders();
        other_node.node_uuid = Some("1234".into());
        assert_ne!(same, orders_hash(&other_node));
        assert!(!same.contains("cloud-config"));
    }
}
