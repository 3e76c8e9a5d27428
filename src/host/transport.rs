//! How a disk is attached: its SCSI address and its transport, read from sysfs the way IPA
//! and lsblk read them.

use super::sysfs::{entry_names, read_trimmed};
use std::path::{Path, PathBuf};

/// The SCSI address `host:channel:target:lun`, as IPA reads it: the entry under
/// `device/scsi_device/`.
pub fn hctl(disk_dir: &Path) -> Option<String> {
    entry_names(&disk_dir.join("device/scsi_device"))
        .into_iter()
        .next()
}

/// The SCSI address the `device` link points at (how lsblk finds the SCSI host).
fn scsi_address(disk_dir: &Path) -> Option<[u32; 4]> {
    let target = std::fs::read_link(disk_dir.join("device")).ok()?;
    let last = target.file_name()?.to_str()?;
    let mut numbers = last.split(':').map(|part| part.parse::<u32>().ok());
    let address = [
        numbers.next()??,
        numbers.next()??,
        numbers.next()??,
        numbers.next()??,
    ];
    numbers.next().is_none().then_some(address)
}

/// The transport as lsblk's `TRAN` column derives it: from the SCSI host's class for SCSI
/// disks, from the kernel name for NVMe, virtio and MMC.
pub fn transport(sys: &Path, disk_dir: &Path, name: &str) -> Option<String> {
    let Some([host, channel, target, lun]) = scsi_address(disk_dir) else {
        return transport_from_name(name).map(str::to_owned);
    };
    let host_class = |class: &str| -> PathBuf {
        sys.join("class")
            .join(format!("{class}_host"))
            .join(format!("host{host}"))
    };
    let scsi_device = sys
        .join("bus/scsi/devices")
        .join(format!("{host}:{channel}:{target}:{lun}"));

    let transport = if host_class("spi").is_dir() {
        "spi"
    } else if host_class("fc").is_dir() {
        let name = read_trimmed(&host_class("fc").join("symbolic_name"))?;
        if name.contains(" over ") {
            "fcoe"
        } else {
            "fc"
        }
    } else if host_class("sas").is_dir() || scsi_device.join("sas_device").exists() {
        "sas"
    } else if scsi_device.join("ieee1394_id").exists() {
        "sbp"
    } else if host_class("iscsi").is_dir() {
        "iscsi"
    } else if device_path_contains(disk_dir, "usb") {
        "usb"
    } else if host_class("scsi").is_dir() {
        let driver = read_trimmed(&host_class("scsi").join("proc_name"))?;
        if driver.starts_with("ahci") || driver.starts_with("sata") {
            "sata"
        } else if driver.contains("ata") {
            "ata"
        } else {
            return None;
        }
    } else {
        return None;
    };
    Some(transport.to_owned())
}

fn transport_from_name(name: &str) -> Option<&'static str> {
    if name.starts_with("nvme") {
        Some("nvme")
    } else if name.starts_with("vd") {
        Some("virtio")
    } else if name.starts_with("mmcblk") {
        Some("mmc")
    } else {
        None
    }
}

/// Whether the device's resolved sysfs path runs through a bus named `pattern` (e.g. USB).
fn device_path_contains(disk_dir: &Path, pattern: &str) -> bool {
    std::fs::canonicalize(disk_dir.join("device"))
        .map(|path| path.to_string_lossy().contains(pattern))
        .unwrap_or(false)
}
