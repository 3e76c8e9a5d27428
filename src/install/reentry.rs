//! The re-entry guard: a deployment marker on the primary ESP, so that a ramdisk booted again
//! (Ironic's ramdisk deploy leaves the CD or PXE as the boot device) boots the installed disk
//! instead of installing the same deployment twice.

use crate::config::Orders;
use crate::storage::mount::MountStack;
use crate::target::record::DeploymentRecord;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Path of the marker on the ESP: the same record as `/etc/ocimetal/deployment.json`, kept
/// where the ramdisk can read it without assembling md or activating LVM.
pub const MARKER_PATH: &str = "ocimetal/deployment.json";

/// A digest of the orders that shape the result (node, image, hints, wipe mode, hostname,
/// meta_data, user_data, network_data): two runs with equal digests install the same system.
/// Secrets enter only through the digest.
pub fn orders_hash(orders: &Orders) -> String {
    let mut hash = Sha256::new();
    let hints = orders
        .root_device_hints
        .as_ref()
        .map(|h| serde_json::to_string(&h.value).unwrap_or_default())
        .unwrap_or_default();
    let wipe = orders
        .wipe_mode
        .as_ref()
        .map(|w| format!("{:?}", w.value))
        .unwrap_or_default();
    let meta = serde_json::to_string(&orders.meta_data).unwrap_or_default();
    let network = orders
        .network_data
        .as_ref()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let user_data = orders.user_data.as_ref().map(|u| u.expose()).unwrap_or(&[]);
    for part in [
        orders.node_uuid.as_deref().unwrap_or("").as_bytes(),
        orders.image.value.as_bytes(),
        hints.as_bytes(),
        wipe.as_bytes(),
        orders
            .hostname
            .as_ref()
            .map(|h| h.value.as_bytes())
            .unwrap_or(&[]),
        meta.as_bytes(),
        network.as_bytes(),
        user_data,
    ] {
        // Length-prefix each part so that moving bytes between fields changes the digest.
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// Reads the marker from an ESP device, mounting it read-only in a private directory; `None`
/// when the device has no FAT filesystem or no marker.
pub fn read_marker(esp_device: &str) -> Option<DeploymentRecord> {
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
    DeploymentRecord::parse(text?.as_bytes()).ok()
}

/// Writes the marker onto a mounted ESP.
pub fn write_marker(esp_mountpoint: &Path, record: &DeploymentRecord) -> anyhow::Result<()> {
    let path = esp_mountpoint.join(MARKER_PATH);
    std::fs::create_dir_all(path.parent().unwrap_or(esp_mountpoint))?;
    std::fs::write(&path, serde_json::to_vec_pretty(record)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RebootAction, Secret, Source, Sourced};

    fn orders() -> Orders {
        Orders {
            node_uuid: None,
            image: Sourced::new("debian:13".to_string(), Source::Default, "default"),
            root_device_hints: None,
            wipe_mode: None,
            hostname: None,
            metal3_name: None,
            meta_data: Default::default(),
            user_data: Some(Secret::new("#cloud-config\n")),
            network_data: None,
            insecure_registries: vec![],
            registry_mirrors: vec![],
            image_pull_secret: None,
            auth_file: None,
            ca_file: None,
            apt_proxy: None,
            reboot: Sourced::new(RebootAction::Reboot, Source::Default, "default"),
            force: false,
            debug: false,
            dry_run: false,
            configdrive_origin: None,
            warnings: vec![],
        }
    }

    #[test]
    fn digest_changes_with_what_shapes_the_system_and_hides_secrets() {
        let base = orders();
        let same = orders_hash(&base);
        assert_eq!(same, orders_hash(&orders()));
        assert!(same.starts_with("sha256:") && same.len() == 7 + 64);
        let mut other_image = orders();
        other_image.image.value = "debian:12".into();
        assert_ne!(same, orders_hash(&other_image));
        let mut other_user_data = orders();
        other_user_data.user_data = Some(Secret::new("#cloud-config\nx: 1\n"));
        assert_ne!(same, orders_hash(&other_user_data));
        let mut other_node = orders();
        other_node.node_uuid = Some("1234".into());
        assert_ne!(same, orders_hash(&other_node));
        assert!(!same.contains("cloud-config"));
    }
}
