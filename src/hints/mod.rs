//! IPA-compatible root-device hints: which disk(s) to install on.
//!
//! Hints are read exactly as ironic-python-agent's `device_hints` reads Ironic's
//! `instance_info.root_device` (operators from oslo.utils `specs_matcher`, values lower-cased
//! and URL-quoted on both sides, `size` in GiB), with the seed's two extensions: the
//! simplified `serial=A [B]` / `wwn=X [Y]` string, and two serials or WWNs meaning a RAID1
//! pair. docs/hints.md describes the grammar and every difference from IPA.

mod input;
mod ipa;
mod pycompat;
mod select;
mod spec;

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::HintsInput;
use crate::error::OrderError;
use crate::inventory::BlockDevice;

pub use ipa::{HintName, HintValue};
pub use select::{select_targets, TargetSelection};

/// Hints one disk must all satisfy, in the order they were given (IPA stops at the first
/// hint a disk fails, which decides whether a later incomparable hint is ever evaluated).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HintSet {
    hints: Vec<(HintName, HintValue)>,
}

impl Serialize for HintSet {
    /// As IPA's parsed dictionary, e.g. `{"serial": "s== abc", "size": ">= 400"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.hints.len()))?;
        for (name, value) in &self.hints {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

impl fmt::Display for HintSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&shown)
    }
}

/// A hint that could not be compared with a disk, where IPA raises and fails the deploy
/// (e.g. `model: ">= 5"` against the model `QEMU HARDDISK`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hint {hint} {expression} cannot be evaluated on {device}: {reason}")]
pub struct HintEvalError {
    /// The hint name.
    pub hint: &'static str,
    /// The hint as normalised, e.g. `>= 5`.
    pub expression: String,
    /// The disk's path.
    pub device: String,
    /// What could not be compared.
    pub reason: String,
}

impl HintSet {
    /// Parses an Ironic `root_device` dictionary exactly as IPA's `parse_root_device_hints`
    /// does; `field` names the order key in errors.
    pub fn parse_ipa(map: &Map<String, Value>, field: &str) -> Result<Self, OrderError> {
        let unknown: Vec<&str> = map
            .keys()
            .filter(|key| HintName::from_key(key).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let valid: Vec<&str> = HintName::ALL.iter().map(|h| h.as_str()).collect();
            return Err(OrderError::new(
                field,
                format!(
                    "unknown root device hint(s) {}; valid hints are: {}",
                    unknown.join(", "),
                    valid.join(", ")
                ),
            ));
        }
        let hints = map
            .iter()
            .filter_map(|(key, value)| HintName::from_key(key).map(|name| (name, value)))
            .map(|(name, value)| {
                ipa::compile(name, value)
                    .map(|compiled| (name, compiled))
                    .map_err(|problem| OrderError::new(field, problem))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hints })
    }

    /// The hints, in order.
    pub fn hints(&self) -> &[(HintName, HintValue)] {
        &self.hints
    }

    /// Whether `dev` satisfies every hint; `Err` where IPA would raise instead.
    pub fn try_matches(&self, dev: &BlockDevice) -> Result<bool, HintEvalError> {
        for (name, value) in &self.hints {
            match ipa::compare(*name, value, dev) {
                ipa::Outcome::Match => {}
                ipa::Outcome::NoMatch => return Ok(false),
                ipa::Outcome::Incomparable(reason) => {
                    return Err(HintEvalError {
                        hint: name.as_str(),
                        expression: match value {
                            HintValue::Spec(spec) => spec.clone(),
                            HintValue::Bool(b) => b.to_string(),
                        },
                        device: dev.name.clone(),
                        reason,
                    })
                }
            }
        }
        Ok(true)
    }
}

/// Parsed, normalised root-device hints: one slot, or two (primary first) for RAID1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RootDeviceHints {
    /// The hints of each disk to find.
    slots: Vec<HintSet>,
}

impl RootDeviceHints {
    /// Parses hints as an order gives them; `field` is the order key, named in errors.
    ///
    /// A dictionary is read as IPA reads it, except that `serial` or `wwn` holding exactly
    /// two values (plain or after `s==`) asks for a RAID1 pair; the simplified string
    /// `serial=A [B]` / `wwn=X [Y]` is the dictionary `{"serial": "s== A [B]"}`.
    pub fn parse(input: &HintsInput, field: &str) -> Result<Self, OrderError> {
        let map = match input {
            HintsInput::Simplified(text) => {
                input::simplified_to_map(text).map_err(|problem| OrderError::new(field, problem))?
            }
            HintsInput::Map(map) => map.clone(),
        };
        if map.is_empty() {
            return Err(OrderError::new(
                field,
                "root device hints are empty; give at least one hint, e.g. serial",
            ));
        }
        let slots = input::raid_slots(&map)
            .iter()
            .map(|slot| HintSet::parse_ipa(slot, field))
            .collect::<Result<_, _>>()?;
        Ok(Self { slots })
    }

    /// Parses a dictionary with IPA's meaning only (no RAID1 pair), as one slot.
    pub fn parse_ipa(map: &Map<String, Value>, field: &str) -> Result<Self, OrderError> {
        Ok(Self {
            slots: vec![HintSet::parse_ipa(map, field)?],
        })
    }

    /// Whether the hints ask for a RAID1 pair.
    pub fn is_raid1(&self) -> bool {
        self.slots.len() == 2
    }

    /// The hint sets, one per disk to find (primary first).
    pub fn slots(&self) -> &[HintSet] {
        &self.slots
    }

    /// Whether `dev` satisfies all hints of some slot. A hint IPA could not evaluate on this
    /// disk counts as no match here; [`try_find_devices_by_hints`] reports it instead.
    pub fn matches(&self, dev: &BlockDevice) -> bool {
        self.try_matches(dev).unwrap_or(false)
    }

    /// Like [`Self::matches`], with `Err` where IPA would raise.
    pub fn try_matches(&self, dev: &BlockDevice) -> Result<bool, HintEvalError> {
        for slot in &self.slots {
            if slot.try_matches(dev)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// IPA's `find_devices_by_hints`: every device that satisfies the hints (of any slot), in
/// inventory order. Devices on which a hint cannot be evaluated are left out.
pub fn find_devices_by_hints<'a>(
    devices: &'a [BlockDevice],
    hints: &RootDeviceHints,
) -> Vec<&'a BlockDevice> {
    devices.iter().filter(|dev| hints.matches(dev)).collect()
}

/// Like [`find_devices_by_hints`], but fails where IPA would raise, as listing all of
/// IPA's matches does.
pub fn try_find_devices_by_hints<'a>(
    devices: &'a [BlockDevice],
    hints: &RootDeviceHints,
) -> Result<Vec<&'a BlockDevice>, HintEvalError> {
    let mut found = Vec::new();
    for dev in devices {
        if hints.try_matches(dev)? {
            found.push(dev);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests;
