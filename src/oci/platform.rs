//! Target platforms (`os/architecture[/variant]`) and their selection from image indexes.

use crate::error::OrderError;
use oci_client::manifest::{ImageIndexEntry, Platform as IndexPlatform};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An image platform as OCI names it, e.g. `linux/amd64` or `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in OCI spelling, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Optional CPU variant, e.g. `v8` for arm64 or `v7` for arm.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of the running machine (what an install onto it needs).
    pub fn host() -> Self {
        let architecture = oci_arch(std::env::consts::ARCH);
        let variant = (architecture == "arm").then(|| "v7".to_string());
        Self {
            os: std::env::consts::OS.to_string(),
            architecture,
            variant,
        }
    }

    /// True when an index entry's platform fits this one. Without a requested variant any
    /// variant fits; arm64 without a variant counts as `v8`, as Docker does.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != oci_arch(architecture) {
            return false;
        }
        match &self.variant {
            None => true,
            Some(wanted) => {
                let default = (self.architecture == "arm64").then_some("v8");
                variant.or(default) == Some(wanted.as_str())
            }
        }
    }

    /// The platform an index entry declares, when it declares one.
    pub(crate) fn of_entry(entry: &ImageIndexEntry) -> Option<Self> {
        entry.platform.as_ref().map(Self::from_index)
    }

    fn from_index(p: &IndexPlatform) -> Self {
        Self {
            os: p.os.to_string(),
            architecture: p.architecture.to_string(),
            variant: p.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// Attestation manifests (BuildKit provenance, SBOMs) are listed as `unknown/unknown`.
    pub(crate) fn is_attestation(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }
}

/// Maps Rust/uname architecture names to OCI's (`x86_64` → `amd64`).
fn oci_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64le" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
    .to_string()
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = OrderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let valid = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
        if !valid {
            return Err(OrderError::new(
                "platform",
                format!("{s:?} is not a platform; expected os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8"),
            ));
        }
        Ok(Self {
            os: parts[0].to_ascii_lowercase(),
            architecture: oci_arch(&parts[1].to_ascii_lowercase()),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }
}

/// A platform serialises as it prints, `linux/amd64`, so that a plan can carry it.
impl Serialize for Platform {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::as_text::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::as_text::deserialize(d)
    }
}

/// Picks the index entry for `wanted`, skipping attestation entries.
/// On failure returns the platforms the index does offer, for the error message.
pub(crate) fn select<'a>(
    entries: &'a [ImageIndexEntry],
    wanted: &Platform,
) -> Result<(&'a ImageIndexEntry, Platform), Vec<Platform>> {
    let candidates: Vec<(&ImageIndexEntry, Platform)> = entries
        .iter()
        .filter_map(|e| Platform::of_entry(e).map(|p| (e, p)))
        .filter(|(_, p)| !p.is_attestation())
        .collect();
    candidates
        .iter()
        .find(|(_, p)| wanted.matches(&p.os, &p.architecture, p.variant.as_deref()))
        .cloned()
        .ok_or_else(|| candidates.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, digest: &str) -> ImageIndexEntry {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": {"os": os, "architecture": arch, "variant": variant},
        }))
        .unwrap()
    }

    #[test]
    fn parses_and_prints_platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        let p: Platform = "Linux/x86_64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/amd64");
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", ""] {
            let err = bad.parse::<Platform>().unwrap_err();
            assert_eq!(err.field, "platform", "{bad}");
        }
    }

    #[test]
    fn host_platform_uses_oci_names() {
        let host = Platform::host();
        assert_eq!(host.os, std::env::consts::OS);
        assert!(!["x86_64", "aarch64"].contains(&host.architecture.as_str()));
    }

    #[test]
    fn selects_by_os_arch_and_variant_skipping_attestations() {
        let entries = vec![
            entry("unknown", "unknown", None, "sha256:att"),
            entry("linux", "arm", Some("v6"), "sha256:armv6"),
            entry("linux", "arm", Some("v7"), "sha256:armv7"),
            entry("linux", "arm64", None, "sha256:arm64"),
            entry("linux", "amd64", None, "sha256:amd64"),
        ];
        let pick = |s: &str| select(&entries, &s.parse().unwrap()).map(|(e, _)| e.digest.clone());
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:amd64");
        assert_eq!(pick("linux/arm/v7").unwrap(), "sha256:armv7");
        assert_eq!(pick("linux/arm64/v8").unwrap(), "sha256:arm64");
        let offered = pick("linux/s390x").unwrap_err();
        let offered: Vec<String> = offered.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            offered,
            ["linux/arm/v6", "linux/arm/v7", "linux/arm64", "linux/amd64"]
        );
    }

    #[test]
    fn serialises_as_os_slash_architecture() {
        let platform: Platform = "linux/x86_64".parse().unwrap();
        let json = serde_json::to_string(&platform).unwrap();
        assert_eq!(json, "\"linux/amd64\"");
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), platform);
        let arm: Platform = serde_json::from_str("\"linux/arm64/v8\"").unwrap();
        assert_eq!(arm.variant.as_deref(), Some("v8"));
        assert!(serde_json::from_str::<Platform>("\"linux\"").is_err());
    }
}
