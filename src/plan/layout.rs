//! The partition layout: a GPT with a 2 GiB ESP from 2 MiB and a data partition to the end.

use crate::error::OrderError;
use crate::inventory::BlockDevice;
use serde::Serialize;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Where the ESP starts (the seed's 2 MiB, leaving room for the GPT and alignment).
pub const ESP_START: u64 = 2 * MIB;
/// ESP size: 2 GiB, so several kernels and both GRUB layouts fit.
pub const ESP_SIZE: u64 = 2 * GIB;
/// The data partition starts where the ESP ends: 2050 MiB.
pub const DATA_START: u64 = ESP_START + ESP_SIZE;
/// Smallest data partition we accept: a minimal Debian with kernel, GRUB and cloud-init.
pub const MIN_DATA_SIZE: u64 = 4 * GIB;
/// Space kept free at the end of the disk for the backup GPT (33 sectors of 4 KiB, rounded up).
const GPT_BACKUP_RESERVE: u64 = MIB;

/// GPT type of an EFI system partition (sgdisk `EF00`).
pub const GPT_TYPE_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT type of a Linux RAID member (sgdisk `FD00`).
pub const GPT_TYPE_LINUX_RAID: &str = "A19D880F-05FC-4D3B-A006-743F0F84911E";
/// GPT type of an LVM physical volume (sgdisk `8E00`).
pub const GPT_TYPE_LINUX_LVM: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

/// One partition of the plan, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Partition number (1-based).
    pub number: u32,
    /// Device node, e.g. `/dev/sda1` or `/dev/nvme0n1p1`.
    pub device: String,
    /// First byte.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// GPT type GUID.
    pub type_guid: String,
    /// sgdisk's short type code (`EF00`, `FD00`, `8E00`).
    pub type_code: String,
    /// GPT partition name.
    pub gpt_name: String,
}

/// The GPT of one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskLayout {
    /// Whole-disk device path.
    pub disk: String,
    /// Disk size in bytes.
    pub disk_size: u64,
    /// Logical sector size in bytes (sgdisk counts in sectors).
    pub sector_size: u64,
    /// Partitions in order.
    pub partitions: Vec<Partition>,
}

/// The device node of partition `number` on `disk`: `sda` → `sda1`, `nvme0n1` → `nvme0n1p1`.
pub fn partition_path(disk: &str, number: u32) -> String {
    let ends_with_digit = disk.chars().last().is_some_and(|c| c.is_ascii_digit());
    if ends_with_digit {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// Computes identical layouts for every target disk. With two disks the data partition is
/// sized for the smaller one so both GPTs are the same and the md mirror uses all of it.
pub fn layouts(
    disks: &[BlockDevice],
    raid: bool,
    hints_field: &str,
) -> Result<Vec<DiskLayout>, OrderError> {
    let smallest = disks.iter().map(|d| d.size).min().unwrap_or(0);
    for disk in disks {
        let needed = DATA_START + MIN_DATA_SIZE + GPT_BACKUP_RESERVE;
        if disk.size < needed {
            return Err(OrderError::new(
                hints_field,
                format!(
                    "disk {} has {} bytes ({:.1} GiB), too small for the layout: at least {} bytes \
                     ({} GiB) are needed (2 GiB ESP + 4 GiB root); choose a larger disk",
                    disk.name,
                    disk.size,
                    disk.size as f64 / GIB as f64,
                    needed,
                    needed.div_ceil(GIB)
                ),
            ));
        }
    }
    // Align the end down to 1 MiB so the partition stays aligned on 4Kn and 512e disks alike.
    let data_end = (smallest - GPT_BACKUP_RESERVE) / MIB * MIB;
    let (data_type, data_code, data_name) = if raid {
        (GPT_TYPE_LINUX_RAID, "FD00", "root-raid")
    } else {
        (GPT_TYPE_LINUX_LVM, "8E00", "root-lvm")
    };
    Ok(disks
        .iter()
        .enumerate()
        .map(|(index, disk)| DiskLayout {
            disk: disk.name.clone(),
            disk_size: disk.size,
            sector_size: disk.logical_sectors.unwrap_or(512),
            partitions: vec![
                Partition {
                    number: 1,
                    device: partition_path(&disk.name, 1),
                    start: ESP_START,
                    size: ESP_SIZE,
                    type_guid: GPT_TYPE_ESP.to_string(),
                    type_code: "EF00".to_string(),
                    gpt_name: esp_label(index).to_string(),
                },
                Partition {
                    number: 2,
                    device: partition_path(&disk.name, 2),
                    start: DATA_START,
                    size: data_end - DATA_START,
                    type_guid: data_type.to_string(),
                    type_code: data_code.to_string(),
                    gpt_name: data_name.to_string(),
                },
            ],
        })
        .collect())
}

/// The FAT label of the ESP on the `index`-th target disk (the seed's `EFI`, `EFI2`).
pub fn esp_label(index: usize) -> &'static str {
    if index == 0 {
        super::ESP_LABEL
    } else {
        super::ESP2_LABEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, size: u64) -> BlockDevice {
        BlockDevice {
            name: name.to_string(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn partition_paths_follow_kernel_naming() {
        assert_eq!(partition_path("/dev/sda", 2), "/dev/sda2");
        assert_eq!(partition_path("/dev/vdb", 1), "/dev/vdb1");
        assert_eq!(partition_path("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
        assert_eq!(partition_path("/dev/mmcblk0", 2), "/dev/mmcblk0p2");
    }

    #[test]
    fn esp_spans_2mib_to_2050mib_and_data_runs_to_the_aligned_end() {
        let size = 16 * GIB;
        let layout = &layouts(&[disk("/dev/vda", size)], false, "hints").unwrap()[0];
        let esp = &layout.partitions[0];
        assert_eq!((esp.start, esp.start + esp.size), (2 * MIB, 2050 * MIB));
        assert_eq!(esp.type_code, "EF00");
        let data = &layout.partitions[1];
        assert_eq!(data.start, 2050 * MIB);
        assert_eq!(data.start + data.size, size - MIB);
        assert_eq!(data.type_code, "8E00");
    }

    #[test]
    fn raid_layouts_are_identical_and_sized_for_the_smaller_disk() {
        let disks = [
            disk("/dev/sda", 20 * GIB + 12345),
            disk("/dev/sdb", 16 * GIB),
        ];
        let all = layouts(&disks, true, "hints").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].partitions[1].size, all[1].partitions[1].size);
        assert_eq!(
            all[0].partitions[1].start + all[0].partitions[1].size,
            16 * GIB - MIB
        );
        assert_eq!(all[0].partitions[1].type_code, "FD00");
        assert_eq!(all[1].partitions[0].gpt_name, "EFI2");
    }

    #[test]
    fn unaligned_disk_end_is_rounded_down_to_a_mebibyte() {
        let layout = &layouts(&[disk("/dev/sda", 480103981056)], false, "h").unwrap()[0];
        let data = &layout.partitions[1];
        assert_eq!((data.start + data.size) % MIB, 0);
        assert!(data.start + data.size <= 480103981056 - MIB);
    }

    #[test]
    fn too_small_disk_is_refused_with_the_disk_named() {
        let err = layouts(
            &[disk("/dev/sdz", 4 * GIB)],
            false,
            "meta_data.root_device_hints",
        )
        .unwrap_err();
        assert_eq!(err.field, "meta_data.root_device_hints");
        assert!(err.problem.contains("/dev/sdz"), "{}", err.problem);
        assert!(err.problem.contains("too small"), "{}", err.problem);
    }
}
