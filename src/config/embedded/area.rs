//! The orders area: a fixed-size file of the installer ISO (`/ocimetal/orders.img`) that
//! carries a configdrive and a node JSON document.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! | --- | --- |
//! | 0–15 | magic `ocimetal-orders\n` |
//! | 16–19 | format version, 1 |
//! | 20–23 | payload length |
//! | 24–55 | SHA-256 of the payload |
//! | 56– | payload: a gzip-compressed tar archive; then zeros to the end of the area |
//!
//! An area of zeros carries nothing (that is how `mkosi/build` makes it and what
//! `ocimetal iso reset` writes back). The archive holds at most `node.json` and the three
//! files of a `config-2` tree under `configdrive/openstack/latest/`; nothing else is
//! accepted. Decompression is bounded, as is every entry.

use crate::config::configdrive::LATEST;
use crate::config::{ConfigDrive, NodeDoc};
use crate::error::OrderError;
use sha2::{Digest, Sha256};
use std::io::Read;

/// The first bytes of a written area.
pub const MAGIC: &[u8; 16] = b"ocimetal-orders\n";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 56;
/// Most bytes the archive may unpack to (Ironic caps a configdrive at 64 MiB too).
const MAX_UNPACKED: u64 = 64 * 1024 * 1024;

/// Where the node document lives in the archive.
const NODE: &str = "node.json";
/// Where the configdrive tree lives in the archive.
const DRIVE_DIR: &str = "configdrive";
/// The files of a configdrive tree that are carried.
const DRIVE_FILES: [&str; 3] = ["meta_data.json", "user_data", "network_data.json"];

/// What an area carries, as files (the node document byte for byte).
#[derive(Clone, Default, PartialEq)]
pub struct Payload {
    /// `meta_data.json`, `user_data` and `network_data.json` of a configdrive (the first is
    /// required when a configdrive is carried).
    pub configdrive: Option<DriveFiles>,
    /// The node JSON document, as given.
    pub node: Option<Vec<u8>>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // user_data and the node's secrets stay out of any debug output.
        f.debug_struct("Payload")
            .field("configdrive", &self.configdrive.is_some())
            .field("node_bytes", &self.node.as_ref().map(Vec::len))
            .finish()
    }
}

/// The files of a configdrive.
#[derive(Clone, Default, PartialEq)]
pub struct DriveFiles {
    /// `openstack/latest/meta_data.json`.
    pub meta_data: Vec<u8>,
    /// `openstack/latest/user_data` (a secret).
    pub user_data: Option<Vec<u8>>,
    /// `openstack/latest/network_data.json`.
    pub network_data: Option<Vec<u8>>,
}

impl DriveFiles {
    /// The files a read configdrive stands for (meta_data and network_data re-serialised,
    /// user_data byte for byte).
    pub fn from_drive(drive: &ConfigDrive) -> Self {
        Self {
            meta_data: serde_json::to_vec(&drive.meta_data).unwrap_or_default(),
            user_data: drive.user_data.as_ref().map(|u| u.expose().to_vec()),
            network_data: drive
                .network_data
                .as_ref()
                .map(|n| serde_json::to_vec(n).unwrap_or_default()),
        }
    }

    /// The configdrive these files make; `origin` names it in errors and the log.
    pub fn to_drive(&self, origin: &str) -> Result<ConfigDrive, OrderError> {
        ConfigDrive::from_files(
            origin,
            Some(self.meta_data.clone()),
            self.user_data.clone(),
            self.network_data.clone(),
        )
    }
}

impl Payload {
    /// Whether nothing is carried.
    pub fn is_empty(&self) -> bool {
        self.configdrive.is_none() && self.node.is_none()
    }

    /// The node document, parsed; `origin` names the area in errors.
    pub fn node_doc(&self, origin: &str) -> Result<Option<NodeDoc>, OrderError> {
        self.node
            .as_ref()
            .map(|bytes| NodeDoc::parse(bytes, &format!("{origin}:{NODE}")))
            .transpose()
    }

    /// The configdrive, parsed; `origin` names the area in errors.
    pub fn drive(&self, origin: &str) -> Result<Option<ConfigDrive>, OrderError> {
        self.configdrive
            .as_ref()
            .map(|files| files.to_drive(&format!("{origin}:{DRIVE_DIR}")))
            .transpose()
    }
}

/// The whole area (`area_len` bytes) for `payload`; an empty payload gives zeros.
/// `field` names the order in the error when the payload does not fit.
pub fn encode(payload: &Payload, area_len: usize, field: &str) -> Result<Vec<u8>, OrderError> {
    let mut area = vec![0u8; area_len];
    if payload.is_empty() {
        return Ok(area);
    }
    let archive = archive(payload);
    if HEADER_LEN + archive.len() > area_len {
        return Err(OrderError::new(
            field,
            format!(
                "the orders take {} bytes compressed, more than the ISO's {} byte orders area; \
                 make user_data or the node document smaller",
                archive.len(),
                area_len - HEADER_LEN
            ),
        ));
    }
    area[..16].copy_from_slice(MAGIC);
    area[16..20].copy_from_slice(&VERSION.to_le_bytes());
    area[20..24].copy_from_slice(&(archive.len() as u32).to_le_bytes());
    area[24..56].copy_from_slice(&Sha256::digest(&archive));
    area[HEADER_LEN..HEADER_LEN + archive.len()].copy_from_slice(&archive);
    Ok(area)
}

/// Reads an area; `None` when it is all zeros. `origin` names it in errors.
pub fn decode(area: &[u8], origin: &str) -> Result<Option<Payload>, OrderError> {
    if area.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let bad = |problem: String| {
        OrderError::new(
            origin,
            format!("{problem}; write the orders again with `ocimetal iso customize` or clear them with `ocimetal iso reset`"),
        )
    };
    if area.len() < HEADER_LEN || &area[..16] != MAGIC {
        return Err(bad(
            "the orders area holds something that is not ocimetal orders".into(),
        ));
    }
    let version = u32::from_le_bytes(area[16..20].try_into().unwrap_or_default());
    if version != VERSION {
        return Err(bad(format!(
            "the orders area has format version {version}; this ocimetal reads version {VERSION}"
        )));
    }
    let len = u32::from_le_bytes(area[20..24].try_into().unwrap_or_default()) as usize;
    let archive = area
        .get(HEADER_LEN..HEADER_LEN.saturating_add(len))
        .ok_or_else(|| {
            bad(format!(
                "the orders area claims {len} bytes, more than it holds"
            ))
        })?;
    if Sha256::digest(archive).as_slice() != &area[24..56] {
        return Err(bad("the orders area fails its checksum".into()));
    }
    unpack(archive).map(Some).map_err(bad)
}

/// gzip(tar) of the carried files.
fn archive(payload: &Payload) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    let mut add = |path: String, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        // Writing into memory cannot fail.
        let _ = tar.append_data(&mut header, path, bytes);
    };
    if let Some(node) = &payload.node {
        add(NODE.to_string(), node);
    }
    if let Some(files) = &payload.configdrive {
        let contents = [
            Some(&files.meta_data),
            files.user_data.as_ref(),
            files.network_data.as_ref(),
        ];
        for (name, bytes) in DRIVE_FILES.iter().zip(contents) {
            if let Some(bytes) = bytes {
                add(format!("{DRIVE_DIR}/{LATEST}/{name}"), bytes);
            }
        }
    }
    // Writing into memory cannot fail.
    tar.into_inner()
        .and_then(flate2::write::GzEncoder::finish)
        .unwrap_or_default()
}

/// The files of an archive, bounded; an unknown entry is refused.
fn unpack(archive: &[u8]) -> Result<Payload, String> {
    let gz = flate2::read::GzDecoder::new(archive).take(MAX_UNPACKED);
    let mut tar = tar::Archive::new(gz);
    let mut payload = Payload::default();
    let mut drive: [Option<Vec<u8>>; 3] = [None, None, None];
    let entries = tar
        .entries()
        .map_err(|err| format!("the orders archive cannot be read ({err})"))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|err| format!("the orders archive cannot be read ({err})"))?;
        let path = entry
            .path()
            .map_err(|err| format!("the orders archive has a bad name ({err})"))?
            .to_string_lossy()
            .into_owned();
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|err| format!("the orders archive cannot be read ({err})"))?;
        let slot = if path == NODE {
            &mut payload.node
        } else {
            match DRIVE_FILES
                .iter()
                .position(|name| path == format!("{DRIVE_DIR}/{LATEST}/{name}"))
            {
                Some(index) => &mut drive[index],
                None => {
                    return Err(format!(
                        "the orders archive holds an unknown entry {path:?}"
                    ))
                }
            }
        };
        *slot = Some(bytes);
    }
    let [meta_data, user_data, network_data] = drive;
    payload.configdrive = match (meta_data, user_data.is_some() || network_data.is_some()) {
        (Some(meta_data), _) => Some(DriveFiles {
            meta_data,
            user_data,
            network_data,
        }),
        (None, false) => None,
        (None, true) => {
            return Err(format!(
                "the orders archive has a configdrive without {LATEST}/meta_data.json"
            ))
        }
    };
    if payload.is_empty() {
        return Err("the orders archive is empty".into());
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 64 * 1024;

    fn sample() -> Payload {
        Payload {
            configdrive: Some(DriveFiles {
                meta_data: br#"{"uuid":"u-1","oci_image":"debian:13"}"#.to_vec(),
                user_data: Some(b"\x1f\x8b binary user data".to_vec()),
                network_data: Some(br#"{"links":[]}"#.to_vec()),
            }),
            node: Some(br#"{"uuid":"n-1"}"#.to_vec()),
        }
    }

    #[test]
    fn round_trip() {
        let area = encode(&sample(), LEN, "f").unwrap();
        assert_eq!(area.len(), LEN);
        assert_eq!(&area[..16], MAGIC);
        assert_eq!(decode(&area, "a").unwrap(), Some(sample()));
        let only_node = Payload {
            configdrive: None,
            node: Some(b"{}".to_vec()),
        };
        let area = encode(&only_node, LEN, "f").unwrap();
        assert_eq!(decode(&area, "a").unwrap(), Some(only_node));
        let drive = decode(&encode(&sample(), LEN, "f").unwrap(), "a")
            .unwrap()
            .unwrap()
            .drive("/dev/sr0")
            .unwrap()
            .unwrap();
        assert_eq!(drive.meta_data["oci_image"], "debian:13");
        assert_eq!(drive.origin, "/dev/sr0:configdrive");
    }

    #[test]
    fn zeros_carry_nothing() {
        assert_eq!(decode(&vec![0u8; LEN], "a").unwrap(), None);
        assert_eq!(
            encode(&Payload::default(), LEN, "f").unwrap(),
            vec![0u8; LEN]
        );
    }

    #[test]
    fn refusals() {
        let good = encode(&sample(), LEN, "f").unwrap();
        let mut bad = good.clone();
        bad[0] = b'X';
        let err = decode(&bad, "/dev/sr0:/ocimetal/orders.img").unwrap_err();
        assert_eq!(err.field, "/dev/sr0:/ocimetal/orders.img");
        assert!(err.problem.contains("not ocimetal orders"), "{err}");
        let mut bad = good.clone();
        bad[16] = 9;
        assert!(decode(&bad, "a").unwrap_err().problem.contains("version 9"));
        let mut bad = good.clone();
        bad[HEADER_LEN + 20] ^= 0xff;
        assert!(decode(&bad, "a").unwrap_err().problem.contains("checksum"));
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&(LEN as u32).to_le_bytes());
        assert!(decode(&bad, "a")
            .unwrap_err()
            .problem
            .contains("more than it holds"));
        let err = encode(&sample(), 100, "--configdrive").unwrap_err();
        assert_eq!(err.field, "--configdrive");
        assert!(err.problem.contains("orders area"), "{err}");
    }

    #[test]
    fn unknown_entries_and_bombs_are_refused() {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_mode(0o600);
        tar.append_data(&mut header, "etc/passwd", &b"x:0"[..])
            .unwrap();
        let archive = tar.into_inner().unwrap().finish().unwrap();
        assert!(unpack(&archive).unwrap_err().contains("unknown entry"));
        // 100 MiB of zeros in one entry: unpacking stops at the bound.
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(100 << 20);
        header.set_mode(0o600);
        tar.append_data(&mut header, NODE, std::io::repeat(0).take(100 << 20))
            .unwrap();
        let archive = tar.into_inner().unwrap().finish().unwrap();
        assert!(unpack(&archive).is_err());
    }
}
