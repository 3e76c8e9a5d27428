//! Block device inventory with IPA's field names.
//!
//! The planner sees disks only through [`BlockDevice`]; the live machine is read from sysfs and
//! the udev database, tests and dry runs read a JSON array of the same shape.

use serde::{Deserialize, Serialize};

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
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub wwn_with_extension: Option<String>,
    pub wwn_vendor_extension: Option<String>,
    pub rotational: bool,
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
