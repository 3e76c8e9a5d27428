//! The re-entry guard: a deployment marker on the primary ESP, so that a ramdisk booted again
//! (Ironic's ramdisk deploy leaves the CD or PXE as the boot device) boots the installed disk
//! instead of installing the same deployment twice.

use crate::config::Orders;
use crate::storage::mount::MountStack;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Path of the marker on the ESP.
pub const MARKER_PATH: &str = "ocimetal/deployment.json";

/// What the marker records: enough to recognise the same deployment, nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// `node:<uuid>` or `orders:<sha256>`.
    pub identity: String,
    /// Normalised image reference.
    pub image: String,
    /// Manifest digest that was installed.
    pub digest: String,
    /// Target disks, primary first.
    pub disks: Vec<String>,
    /// RFC 3339 time the install completed.
    pub completed_at: String,
}

/// The deployment identity: the node UUID when there is one, else a hash of the orders that
/// shape the result (image, hints, hostname, meta_data, user_data, network_data).
pub fn identity(orders: &Orders) -> String {
    if let Some(uuid) = orders.node_uuid.as_deref().filter(|u| !u.trim().is_empty()) {
        return format!("node:{}", uuid.trim());
    }
    let mut hash = Sha256::new();
    let hints = orders
        .root_device_hints
        .as_ref()
        .map(|h| serde_json::to_string(&h.value).unwrap_or_default())
        .unwrap_or_default();
    let meta = serde_json::to_string(&orders.meta_data).unwrap_or_default();
    let network = orders
        .network_data
        .as_ref()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let user_data = orders.user_data.as_ref().map(|u| u.expose()).unwrap_or(&[]);
    for part in [
        orders.image.value.as_bytes(),
        hints.as_bytes(),
        orders
            .hostname
            .as_ref()
            .map(|h| h.value.as_bytes())
            .unwrap_or(&[]),
        meta.as_bytes(),
        network.as_bytes(),
        user_data,
    ] {
        // Length-prefix each part so that moving bytes between fields changes the hash.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    format!("orders:{}", hex::encode(hash.finalize()))
}

/// Reads the marker from an ESP device, mounting it read-only in a private directory; `None`
/// when the device has no FAT filesystem or no marker.
pub fn read_marker(esp_device: &str) -> Option<Marker> {
    if !Path::new(esp_device).exists() {
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("ocimetal-esp-")
        .tempdir_in("/run")
        .ok()?;
    let mut mounts = MountStack::new();
    mounts
        .mount_fs(esp_device, dir.path(), "vfat", Some("ro"))
        .ok()?;
    let text = std::fs::read_to_string(dir.path().join(MARKER_PATH)).ok();
    drop(mounts);
    serde_json::from_str(&text?).ok()
}

/// Writes the marker onto a mounted ESP.
pub fn write_marker(esp_mountpoint: &Path, marker: &Marker) -> anyhow::Result<()> {
    let path = esp_mountpoint.join(MARKER_PATH);
    std::fs::create_dir_all(path.parent().unwrap_or(esp_mountpoint))?;
    std::fs::write(&path, serde_json::to_vec_pretty(marker)?)?;
    Ok(())
}
