//! Choosing the target disk(s) from the hints and the eligible disks.

use serde::Serialize;

use super::{HintSet, RootDeviceHints};
use crate::config::{HintsInput, Sourced};
use crate::error::OrderError;
use crate::inventory::BlockDevice;

/// The order key named when no hints were given and some are needed.
const HINTS_KEY: &str = "root_device_hints";

/// The disks to install on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSelection {
    /// One disk, or the RAID1 pair with the primary first.
    pub disks: Vec<BlockDevice>,
    /// Whether the disks form a RAID1 pair.
    pub raid: bool,
    /// The hints that chose them; `None` when the only eligible disk was taken.
    pub hints: Option<RootDeviceHints>,
}

/// Picks the target disk(s) among the eligible `devices`.
///
/// Each slot of the hints must match exactly one disk and a RAID1 pair must be two different
/// disks. Without hints (or with an empty dictionary) the only eligible disk is taken, and
/// with several the candidates are listed so that the operator can write a hint.
pub fn select_targets(
    hints: Option<&Sourced<HintsInput>>,
    devices: &[BlockDevice],
) -> Result<TargetSelection, OrderError> {
    let given = hints.filter(|h| !matches!(&h.value, HintsInput::Map(map) if map.is_empty()));
    let Some(sourced) = given else {
        return only_disk(devices);
    };
    let field = sourced.key.as_str();
    let parsed = RootDeviceHints::parse(&sourced.value, field)?;
    let raid = parsed.is_raid1();
    let mut disks: Vec<BlockDevice> = Vec::new();
    for (index, slot) in parsed.slots().iter().enumerate() {
        let label = slot_label(raid, index);
        let disk = find_one(slot, devices, field, &label)?;
        if let Some(other) = disks.iter().find(|d| d.name == disk.name) {
            return Err(OrderError::new(
                field,
                format!(
                    "both disks of the RAID1 pair are {}: {} and {} must match two different disks",
                    other.name,
                    parsed.slots()[0],
                    slot
                ),
            ));
        }
        disks.push(disk.clone());
    }
    Ok(TargetSelection {
        disks,
        raid,
        hints: Some(parsed),
    })
}

fn slot_label(raid: bool, index: usize) -> String {
    match (raid, index) {
        (false, _) => String::new(),
        (true, 0) => " (RAID1 primary)".into(),
        (true, _) => " (RAID1 secondary)".into(),
    }
}

fn only_disk(devices: &[BlockDevice]) -> Result<TargetSelection, OrderError> {
    match devices {
        [disk] => Ok(TargetSelection {
            disks: vec![disk.clone()],
            raid: false,
            hints: None,
        }),
        [] => Err(OrderError::new(
            HINTS_KEY,
            "no eligible disk found to install on",
        )),
        _ => Err(OrderError::new(
            HINTS_KEY,
            format!(
                "not set and {} disks are eligible, so none is chosen; set serial=VALUE or \
                 wwn=VALUE (two values for RAID1) to one of: {}",
                devices.len(),
                describe_all(devices.iter())
            ),
        )),
    }
}

fn find_one<'a>(
    slot: &HintSet,
    devices: &'a [BlockDevice],
    field: &str,
    label: &str,
) -> Result<&'a BlockDevice, OrderError> {
    let mut found = Vec::new();
    for dev in devices {
        match slot.try_matches(dev) {
            Ok(true) => found.push(dev),
            Ok(false) => {}
            Err(e) => return Err(OrderError::new(field, format!("{e}{label}"))),
        }
    }
    match found.as_slice() {
        [disk] => Ok(disk),
        [] => Err(OrderError::new(
            field,
            format!(
                "no disk matches {slot}{label}; eligible disks: {}",
                describe_all(devices.iter())
            ),
        )),
        _ => Err(OrderError::new(
            field,
            format!(
                "{} disks match {slot}{label}, exactly one must: {}",
                found.len(),
                describe_all(found.iter().copied())
            ),
        )),
    }
}

fn describe_all<'a>(devices: impl Iterator<Item = &'a BlockDevice>) -> String {
    let described: Vec<String> = devices.map(describe).collect();
    if described.is_empty() {
        "none".into()
    } else {
        described.join("; ")
    }
}

/// `/dev/sda (447.1 GiB, model "X", serial "Y", wwn "Z")`: what an operator needs to
/// write a hint.
fn describe(dev: &BlockDevice) -> String {
    let shown = |value: &Option<String>| match value.as_deref() {
        Some(v) if !v.is_empty() => format!("{v:?}"),
        _ => "unknown".into(),
    };
    format!(
        "{} ({:.1} GiB, model {}, serial {}, wwn {})",
        dev.name,
        dev.size as f64 / f64::from(1u32 << 30),
        shown(&dev.model),
        shown(&dev.serial),
        shown(&dev.wwn)
    )
}
