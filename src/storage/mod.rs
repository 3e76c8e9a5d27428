//! Storage steps of the install: waiting for devices, and (from the other storage modules)
//! wiping, partitioning, RAID, LVM, filesystems and mounts.

pub mod wait;
