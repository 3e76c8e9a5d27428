//! The installed system: files rendered by pure functions, and the steps run inside it
//! (chroot, packages, bootloader, EFI entries).

pub mod apt;
pub mod boot;
pub mod bootloader;
pub mod chroot;
pub mod cloud_init;
pub mod efi;
pub mod file;
pub mod files;
pub mod network;
pub mod packages;
pub mod record;
pub mod write;
pub mod yaml;

pub use file::{FileContents, TargetFile};
