//! Which configdrive is used, among every place one may come from, and reading a named one.

use super::per_machine::{self, Machine};
use super::GatherOptions;
use crate::config::cmdline::CmdlineOrders;
use crate::config::configdrive::ConfigDrive;
use crate::config::mount::{self, DeviceRoots};
use crate::config::node::{self, NodeConfigDrive, NodeDoc};
use crate::error::OrderError;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// Where the configdrive came from, highest rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveSource {
    /// `--configdrive` of `ocimetal plan` / `install`.
    Option,
    /// `ocimetal.configdrive=`.
    Cmdline,
    /// The node's `instance_info.configdrive` (inline, or fetched from its URL).
    Node,
    /// The medium labelled `config-2`.
    Medium,
    /// `ocimetal.configdrive_url=`.
    Url,
    /// The one the installer ISO carries.
    InstallerIso,
}

impl DriveSource {
    /// How the plan and the log name it.
    pub fn key(self) -> &'static str {
        match self {
            Self::Option => "--configdrive",
            Self::Cmdline => "ocimetal.configdrive",
            Self::Node => "instance_info.configdrive",
            Self::Medium => "config-2 medium",
            Self::Url => per_machine::CONFIGDRIVE_URL,
            Self::InstallerIso => "installer ISO",
        }
    }
}

/// The configdrive to use, first match wins: `--configdrive`, `ocimetal.configdrive=`, the
/// node's own (taken out of the node: inline, or fetched from its URL), the live `config-2`
/// medium, `ocimetal.configdrive_url=` (a URL answered 404 everywhere gives none), the one
/// the installer medium carries; else none. A source is only read when none above gave a
/// drive.
pub fn choose(
    opts: &GatherOptions,
    cmdline: &CmdlineOrders,
    node: Option<&mut NodeDoc>,
    embedded: Option<ConfigDrive>,
    machine: &Machine,
) -> anyhow::Result<Option<(ConfigDrive, DriveSource)>> {
    if let Some(path) = &opts.configdrive {
        return Ok(Some((
            read_path(path, "--configdrive")?,
            DriveSource::Option,
        )));
    }
    if let Some(path) = &cmdline.configdrive {
        if opts.offline {
            return Ok(None);
        }
        let drive = read_path(path, "ocimetal.configdrive")?;
        return Ok(Some((drive, DriveSource::Cmdline)));
    }
    match node.and_then(|n| n.configdrive.take()) {
        Some(NodeConfigDrive::Inline(drive)) => return Ok(Some((drive, DriveSource::Node))),
        Some(NodeConfigDrive::Url(_)) if opts.offline => return Ok(None),
        Some(NodeConfigDrive::Url(url)) => {
            return Ok(Some((node::fetch_configdrive(&url)?, DriveSource::Node)))
        }
        None => {}
    }
    if opts.offline {
        // What the machine reads for itself (a medium, a URL) is left to it.
        return Ok(embedded.map(|drive| (drive, DriveSource::InstallerIso)));
    }
    if let Some(device) = mount::find_config2(&DeviceRoots::default()) {
        tracing::info!("reading the configdrive from {}", device.display());
        return Ok(Some((mount::read_device(&device)?, DriveSource::Medium)));
    }
    if let Some(template) = &cmdline.configdrive_url {
        if let Some(drive) = per_machine::configdrive(template, machine)? {
            return Ok(Some((drive, DriveSource::Url)));
        }
    }
    match embedded {
        Some(drive) => {
            tracing::info!("using the configdrive carried by {}", drive.origin);
            Ok(Some((drive, DriveSource::InstallerIso)))
        }
        None => {
            tracing::info!("no configdrive: no medium labelled config-2");
            Ok(None)
        }
    }
}

/// Reads a named configdrive: a directory as a tree, a block device through a read-only
/// mount, a regular file as an ISO 9660 image; `field` names the order in errors.
pub fn read_path(path: &Path, field: &str) -> anyhow::Result<ConfigDrive> {
    let metadata = std::fs::metadata(path).map_err(|err| {
        OrderError::new(
            field,
            format!(
                "cannot use {} ({err}); give a config-2 directory, ISO image or block device",
                path.display()
            ),
        )
    })?;
    if metadata.is_dir() {
        return Ok(ConfigDrive::from_dir(path)?);
    }
    if metadata.file_type().is_block_device() {
        return mount::read_device(path);
    }
    let file = crate::bounded::open_regular(path).map_err(|refused| {
        OrderError::new(
            field,
            format!(
                "{} {refused}; give a config-2 directory, ISO image or block device",
                path.display()
            ),
        )
    })?;
    Ok(ConfigDrive::from_iso(
        std::io::BufReader::new(file),
        &path.display().to_string(),
    )?)
}
