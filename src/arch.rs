//! The CPU architectures ocimetal installs for, and the names each one goes by.

use crate::error::OrderError;
use serde::Serialize;
use std::fmt;

/// CPU architectures ocimetal installs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// `x86_64` / `amd64`.
    X86_64,
    /// `aarch64` / `arm64`.
    Aarch64,
}

impl Arch {
    /// Accepts the kernel's names (`x86_64`, `aarch64`) and Debian's/OCI's (`amd64`, `arm64`).
    pub fn parse(value: &str) -> Result<Self, OrderError> {
        match value {
            "x86_64" | "amd64" => Ok(Self::X86_64),
            "aarch64" | "arm64" => Ok(Self::Aarch64),
            other => Err(OrderError::new(
                "arch",
                format!(
                    "unsupported architecture {other:?}; valid: x86_64 (amd64), aarch64 (arm64)"
                ),
            )),
        }
    }

    /// The architecture this program was built for, if it is one we install for.
    pub fn host() -> Option<Self> {
        Self::parse(std::env::consts::ARCH).ok()
    }

    /// The kernel's name: `x86_64` / `aarch64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
        }
    }

    /// `grub-install --target=`.
    pub fn efi_target(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-efi",
            Self::Aarch64 => "arm64-efi",
        }
    }

    /// File name of the removable-media fallback loader under `\EFI\BOOT\`.
    pub fn removable_efi_name(self) -> &'static str {
        match self {
            Self::X86_64 => "BOOTX64.EFI",
            Self::Aarch64 => "BOOTAA64.EFI",
        }
    }

    /// The shim loader grub-install places next to GRUB (Secure Boot chain start).
    pub fn shim_loader_name(self) -> &'static str {
        match self {
            Self::X86_64 => "shimx64.efi",
            Self::Aarch64 => "shimaa64.efi",
        }
    }

    /// The GRUB EFI image, booted directly when no shim is installed.
    pub fn grub_loader_name(self) -> &'static str {
        match self {
            Self::X86_64 => "grubx64.efi",
            Self::Aarch64 => "grubaa64.efi",
        }
    }

    /// OCI platform to pull.
    pub fn oci_platform(self) -> crate::oci::Platform {
        crate::oci::Platform {
            os: "linux".to_string(),
            architecture: self.deb_arch().to_string(),
            variant: None,
        }
    }

    /// Debian architecture name.
    pub fn deb_arch(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
        }
    }

    /// The first serial port's kernel name on typical servers of this architecture.
    pub fn serial_console(self) -> &'static str {
        match self {
            Self::X86_64 => "ttyS0",
            Self::Aarch64 => "ttyAMA0",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Arch {
    type Err = OrderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
