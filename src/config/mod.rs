//! Orders: everything the operator said, from every source, merged into one typed [`Orders`].
//!
//! Sources, in the order they are read: the kernel command line (`ocimetal.*`), a node JSON
//! document (Ironic's shape; `ocimetal.node=` or `--node`), and a configdrive (`config-2`
//! medium, a directory, the node's `instance_info.configdrive`, `ocimetal.configdrive_url=`,
//! or the one the installer ISO carries; [`gather::DriveSource`] ranks them), whose user_data
//! `ocimetal.user_data_url=` may replace. Every merged value keeps its [`Source`] so the log
//! can say where it came from.

pub mod cmdline;
pub mod configdrive;
mod digest;
pub mod drive_bytes;
pub use digest::ORDERS_HASH_PREFIX;
pub mod embedded;
mod fetch;
pub mod gather;
pub mod instance_id;
pub mod iso9660;
pub mod merge;
pub mod mount;
pub mod node;
pub mod placeholders;
pub mod redact;

pub use cmdline::CmdlineOrders;
pub use configdrive::ConfigDrive;
pub use fetch::display_url;
pub use gather::{gather, EmbeddedSource, GatherOptions};
pub use merge::{merge, redacted_summary};
pub use node::NodeDoc;
// The pull owns these types so that it stands alone; orders use the same ones.
pub use crate::oci::{secret, RegistryMirror, Secret};

use serde::Serialize;
use std::path::PathBuf;

/// The image used when no source names one (the seed's default).
pub const DEFAULT_IMAGE: &str = "ubuntu:24.04";

/// Where a value came from; printed in the log and the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `instance_info.image_source` / `instance_info.root_device` of the node JSON.
    InstanceInfo,
    /// `meta_data` of the configdrive (Metal3 annotations arrive here).
    MetaData,
    /// `ocimetal.*` on the kernel command line (or `--cmdline`).
    Cmdline,
    /// The machine itself (its SMBIOS system UUID).
    Machine,
    /// Nothing said it: the built-in default.
    Default,
}

/// A value together with the source that gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sourced<T> {
    /// The value itself.
    pub value: T,
    /// Which source gave it.
    pub source: Source,
    /// The exact key, e.g. `meta_data.oci_image`.
    pub key: String,
}

impl<T> Sourced<T> {
    /// Wraps `value` with its source and key.
    pub fn new(value: T, source: Source, key: impl Into<String>) -> Self {
        Self {
            value,
            source,
            key: key.into(),
        }
    }
}

/// Root-device hints as an order states them, before parsing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HintsInput {
    /// The seed's simplified form: `serial=A [B]` or `wwn=0x… [0x…]`.
    Simplified(String),
    /// Ironic's `root_device` dictionary, values possibly with operators (`s== A`, `>= 100`).
    Map(serde_json::Map<String, serde_json::Value>),
}

/// Which disks are wiped before partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WipeMode {
    /// Every eligible disk (default for RAID1: stale arrays must not come back).
    All,
    /// Only the target disk(s) (default for one disk).
    Target,
}

/// What to do once the install finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RebootAction {
    /// Reboot into the installed system (the default).
    Reboot,
    /// Power off, e.g. to swap media or ship the machine.
    Poweroff,
    /// Boot the installed kernel directly, skipping the firmware.
    Kexec,
    /// Stay in the ramdisk.
    None,
}

/// What a failed install does once it has reported the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Stay up in the ramdisk for inspection (the default).
    #[default]
    Stay,
    /// Power off.
    Poweroff,
    /// Reboot (into whatever the firmware boots next).
    Reboot,
}

/// Everything the operator ordered, merged and typed, with provenance.
///
/// `Debug` and `Serialize` never show secrets: user_data and the pull secret are [`Secret`]s,
/// secret-looking meta_data keys and proxy passwords are redacted.
#[derive(Clone, Serialize)]
pub struct Orders {
    /// Ironic node UUID, when a node document gave one.
    pub node_uuid: Option<String>,
    /// Image reference as ordered (no `oci://` prefix, not yet normalised).
    pub image: Sourced<String>,
    /// Root-device hints; `None` means "the only eligible disk".
    pub root_device_hints: Option<Sourced<HintsInput>>,
    /// Wipe mode; `None` means the default (`all` for RAID1, `target` for one disk).
    pub wipe_mode: Option<Sourced<WipeMode>>,
    /// Hostname for the installed system (see docs/orders.md for the order of keys).
    pub hostname: Option<Sourced<String>>,
    /// `meta_data.metal3-name`, used as md `--homehost` like the seed does.
    pub metal3_name: Option<String>,
    /// The configdrive's whole meta_data (written to the NoCloud seed); printed with
    /// secret-looking keys redacted.
    #[serde(serialize_with = "redact::serialize_redacted_map")]
    pub meta_data: serde_json::Map<String, serde_json::Value>,
    /// Cloud-init user_data; a secret.
    pub user_data: Option<Secret>,
    /// OpenStack network_data.json, when given.
    pub network_data: Option<serde_json::Value>,
    /// Registries that may be reached over plain HTTP (`host[:port]`).
    pub insecure_registries: Vec<String>,
    /// Registry mirrors, tried before the origin.
    pub registry_mirrors: Vec<RegistryMirror>,
    /// Ironic's `instance_info.image_pull_secret` (a docker config or `user:password`).
    pub image_pull_secret: Option<Secret>,
    /// A docker `config.json` with registry credentials (`ocimetal.auth_file=`).
    pub auth_file: Option<PathBuf>,
    /// An extra CA bundle for private registries (`ocimetal.ca_file=`).
    pub ca_file: Option<PathBuf>,
    /// HTTP proxy for apt in the target (`ocimetal.apt_proxy=`); printed without password.
    #[serde(serialize_with = "serialize_proxy")]
    pub apt_proxy: Option<String>,
    /// What to do after a successful install.
    pub reboot: Sourced<RebootAction>,
    /// What to do after a failed one (`ocimetal.on_failure`).
    pub on_failure: FailureAction,
    /// The webhook that hears the install's events; printed without credentials or query.
    #[serde(serialize_with = "serialize_sourced_url")]
    pub report_url: Option<Sourced<String>>,
    /// The webhook's `Authorization` header value.
    pub report_auth: Option<Secret>,
    /// Reinstall even when this deployment is already on disk.
    pub force: bool,
    /// Give the installed system an SSH server (`ocimetal.ssh_server`, default yes).
    pub ssh_server: bool,
    /// Authorized SSH keys for the default user (`ocimetal.ssh_key`), added to meta_data's.
    pub ssh_keys: Vec<String>,
    /// The installed system's serial console as ordered (`ocimetal.console`); `None` for the
    /// architecture's usual one.
    pub console: Option<String>,
    /// More arguments for the installed kernel (`ocimetal.karg`).
    pub kernel_args: Vec<String>,
    /// Verbose logs and a root console login in the ramdisk.
    pub debug: bool,
    /// Decide and print the plan, then stop without touching a disk (`ocimetal.dry_run`).
    pub dry_run: bool,
    /// Where the configdrive was read from (device, directory, image or node field).
    pub configdrive_origin: Option<String>,
    /// Which source gave the configdrive (`config-2 medium`, `ocimetal.configdrive_url`…; see
    /// [`gather::DriveSource`]); `None` when there is none, or when the caller merged a drive
    /// it read itself.
    pub configdrive_source: Option<String>,
    /// Which source gave the user_data: `configdrive`, or `ocimetal.user_data_url`.
    pub user_data_source: Option<String>,
    /// cloud-init's instance id and where it came from (see [`instance_id`]); `None` until
    /// gathering settles it.
    pub instance_id: Option<Sourced<String>>,
    /// Things the merge ignored or fell back from, for the log (free of secrets).
    pub warnings: Vec<String>,
}

/// Serialises a sourced URL without its password and query.
fn serialize_sourced_url<S: serde::Serializer>(
    url: &Option<Sourced<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&fetch::display_url(&url.value)),
        None => s.serialize_none(),
    }
}

/// Serialises an HTTP proxy URL without its password.
pub fn serialize_proxy<S: serde::Serializer>(
    proxy: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match proxy {
        Some(url) => s.serialize_some(&fetch::display_url(url)),
        None => s.serialize_none(),
    }
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders")
            .field("node_uuid", &self.node_uuid)
            .field("image", &self.image)
            .field("root_device_hints", &self.root_device_hints)
            .field("wipe_mode", &self.wipe_mode)
            .field("hostname", &self.hostname)
            .field("metal3_name", &self.metal3_name)
            .field("meta_data", &configdrive::RedactedMap(&self.meta_data))
            .field("user_data", &self.user_data)
            .field("network_data", &self.network_data)
            .field("insecure_registries", &self.insecure_registries)
            .field("registry_mirrors", &self.registry_mirrors)
            .field("image_pull_secret", &self.image_pull_secret)
            .field("auth_file", &self.auth_file)
            .field("ca_file", &self.ca_file)
            .field(
                "apt_proxy",
                &self.apt_proxy.as_deref().map(fetch::display_url),
            )
            .field("reboot", &self.reboot)
            .field("on_failure", &self.on_failure)
            .field(
                "report_url",
                &self
                    .report_url
                    .as_ref()
                    .map(|u| fetch::display_url(&u.value)),
            )
            .field("report_auth", &self.report_auth)
            .field("force", &self.force)
            .field("ssh_server", &self.ssh_server)
            .field("ssh_keys", &self.ssh_keys.len())
            .field("console", &self.console)
            .field("kernel_args", &self.kernel_args)
            .field("debug", &self.debug)
            .field("dry_run", &self.dry_run)
            .field("configdrive_origin", &self.configdrive_origin)
            .field("configdrive_source", &self.configdrive_source)
            .field("user_data_source", &self.user_data_source)
            .field("instance_id", &self.instance_id)
            .field("warnings", &self.warnings)
            .finish()
    }
}
