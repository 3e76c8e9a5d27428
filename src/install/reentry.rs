//! The re-entry guard: a deployment marker on the primary ESP, so that a ramdisk booted again
//! (Ironic's ramdisk deploy leaves the CD or PXE as the boot device) boots the installed disk
//! instead of installing the same deployment twice.

use super::efi;
use crate::host::mount::MountStack;
use crate::host::Host;
use crate::plan::system::record::DeploymentRecord;
use crate::plan::Reentry;

/// Path of the marker on the ESP: the same record as `/etc/ocimetal/deployment.json`, kept
/// where the ramdisk can read it without assembling md or activating LVM.
pub const MARKER_PATH: &str = "ocimetal/deployment.json";

/// The re-entry step: true when the disk already holds this deployment (BootNext then points
/// at it and the install is skipped).
pub fn run(host: &dyn Host, step: &Reentry) -> bool {
    let Some(marker) = read_marker(host, &step.esp) else {
        return false;
    };
    if !marker.is_same_deployment(step.node_uuid.as_deref(), &step.orders_hash) {
        tracing::info!(
            "the disks hold another deployment ({}, {}); reinstalling",
            marker.image.reference,
            marker.orders_hash
        );
        return false;
    }
    tracing::info!(
        "this deployment ({} {}, finished {}) is already installed: booting it instead of \
         reinstalling (ocimetal.force reinstalls)",
        marker.image.reference,
        marker.image.digest,
        marker.finished_at,
    );
    host.notify("already deployed: booting the installed system", false);
    match efi::boot_next_to(host, &step.boot_entry) {
        Ok(Some(n)) => tracing::info!("BootNext set to Boot{n}"),
        Ok(None) => tracing::warn!("no boot entry of ours; relying on the firmware's order"),
        Err(err) => tracing::warn!("setting BootNext: {err:#}"),
    }
    true
}

/// Reads the marker from an ESP device, mounting it read-only in a private directory; `None`
/// when the device is missing or has no FAT filesystem or no marker.
pub fn read_marker(host: &dyn Host, esp_device: &str) -> Option<DeploymentRecord> {
    let dir = tempfile::Builder::new()
        .prefix("ocimetal-esp-")
        .tempdir_in("/run")
        .ok()?;
    let mut mounts = MountStack::new(host);
    mounts
        .mount_fs(esp_device, dir.path(), "vfat", Some("ro"))
        .ok()?;
    let text = std::fs::read_to_string(dir.path().join(MARKER_PATH)).ok();
    drop(mounts);
    DeploymentRecord::parse(text?.as_bytes()).ok()
}
