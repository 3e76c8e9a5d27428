//! `/etc/ocimetal/deployment.json`: what was installed, from what orders, and when.
//!
//! The installer reads it back on a later boot of the ramdisk to tell whether this exact
//! deployment is already on the disk (Ironic's `ramdisk` deploy may boot the installer
//! again). It holds no secrets: orders are represented by a digest only.

use super::file::TargetFile;
use crate::inventory::BlockDevice;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Path of the record, relative to the target root.
pub const DEPLOYMENT_RECORD_PATH: &str = "etc/ocimetal/deployment.json";

/// The image that was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedImage {
    /// Normalised reference, e.g. `docker.io/library/ubuntu:24.04`.
    pub reference: String,
    /// Manifest digest actually pulled, e.g. `sha256:…`.
    pub digest: String,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: String,
}

/// A disk the system was installed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDisk {
    /// Kernel device at install time, e.g. `/dev/sda` (may differ on later boots).
    pub device: String,
    /// Serial number, the stable identity.
    pub serial: Option<String>,
    /// World wide name, the other stable identity.
    pub wwn: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

impl From<&BlockDevice> for RecordedDisk {
    fn from(dev: &BlockDevice) -> Self {
        Self {
            device: dev.name.clone(),
            serial: dev.serial.clone(),
            wwn: dev.wwn.clone(),
            size: dev.size,
        }
    }
}

/// The deployment record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// Version of the ocimetal that installed the system.
    pub ocimetal_version: String,
    /// Ironic node UUID, when known.
    pub node_uuid: Option<String>,
    /// Digest of the merged orders (secrets included only through the digest).
    pub orders_hash: String,
    /// The image installed.
    pub image: RecordedImage,
    /// Target disks: one, or two for RAID1.
    pub disks: Vec<RecordedDisk>,
    /// Whether the disks form a RAID1.
    pub raid: bool,
    /// When the install started (RFC 3339, UTC).
    pub started_at: String,
    /// When the install finished (RFC 3339, UTC).
    pub finished_at: String,
}

impl DeploymentRecord {
    /// A record stamped with this ocimetal's version.
    pub fn new(
        node_uuid: Option<String>,
        orders_hash: String,
        image: RecordedImage,
        disks: Vec<RecordedDisk>,
        started: SystemTime,
        finished: SystemTime,
    ) -> Self {
        let raid = disks.len() > 1;
        Self {
            ocimetal_version: env!("CARGO_PKG_VERSION").to_string(),
            node_uuid,
            orders_hash,
            image,
            disks,
            raid,
            started_at: rfc3339_utc(started),
            finished_at: rfc3339_utc(finished),
        }
    }

    /// The file to write (pretty JSON, readable by anyone: it holds no secrets).
    pub fn to_file(&self) -> Result<TargetFile, serde_json::Error> {
        let mut json = serde_json::to_vec_pretty(self)?;
        json.push(b'\n');
        Ok(TargetFile::plain(DEPLOYMENT_RECORD_PATH, json, 0o644))
    }

    /// Reads a record written by [`DeploymentRecord::to_file`].
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Formats `time` as RFC 3339 in UTC with second precision, e.g. `2025-01-31T12:00:00Z`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339_utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(at(1_738_324_799)), "2025-01-31T11:59:59Z");
        assert_eq!(rfc3339_utc(at(4_107_542_400)), "2100-03-01T00:00:00Z");
    }

    fn sample() -> DeploymentRecord {
        let disk = BlockDevice {
            name: "/dev/sda".into(),
            size: 64 << 30,
            serial: Some("S1".into()),
            wwn: Some("0x5000".into()),
            ..Default::default()
        };
        let second = BlockDevice {
            name: "/dev/sdb".into(),
            serial: Some("S2".into()),
            ..disk.clone()
        };
        DeploymentRecord::new(
            Some("node-1".into()),
            "sha256:abc".into(),
            RecordedImage {
                reference: "docker.io/library/ubuntu:24.04".into(),
                digest: "sha256:def".into(),
                platform: "linux/amd64".into(),
            },
            vec![(&disk).into(), (&second).into()],
            at(1_738_324_000),
            at(1_738_324_799),
        )
    }

    #[test]
    fn record_file_is_pretty_json_that_reads_back() {
        let record = sample();
        assert!(record.raid);
        let file = record.to_file().expect("serialise");
        assert_eq!(file.path.to_str(), Some("etc/ocimetal/deployment.json"));
        assert_eq!(file.mode, 0o644);
        let text = file.text().expect("text");
        assert!(text.starts_with("{\n  \"ocimetal_version\": \""), "{text}");
        assert!(
            text.contains("\"started_at\": \"2025-01-31T11:46:40Z\""),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
        assert_eq!(
            DeploymentRecord::parse(text.as_bytes()).expect("parse"),
            record
        );
    }
}
