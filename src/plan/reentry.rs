//! The re-entry decision: what a ramdisk booted again on a deployed machine does, from the
//! deployment markers found on the eligible disks' ESPs. Pure; the executor reads the markers
//! (`install::reentry`).
//!
//! - A marker of this node (same Ironic node UUID, or no UUID on either side) made from the
//!   same orders: boot the installed system, do not install it again.
//! - A marker of this node made from other orders: stop and say so; `ocimetal.force`
//!   reinstalls. A node in service is never wiped because its orders drifted.
//! - No marker of this node: install.
//!
//! The orders digest is versioned and computed over a canonical document, so that it changes
//! when the orders change and only then (not with a new ocimetal's way of printing them).

use super::system::record::DeploymentRecord;
use super::{normalize_image, Reentry};
use crate::arch::Arch;
use crate::config::Orders;
use crate::error::OrderError;
use crate::inventory::BlockDevice;
use serde_json::Value;

pub use crate::config::ORDERS_HASH_PREFIX;

/// A marker found on an ESP.
#[derive(Debug, Clone)]
pub struct Found {
    /// The disk of that ESP.
    pub disk: String,
    /// The ESP partition it was read from.
    pub esp: String,
    /// The deployment it records.
    pub record: DeploymentRecord,
    /// The boot loader on that ESP, as an EFI path (`\EFI\debian\shimx64.efi`), if any.
    pub loader: Option<String>,
}

/// What the ramdisk does about the markers it found.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// No marker of this deployment: install (the text says what was found, for the log).
    Install(String),
    /// This deployment is installed: boot it from the ESP of `Found`.
    Boot(Box<Found>),
    /// This node's disks hold a deployment from other orders: stop, with this message.
    Refuse(String),
}

/// The orders that make the deployment (`orders_hash` input), as the digest sees them.
pub struct Identity<'a> {
    /// Ironic node UUID, when known.
    pub node_uuid: Option<&'a str>,
    /// [`orders_hash`] of today's orders.
    pub orders_hash: &'a str,
    /// Today's normalised image reference, to recognise markers whose digest has an older
    /// format.
    pub image: &'a str,
}

/// Which machine the orders are for: the Ironic node UUID of a node document, else the
/// `uuid` Ironic puts into every configdrive's meta_data; `None` for orders that name no node
/// (a lab's command line).
pub fn node_identity(orders: &Orders) -> Option<String> {
    orders.node_uuid.clone().or_else(|| {
        orders
            .meta_data
            .get("uuid")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|uuid| !uuid.is_empty())
            .map(str::to_string)
    })
}

/// The re-entry step for `orders`: markers are looked for on partition 1 of every eligible
/// disk, not only on the disks the orders select (a RAID1 member may be gone, or the hints
/// may no longer match).
pub fn reentry_step(
    orders: &Orders,
    devices: &[BlockDevice],
    arch: Arch,
) -> Result<Reentry, OrderError> {
    Ok(Reentry {
        disks: devices.iter().map(|d| d.name.clone()).collect(),
        node_uuid: node_identity(orders),
        orders_hash: orders_hash(orders),
        image: normalize_image(&orders.image)?.to_string(),
        loaders: vec![
            arch.shim_loader_name().to_string(),
            arch.grub_loader_name().to_string(),
        ],
    })
}

/// Decides from the markers `found` (in the order of the ESPs scanned).
pub fn judge(found: &[Found], today: &Identity) -> Verdict {
    // A marker of the older format without a node id is taken as this node's (installs of
    // that time recorded only a node document's UUID).
    let same_node = |f: &&Found| {
        f.record.node_uuid.as_deref() == today.node_uuid
            || (f.record.node_uuid.is_none() && !current_format(&f.record))
    };
    let mine: Vec<&Found> = found.iter().filter(same_node).collect();
    if let Some(same) = mine.iter().find(|f| same_orders(&f.record, today)) {
        return Verdict::Boot(Box::new((*same).clone()));
    }
    if let Some(other) = mine.first() {
        let record = &other.record;
        return Verdict::Refuse(format!(
            "{} holds this node's deployment of {} (finished {}) made from other orders; \
             refusing to wipe a deployed node: give ocimetal.force (kernel command line, or \
             meta_data ocimetal_force: true) to reinstall it",
            other.esp, record.image.reference, record.finished_at
        ));
    }
    if found.is_empty() {
        Verdict::Install("no deployment marker on the disks".into())
    } else {
        let others: Vec<String> = found
            .iter()
            .map(|f| {
                format!(
                    "{} (node {})",
                    f.esp,
                    f.record.node_uuid.as_deref().unwrap_or("unknown")
                )
            })
            .collect();
        Verdict::Install(format!(
            "the markers on the disks are another node's: {}",
            others.join(", ")
        ))
    }
}

/// Same orders: the same digest; or, for a marker written with an older digest format, the
/// same image (the node is already known to be the same).
fn same_orders(record: &DeploymentRecord, today: &Identity) -> bool {
    if current_format(record) {
        record.orders_hash == today.orders_hash
    } else {
        record.image.reference == today.image
    }
}

fn current_format(record: &DeploymentRecord) -> bool {
    record.orders_hash.starts_with(ORDERS_HASH_PREFIX)
}

/// The orders digest the markers record: [`Orders::digest`].
pub fn orders_hash(orders: &Orders) -> String {
    orders.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::system::record::RecordedImage;

    fn record(node: Option<&str>, hash: &str, image: &str) -> DeploymentRecord {
        DeploymentRecord {
            ocimetal_version: "0.1.0".into(),
            node_uuid: node.map(str::to_string),
            orders_hash: hash.into(),
            image: RecordedImage {
                reference: image.into(),
                digest: "sha256:1".into(),
                platform: "linux/amd64".into(),
            },
            disks: Vec::new(),
            raid: false,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:10:00Z".into(),
        }
    }

    fn found(esp: &str, record: DeploymentRecord) -> Found {
        Found {
            disk: "/dev/disk".into(),
            esp: esp.into(),
            record,
            loader: Some("\\EFI\\debian\\shimx64.efi".into()),
        }
    }

    const IMAGE: &str = "lab:5000/debian:13";

    fn today(hash: &str) -> Identity<'_> {
        Identity {
            node_uuid: Some("node-1"),
            orders_hash: hash,
            image: IMAGE,
        }
    }

    #[test]
    fn the_same_deployment_is_booted_from_whichever_disk_has_it() {
        let hash = format!("{ORDERS_HASH_PREFIX}aa");
        // A RAID1 node whose first disk is gone: the marker is on the survivor only.
        let markers = [found("/dev/sda1", record(Some("node-1"), &hash, IMAGE))];
        match judge(&markers, &today(&hash)) {
            Verdict::Boot(f) => assert_eq!(f.esp, "/dev/sda1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_orders_on_this_node_are_refused_not_wiped() {
        let old = format!("{ORDERS_HASH_PREFIX}aa");
        let new = format!("{ORDERS_HASH_PREFIX}bb");
        let markers = [found("/dev/vda1", record(Some("node-1"), &old, IMAGE))];
        match judge(&markers, &today(&new)) {
            Verdict::Refuse(why) => {
                assert!(why.contains("/dev/vda1"), "{why}");
                assert!(why.contains("ocimetal.force"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn another_nodes_marker_or_none_means_install() {
        let hash = format!("{ORDERS_HASH_PREFIX}aa");
        assert!(matches!(judge(&[], &today(&hash)), Verdict::Install(_)));
        let markers = [found("/dev/vda1", record(Some("node-2"), &hash, IMAGE))];
        match judge(&markers, &today(&hash)) {
            Verdict::Install(why) => assert!(why.contains("node-2"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_marker_with_an_older_digest_format_matches_on_node_and_image() {
        let hash = format!("{ORDERS_HASH_PREFIX}aa");
        let markers = [found(
            "/dev/vda1",
            record(Some("node-1"), "sha256:0123", IMAGE),
        )];
        assert!(matches!(judge(&markers, &today(&hash)), Verdict::Boot(_)));
        let other_image = [found(
            "/dev/vda1",
            record(Some("node-1"), "sha256:0123", "lab:5000/debian:12"),
        )];
        assert!(matches!(
            judge(&other_image, &today(&hash)),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn an_older_marker_without_a_node_id_is_this_nodes() {
        let hash = format!("{ORDERS_HASH_PREFIX}aa");
        let markers = [found("/dev/vda1", record(None, "sha256:0123", IMAGE))];
        assert!(matches!(judge(&markers, &today(&hash)), Verdict::Boot(_)));
        // In the current format, no node id is another node's than `node-1`.
        let markers = [found("/dev/vda1", record(None, &hash, IMAGE))];
        assert!(matches!(
            judge(&markers, &today(&hash)),
            Verdict::Install(_)
        ));
    }
}
