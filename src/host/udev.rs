//! Reading the udev database (`/run/udev/data/b<major>:<minor>`), one file per device.
//!
//! The file holds one record per line: `E:KEY=VALUE` properties, `S:LINK` symlinks under `/dev`
//! and a few bookkeeping lines (`I:`, `G:`, `Q:`, `V:`) we do not need. The reasons to read
//! the files rather than ask libudev are in docs/host-notes.md.

use super::escape::decode_hex_escapes;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The udev database: one `b<major>:<minor>` file per block device udev has processed.
pub const DATA_DIR: &str = "/run/udev/data";

/// Present while udevd runs (systemd tests it the same way).
const CONTROL: &str = "/run/udev/control";

/// Whether udevd is running, so that its database will get entries.
pub fn running() -> bool {
    Path::new(CONTROL).exists()
}

/// The database file of block device `major:minor` under `data_dir`.
pub fn entry_path(data_dir: &Path, major_minor: &str) -> PathBuf {
    data_dir.join(format!("b{major_minor}"))
}

/// Every block device entry in `data_dir` with its `major:minor`, in file name order so that
/// the same machine gives the same answer on every run.
pub fn block_entries(data_dir: &Path) -> Vec<(String, UdevEntry)> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with('b'))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let major_minor = name[1..].to_owned();
            let entry = UdevEntry::read(data_dir, &major_minor)?;
            Some((major_minor, entry))
        })
        .collect()
}

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
        let text = std::fs::read_to_string(entry_path(data_dir, major_minor)).ok()?;
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
    fn lists_block_entries_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b8:16"), "E:ID_FS_LABEL=b\n").unwrap();
        std::fs::write(dir.path().join("b11:0"), "E:ID_FS_LABEL=a\n").unwrap();
        std::fs::write(dir.path().join("c4:64"), "E:ID_FS_LABEL=tty\n").unwrap();
        let entries = block_entries(dir.path());
        let numbers: Vec<&str> = entries.iter().map(|(mm, _)| mm.as_str()).collect();
        assert_eq!(numbers, ["11:0", "8:16"]);
        assert_eq!(entries[0].1.get("ID_FS_LABEL"), Some("a"));
        assert!(block_entries(&dir.path().join("missing")).is_empty());
    }
}
