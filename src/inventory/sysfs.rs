//! Reading one block device's attributes from sysfs (`/sys/block/<name>/...`).

use std::path::{Path, PathBuf};

/// Reads a sysfs attribute, trimmed; `None` when missing or blank.
pub fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Reads a numeric sysfs attribute.
pub fn read_u64(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

/// One partition of a disk, as sysfs lists it under the disk's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`, `nvme0n1p2`.
    pub name: String,
    /// `major:minor`, the key of the udev database and of mountinfo.
    pub major_minor: String,
}

/// The partitions of the disk at `disk_dir`: sub-directories holding a `partition` file.
pub fn partitions(disk_dir: &Path) -> Vec<Partition> {
    let Ok(entries) = std::fs::read_dir(disk_dir) else {
        return Vec::new();
    };
    let mut found: Vec<Partition> = entries
        .flatten()
        .filter(|entry| entry.path().join("partition").is_file())
        .filter_map(|entry| {
            Some(Partition {
                name: entry.file_name().to_str()?.to_owned(),
                major_minor: read_trimmed(&entry.path().join("dev"))?,
            })
        })
        .collect();
    found.sort_by(|a, b| super::natural_cmp(&a.name, &b.name));
    found
}

/// Kernel names of the devices below a stacked device (`slaves/`), e.g. the members of `md0`.
pub fn slaves(device_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(device_dir.join("slaves")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect()
}

/// The SCSI address `host:channel:target:lun`, as IPA reads it: the entry under
/// `device/scsi_device/`.
pub fn hctl(disk_dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(disk_dir.join("device/scsi_device")).ok()?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    names.into_iter().next()
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
