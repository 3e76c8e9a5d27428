//! Block device inventory with IPA's field names.
//!
//! The planner sees disks only through [`BlockDevice`]; the live machine is read from sysfs and
//! the udev database ([`scan`]), tests and dry runs read a JSON array of the same shape
//! ([`load_json`]). Devices that must never be installed onto are reported in
//! [`Scan::excluded`] with the reason, never silently dropped.

mod exclude;
mod table;

#[cfg(test)]
mod tests;

use crate::error::OrderError;
use crate::host::sysfs::{self, kernel_name_order as natural_cmp};
use crate::host::{transport, udev};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use table::render_table;

/// Volume label of the installer's own ISO/USB media; a device carrying it is never a target.
pub const BOOT_MEDIA_LABEL: &str = "OCIMETAL";

/// Filesystem label of an OpenStack configuration drive (matched without regard to case, as
/// FAT labels are upper case).
pub const CONFIG_DRIVE_LABEL: &str = "config-2";

/// Kernel argument naming the installer's boot device, e.g. `ocimetal.boot_media=/dev/sdb`,
/// for media whose label the firmware or a dd copy does not preserve.
pub const BOOT_MEDIA_ARG: &str = crate::host::cmdline::Key::BootMedia.param();

/// One disk as IPA's `hardware.BlockDevice.serialize()` describes it.
///
/// Optional fields are `None` when the kernel/udev does not know them; a hint on such a field
/// never matches (IPA's behaviour).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlockDevice {
    /// Device path, e.g. `/dev/sda`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Model as the device reports it (sysfs `device/model`, trimmed).
    pub model: Option<String>,
    /// Vendor as the device reports it (sysfs `device/vendor`, trimmed), e.g. `ATA`.
    pub vendor: Option<String>,
    /// Serial number, chosen as lsblk's `SERIAL` column does (the short serial, not the WWN).
    pub serial: Option<String>,
    /// World Wide Name (udev `ID_WWN`), e.g. `0x5000c500a1b2c3d4`.
    pub wwn: Option<String>,
    /// WWN with the vendor extension (udev `ID_WWN_WITH_EXTENSION`).
    pub wwn_with_extension: Option<String>,
    /// The vendor extension alone (udev `ID_WWN_VENDOR_EXTENSION`).
    pub wwn_vendor_extension: Option<String>,
    /// Spinning disk (sysfs `queue/rotational`).
    pub rotational: bool,
    /// SCSI address `host:channel:target:lun`, for SCSI/SATA/SAS/USB disks.
    pub hctl: Option<String>,
    /// Stable `/dev/disk/by-path/...` link, when udev made one.
    pub by_path: Option<String>,
    /// Transport: `sata`, `sas`, `nvme`, `usb`, `virtio`...
    pub tran: Option<String>,
    /// Logical sector size in bytes (512 when unknown).
    pub logical_sectors: Option<u64>,
    /// Physical sector size in bytes.
    pub physical_sectors: Option<u64>,
}

/// A device left out of the candidates, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// Device path, e.g. `/dev/sr0`.
    pub name: String,
    /// Every reason that applies, joined with `; `.
    pub reason: String,
}

/// The result of reading the machine's block devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scan {
    /// Candidate disks, in natural name order (`sda`, `sdb`, ..., `sdaa`).
    pub devices: Vec<BlockDevice>,
    /// Devices that are never targets, with the reason.
    pub excluded: Vec<Excluded>,
}

/// Where [`scan_at`] reads the machine from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRoots {
    /// sysfs mount, normally `/sys` (reads `block/`, `class/`, `bus/scsi/`).
    pub sys: PathBuf,
    /// udev database, normally `/run/udev/data`.
    pub udev_data: PathBuf,
    /// Device directory, normally `/dev` (reads `disk/by-label/`, resolves `/dev/...` names).
    pub dev: PathBuf,
    /// Text of `/proc/self/mountinfo`.
    pub mountinfo: String,
    /// Text of `/proc/cmdline`.
    pub cmdline: String,
}

impl ScanRoots {
    /// The live machine's paths and the current mount table and kernel command line.
    pub fn live() -> anyhow::Result<Self> {
        let read =
            |path: &str| std::fs::read_to_string(path).with_context(|| format!("reading {path}"));
        Ok(Self {
            sys: PathBuf::from("/sys"),
            udev_data: PathBuf::from(udev::DATA_DIR),
            dev: PathBuf::from("/dev"),
            mountinfo: read(crate::host::mountinfo::PROC_MOUNTINFO)?,
            cmdline: read(crate::host::cmdline::PROC_CMDLINE)?,
        })
    }
}

/// Reads the live machine.
pub fn scan() -> anyhow::Result<Scan> {
    scan_at(&ScanRoots::live()?)
}

/// Same, from given roots, for tests (a fake sysfs tree, udev data dir, /dev dir, mountinfo text).
pub fn scan_at(roots: &ScanRoots) -> anyhow::Result<Scan> {
    let block_dir = roots.sys.join("block");
    let entries = std::fs::read_dir(&block_dir)
        .with_context(|| format!("listing block devices in {}", block_dir.display()))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort_by(|a, b| natural_cmp(a, b));

    let found: Vec<Found> = names
        .into_iter()
        .map(|name| Found::read(roots, name))
        .collect();
    let reasons = exclude::reasons(roots, &found);

    let mut scan = Scan::default();
    for (device, reasons) in found.iter().zip(reasons) {
        if reasons.is_empty() {
            scan.devices.push(device.describe(&roots.sys));
        } else {
            scan.excluded.push(Excluded {
                name: format!("/dev/{}", device.name),
                reason: reasons.join("; "),
            });
        }
    }
    Ok(scan)
}

/// Largest `--inventory` file read.
pub const MAX_INVENTORY: u64 = 16 * crate::bounded::MIB;

/// `--inventory FILE`: a JSON array of BlockDevice (IPA's serialize() shape); errors name the file.
pub fn load_json(path: &Path) -> anyhow::Result<Vec<BlockDevice>> {
    let invalid = |problem: String| {
        OrderError::new(
            "--inventory",
            format!(
                "{}: {problem}; expected a JSON array of block devices as IPA serializes them \
                 ([{{\"name\": \"/dev/sda\", \"size\": 480103981056, \"serial\": ...}}])",
                path.display()
            ),
        )
    };
    let text = crate::bounded::read_file(path, MAX_INVENTORY)
        .map_err(|refused| invalid(format!("the file {refused}")))?;
    if crate::bounded::too_many_values(&text) {
        return Err(invalid(format!(
            "holds more than {} JSON values",
            crate::bounded::MAX_JSON_VALUES
        ))
        .into());
    }
    let text = String::from_utf8(text).map_err(|_| invalid("the file is not UTF-8 text".into()))?;
    let devices: Vec<BlockDevice> =
        serde_json::from_str(&text).map_err(|err| invalid(err.to_string()))?;
    for (index, device) in devices.iter().enumerate() {
        // Partition paths and wipe lists are built from these names: they must be real
        // device paths, one per disk.
        let kernel_name = device.name.strip_prefix("/dev/").unwrap_or_default();
        if kernel_name.is_empty()
            || kernel_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(format!(
                "device #{index} has name {:?}, not a /dev path",
                device.name
            ))
            .into());
        }
        if devices[..index].iter().any(|d| d.name == device.name) {
            return Err(invalid(format!(
                "device #{index} repeats the name {:?}; each disk is listed once",
                device.name
            ))
            .into());
        }
    }
    Ok(devices)
}

/// A block device as found in sysfs, before deciding whether it is a candidate.
struct Found {
    /// Kernel name, e.g. `sda`.
    name: String,
    /// `/sys/block/<name>`.
    dir: PathBuf,
    major_minor: Option<String>,
    udev: Option<udev::UdevEntry>,
    partitions: Vec<(sysfs::Partition, Option<udev::UdevEntry>)>,
}

impl Found {
    fn read(roots: &ScanRoots, name: String) -> Self {
        let dir = roots.sys.join("block").join(&name);
        let major_minor = sysfs::read_trimmed(&dir.join("dev"));
        let udev = major_minor
            .as_deref()
            .and_then(|devno| udev::UdevEntry::read(&roots.udev_data, devno));
        let partitions = sysfs::partitions_in(&dir)
            .into_iter()
            .map(|partition| {
                let udev = udev::UdevEntry::read(&roots.udev_data, &partition.major_minor);
                (partition, udev)
            })
            .collect();
        Self {
            name,
            dir,
            major_minor,
            udev,
            partitions,
        }
    }

    /// The IPA description of this disk.
    fn describe(&self, sys: &Path) -> BlockDevice {
        let dir = &self.dir;
        let udev = self.udev.clone().unwrap_or_default();
        let owned = |value: Option<&str>| value.map(|value| value.trim().to_owned());
        BlockDevice {
            name: format!("/dev/{}", self.name),
            size: sysfs::read_u64(&dir.join("size")).unwrap_or(0) * 512,
            model: sysfs::read_trimmed(&dir.join("device/model")),
            vendor: sysfs::read_trimmed(&dir.join("device/vendor")),
            serial: owned(udev.first_of(SERIAL_KEYS))
                .or_else(|| sysfs::read_trimmed(&dir.join("device/serial")))
                .or_else(|| sysfs::read_trimmed(&dir.join("serial"))),
            wwn: owned(udev.get("ID_WWN")),
            wwn_with_extension: owned(udev.get("ID_WWN_WITH_EXTENSION")),
            wwn_vendor_extension: owned(udev.get("ID_WWN_VENDOR_EXTENSION")),
            rotational: sysfs::read_u64(&dir.join("queue/rotational")) == Some(1),
            hctl: transport::hctl(dir),
            by_path: by_path(&udev),
            tran: transport::transport(sys, dir, &self.name),
            logical_sectors: sysfs::read_u64(&dir.join("queue/logical_block_size")),
            physical_sectors: sysfs::read_u64(&dir.join("queue/physical_block_size")),
        }
    }
}

/// udev properties holding the serial, best first, as lsblk's `SERIAL` column takes them.
///
/// `ID_SERIAL_SHORT` alone is wrong for SCSI disks that have a WWN: udev then derives it from
/// the WWN (VPD page 0x83) and keeps the unit serial number (VPD page 0x80) in
/// `ID_SCSI_SERIAL`. A QEMU `scsi-hd,serial=DISK2SERIAL,wwn=0x5000c500a1b2c3d4` thus has
/// `ID_SERIAL_SHORT=5000c500a1b2c3d4` but `ID_SCSI_SERIAL=DISK2SERIAL`, which is what IPA
/// reports as `serial` there and what operators put in root device hints.
/// `SCSI_IDENT_SERIAL` is the same number when sg3_utils' udev rules are installed.
const SERIAL_KEYS: &[&str] = &[
    "SCSI_IDENT_SERIAL",
    "ID_SCSI_SERIAL",
    "ID_SERIAL_SHORT",
    "ID_SERIAL",
];

/// The `/dev/disk/by-path/` link udev made: the one named by `ID_PATH` if present, else the
/// first by-path link (a virtio disk also gets a `virtio-pci-...` alias).
fn by_path(udev: &udev::UdevEntry) -> Option<String> {
    let links: Vec<&str> = udev
        .links
        .iter()
        .filter_map(|link| link.strip_prefix("disk/by-path/"))
        .collect();
    let chosen = match udev.get("ID_PATH") {
        Some(id_path) if links.is_empty() || links.contains(&id_path) => Some(id_path),
        _ => links.first().copied(),
    };
    chosen.map(|link| format!("/dev/disk/by-path/{link}"))
}
