//! Reading every source of orders, from the live machine or from what the caller names.

mod drive;
mod per_machine;

pub use drive::{read_path, DriveSource};

use super::cmdline;
use super::embedded::{self, Embedded};
use super::mount::DeviceRoots;
use super::node;
use super::{instance_id, merge, Orders};
use crate::host::cmdline::{self as host_cmdline, PROC_CMDLINE};
use anyhow::Context;
use per_machine::Machine;
use std::path::PathBuf;

/// What to read instead of the live machine; `None` means "the live machine".
#[derive(Debug, Clone, Default)]
pub struct GatherOptions {
    /// A kernel command line to parse instead of `/proc/cmdline`.
    pub cmdline: Option<String>,
    /// A node JSON path or http(s) URL, instead of `ocimetal.node=`.
    pub node: Option<String>,
    /// A configdrive directory, ISO image or block device, instead of `ocimetal.configdrive=`
    /// or the medium labelled `config-2`.
    pub configdrive: Option<PathBuf>,
    /// The orders the installer ISO carries: read from the boot medium (the default), given
    /// (an ISO read by the caller, or orders about to be embedded), or none.
    pub embedded: EmbeddedSource,
    /// Reads nothing of this machine: no `config-2` medium, no boot medium, and the node,
    /// configdrive or user_data a command line names (`ocimetal.node=`,
    /// `ocimetal.configdrive=`, `ocimetal.configdrive_url=`, `ocimetal.user_data_url=`, a
    /// node's configdrive URL) are left to the machine that boots with them. For checking
    /// orders before they are embedded.
    pub offline: bool,
}

/// Where the orders carried by an installer ISO come from.
#[derive(Debug, Clone, Default)]
pub enum EmbeddedSource {
    /// The installer's own boot medium (an ISO 9660 filesystem labelled `OCIMETAL`).
    #[default]
    BootMedium,
    /// Orders already read.
    Given(Box<Embedded>),
    /// None.
    None,
}

/// Reads every source (live machine where an option is None: /proc/cmdline, ocimetal.node=,
/// config-2 label, the order URLs) and merges them; `ocimetal.user_data_url=` then replaces
/// the user_data. Nothing is logged about the merge: the caller logs
/// [`Orders::warnings`](super::Orders::warnings).
///
/// Invalid orders (a named file that cannot be read included) are an [`OrderError`] inside
/// the `anyhow::Error`; documents that cannot be fetched are other errors with context.
///
/// [`OrderError`]: crate::error::OrderError
pub fn gather(opts: &GatherOptions) -> anyhow::Result<Orders> {
    gather_on(opts, &Machine::default())
}

/// [`gather`], with what fills in the placeholders of order URLs.
fn gather_on(opts: &GatherOptions, machine: &Machine) -> anyhow::Result<Orders> {
    let text = match &opts.cmdline {
        Some(text) => text.clone(),
        None => host_cmdline::read().with_context(|| format!("reading {PROC_CMDLINE}"))?,
    };
    let cmdline = cmdline::parse(&text)?;
    let both_named = (opts.node.is_some() || cmdline.node.is_some())
        && (opts.configdrive.is_some() || cmdline.configdrive.is_some());
    // Booted from the ISO, the medium must be known before anything is decided: its orders
    // count, and the inventory must see its label (a USB stick can be probed after udev has
    // settled).
    let live_medium = !opts.offline && matches!(opts.embedded, EmbeddedSource::BootMedium);
    if live_medium
        && embedded::booted_from_iso(&text)
        && !embedded::wait_for_boot_medium(&DeviceRoots::default(), embedded::BOOT_MEDIUM_WAIT)
    {
        tracing::warn!(
            "booted from the installer ISO, but no ISO 9660 medium labelled {} appeared within {:?}",
            embedded::LABEL,
            embedded::BOOT_MEDIUM_WAIT
        );
    }
    let mut embedded = match &opts.embedded {
        EmbeddedSource::Given(given) => Some(given.as_ref().clone()),
        EmbeddedSource::BootMedium if !opts.offline && !both_named => {
            embedded::from_boot_media(&DeviceRoots::default())?
        }
        EmbeddedSource::BootMedium | EmbeddedSource::None => None,
    };
    if let Some(found) = &embedded {
        tracing::info!("orders carried by the installer medium: {}", found.origin);
    }
    let mut node = match (&opts.node, &cmdline.node) {
        (Some(location), _) => Some(node::load(location, "--node")?),
        (None, Some(_)) if opts.offline => None,
        (None, Some(location)) => per_machine::node(location, machine)?,
        (None, None) => embedded.as_mut().and_then(|e| e.node.take()),
    };
    let embedded_drive = embedded.and_then(|e| e.drive);
    let drive = drive::choose(opts, &cmdline, node.as_mut(), embedded_drive, machine)?;
    let says_what = cmdline.image.is_some()
        || cmdline.root_device_hints.is_some()
        // Offline, what the command line names is read by the machine itself.
        || (opts.offline
            && (cmdline.node.is_some()
                || cmdline.configdrive.is_some()
                || cmdline.configdrive_url.is_some()));
    if node.is_none() && drive.is_none() && !says_what {
        return Err(crate::error::NoOrders.into());
    }
    // Only orders make the user_data worth fetching: on its own it orders nothing.
    let user_data = match &cmdline.user_data_url {
        Some(template) if !opts.offline => per_machine::user_data(template, machine)?,
        _ => None,
    };
    // The caller logs `orders.warnings` once the orders are known to be usable: a refusal
    // must stay one line.
    let mut orders = merge(&cmdline, node.as_ref(), drive.as_ref().map(|(d, _)| d))?;
    orders.configdrive_source = drive.map(|(_, source)| source.key().to_string());
    if let Some((secret, url)) = user_data {
        tracing::info!(
            "user_data from {url} ({} bytes){}",
            secret.len(),
            match orders.user_data {
                Some(_) => ", instead of the configdrive's",
                None => "",
            }
        );
        orders.user_data = Some(secret);
        orders.user_data_source = Some(per_machine::USER_DATA_URL.to_string());
    }
    let smbios = match opts.offline {
        true => None,
        false => instance_id::read_smbios_uuid(),
    };
    instance_id::settle(&mut orders, smbios);
    Ok(orders)
}

#[cfg(test)]
mod tests;
