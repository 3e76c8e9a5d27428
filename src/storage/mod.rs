//! Disks: wipe, partition, md RAID1, LVM, filesystems, mounts, and waiting for devices.

pub mod mount;
pub mod partition;
pub mod stack;
pub mod sysfs;
pub mod wait;
pub mod wipe;
