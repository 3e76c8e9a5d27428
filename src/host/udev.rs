//! Reading one entry of the udev database (`/run/udev/data/b<major>:<minor>`).
//!
//! The file holds one record per line: `E:KEY=VALUE` properties, `S:LINK` symlinks under `/dev`
//! and a few bookkeeping lines (`I:`, `G:`, `Q:`, `V:`) we do not need.

use std::collections::HashMap;
use std::path::Path;

/// What udev knows about one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdevEntry {
    /// `E:` properties, e.g. `ID_SERIAL_SHORT`.
    pub properties: HashMap<String, String>,
    /// `S:` symlinks, relative to `/dev`, e.g. `disk/by-path/pci-0000:00:1f.2-ata-1`.
    pub links: Vec<String>,
}

impl UdevEntry {
    /// Parses the text of a database file; unknown lines are ignored.
    pub fn parse(text: &str) -> Self {
        let mut entry = Self::default();
        for line in text.lines() {
            if let Some(property) = line.strip_prefix("E:") {
                if let Some((key, value)) = property.split_once('=') {
                    entry.properties.insert(key.to_owned(), value.to_owned());
                }
            } else if let Some(link) = line.strip_prefix("S:") {
                entry.links.push(link.to_owned());
            }
        }
        entry
    }

    /// Reads the entry of device `major:minor` from `data_dir`; `None` when udev has none.
    pub fn read(data_dir: &Path, major_minor: &str) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join(format!("b{major_minor}"))).ok()?;
        Some(Self::parse(&text))
    }

    /// A non-empty property value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .get(key)
            .map(String::as_str)
            .filter(|value| !value.trim().is_empty())
    }

    /// The first non-empty value among `keys`, in order.
    pub fn first_of(&self, keys: &[&str]) -> Option<&str> {
        keys.iter().find_map(|key| self.get(key))
    }

    /// The filesystem label (`ID_FS_LABEL`, or the decoded `ID_FS_LABEL_ENC`).
    pub fn fs_label(&self) -> Option<String> {
        self.get("ID_FS_LABEL_ENC")
            .map(decode_hex_escapes)
            .or_else(|| self.get("ID_FS_LABEL").map(str::to_owned))
    }

    /// The GPT partition name (`ID_PART_ENTRY_NAME`, hex escapes decoded).
    pub fn partition_label(&self) -> Option<String> {
        self.get("ID_PART_ENTRY_NAME").map(decode_hex_escapes)
    }
}

/// Decodes udev's `\xNN` escapes (used in `*_ENC` values and in by-label link names).
pub fn decode_hex_escapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            if let Some(byte) = text
                .get(i + 2..i + 4)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_properties_and_links() {
        let entry = UdevEntry::parse(
            "S:disk/by-id/wwn-0x5000c500a1b2c3d4\nS:disk/by-path/pci-0000:00:03.0-scsi-0:0:0:0\n\
             I:1234\nE:ID_SERIAL=35000c500a1b2c3d4\nE:ID_SCSI_SERIAL=DISK2SERIAL\nE:EMPTY=\n\
             E:ID_FS_LABEL_ENC=my\\x20disk\nG:systemd\n",
        );
        assert_eq!(entry.links.len(), 2);
        assert_eq!(entry.get("ID_SCSI_SERIAL"), Some("DISK2SERIAL"));
        assert_eq!(entry.get("EMPTY"), None);
        assert_eq!(
            entry.first_of(&["MISSING", "EMPTY", "ID_SERIAL"]),
            Some("35000c500a1b2c3d4")
        );
        assert_eq!(entry.fs_label().as_deref(), Some("my disk"));
    }

    #[test]
    fn leaves_malformed_escapes_alone() {
        assert_eq!(decode_hex_escapes(r"a\x2Fb\xZZ\x4"), r"a/b\xZZ\x4");
    }
}
