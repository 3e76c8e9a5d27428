//! Reading every source of orders, from the live machine or from what the caller names.

use super::cmdline::{self, CmdlineOrders};
use super::configdrive::ConfigDrive;
use super::embedded::{self, Embedded};
use super::mount::{self, DeviceRoots};
use super::node::{self, NodeConfigDrive, NodeDoc};
use super::{fetch, instance_id, merge, placeholders, Orders};
use crate::error::OrderError;
use crate::host::cmdline::{self as host_cmdline, PROC_CMDLINE};
use anyhow::Context;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

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
    /// Reads nothing of this machine: no `config-2` medium, no boot medium, and the node or
    /// configdrive a command line names (`ocimetal.node=`, `ocimetal.configdrive=`, a
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

/// The node document a per-machine URL template gives this machine: each candidate in turn
/// (one per NIC for `{mac}`); `None` when every one is answered 404.
fn node_for_this_machine(
    template: &str,
    facts: &placeholders::MachineFacts,
) -> anyhow::Result<Option<NodeDoc>> {
    let candidates = placeholders::expand(template, facts, "ocimetal.node")?;
    for url in &candidates {
        match node::load(url, "ocimetal.node") {
            Ok(doc) => {
                tracing::info!("node document from {}", fetch::display_url(url));
                return Ok(Some(doc));
            }
            Err(err) if err.chain().any(|e| e.is::<fetch::NotFound>()) => {
                tracing::info!("no node document at {}", fetch::display_url(url));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

/// Reads every source (live machine where an option is None: /proc/cmdline, ocimetal.node=,
/// config-2 label) and merges them. Nothing is logged about the merge: the caller logs
/// [`Orders::warnings`](super::Orders::warnings).
///
/// Invalid orders (a named file that cannot be read included) are an [`OrderError`] inside
/// the `anyhow::Error`; documents that cannot be fetched are other errors with context.
pub fn gather(opts: &GatherOptions) -> anyhow::Result<Orders> {
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
    let node = match (&opts.node, &cmdline.node) {
        (Some(location), _) => Some(node::load(location, "--node")?),
        (None, Some(_)) if opts.offline => None,
        (None, Some(location))
            if placeholders::is_template(location) && fetch::is_url(location) =>
        {
            let facts = placeholders::MachineFacts::read(Path::new("/sys"), Path::new("/proc"));
            node_for_this_machine(location, &facts)?
        }
        (None, Some(location)) => Some(node::load(location, "ocimetal.node")?),
        (None, None) => embedded.as_mut().and_then(|e| e.node.take()),
    };
    let embedded_drive = embedded.and_then(|e| e.drive);
    let drive = read_drive(opts, &cmdline, node.as_ref(), embedded_drive)?;
    let says_what = cmdline.image.is_some()
        || cmdline.root_device_hints.is_some()
        // Offline, what the command line names is read by the machine itself.
        || (opts.offline && (cmdline.node.is_some() || cmdline.configdrive.is_some()));
    if node.is_none() && drive.is_none() && !says_what {
        return Err(crate::error::NoOrders.into());
    }
    // The caller logs `orders.warnings` once the orders are known to be usable: a refusal
    // must stay one line.
    let mut orders = merge(&cmdline, node.as_ref(), drive.as_ref())?;
    let smbios = match opts.offline {
        true => None,
        false => instance_id::read_smbios_uuid(),
    };
    instance_id::settle(&mut orders, smbios);
    Ok(orders)
}

/// The configdrive to use: the one named (option, then `ocimetal.configdrive=`), else the
/// node's own (`merge` reads an inline one; a URL is fetched here), else the live `config-2`
/// medium, else the one the installer medium carries, else none.
fn read_drive(
    opts: &GatherOptions,
    cmdline: &CmdlineOrders,
    node: Option<&NodeDoc>,
    embedded: Option<ConfigDrive>,
) -> anyhow::Result<Option<ConfigDrive>> {
    if let Some(path) = &opts.configdrive {
        return read_path(path, "--configdrive").map(Some);
    }
    if let Some(path) = &cmdline.configdrive {
        if opts.offline {
            return Ok(None);
        }
        return read_path(path, "ocimetal.configdrive").map(Some);
    }
    match node.and_then(|n| n.configdrive.as_ref()) {
        Some(NodeConfigDrive::Inline(_)) => return Ok(None),
        Some(NodeConfigDrive::Url(_)) if opts.offline => return Ok(None),
        Some(NodeConfigDrive::Url(url)) => return node::fetch_configdrive(url).map(Some),
        None => {}
    }
    let config2 = match opts.offline {
        true => None,
        false => mount::find_config2(&DeviceRoots::default()),
    };
    match (config2, embedded) {
        (Some(device), _) => {
            tracing::info!("reading the configdrive from {}", device.display());
            mount::read_device(&device).map(Some)
        }
        (None, Some(drive)) => {
            tracing::info!("using the configdrive carried by {}", drive.origin);
            Ok(Some(drive))
        }
        (None, None) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::configdrive::tests::{ironic_string, iso_from_tree, write_tree};
    use crate::config::fetch::tests::serve;
    use crate::config::{redacted_summary, Source};
    use serde_json::json;
    use std::fs;

    fn opts(cmdline: &str) -> GatherOptions {
        GatherOptions {
            cmdline: Some(cmdline.to_string()),
            ..GatherOptions::default()
        }
    }

    #[test]
    fn directory_given_as_option() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(
            dir.path(),
            &json!({"oci_image": "debian:13", "root_device_hints": "serial=S1", "local-hostname": "n1"}),
            Some(b"#cloud-config\n"),
            None,
        );
        let orders = gather(&GatherOptions {
            configdrive: Some(dir.path().to_path_buf()),
            ..opts("quiet")
        })
        .unwrap();
        assert_eq!(orders.image.value, "debian:13");
        assert_eq!(orders.image.source, Source::MetaData);
        assert_eq!(orders.hostname.unwrap().value, "n1");
        assert_eq!(
            orders.configdrive_origin.as_deref(),
            Some(dir.path().display().to_string().as_str())
        );
    }

    #[test]
    fn cmdline_names_configdrive_iso_and_node_file() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"disk_wipe_mode": "all"}), None, None);
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let iso_path = dir.path().join("cd.iso");
        fs::write(&iso_path, iso).unwrap();
        let node_path = dir.path().join("node.json");
        fs::write(
            &node_path,
            json!({"uuid": "n-9", "instance_info": {"image_source": "oci://r/x:1"}}).to_string(),
        )
        .unwrap();
        let orders = gather(&opts(&format!(
            "ocimetal.node={} ocimetal.configdrive={}",
            node_path.display(),
            iso_path.display()
        )))
        .unwrap();
        assert_eq!(orders.node_uuid.as_deref(), Some("n-9"));
        assert_eq!(orders.image.value, "r/x:1");
        assert_eq!(orders.wipe_mode.unwrap().key, "meta_data.disk_wipe_mode");
    }

    #[test]
    fn option_overrides_cmdline_configdrive_and_node() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("chosen");
        write_tree(&chosen, &json!({"hostname": "chosen"}), None, None);
        let node_path = dir.path().join("node.json");
        fs::write(&node_path, json!({"uuid": "from-option"}).to_string()).unwrap();
        let orders = gather(&GatherOptions {
            cmdline: Some("ocimetal.configdrive=/nonexistent ocimetal.node=/nonexistent".into()),
            node: Some(node_path.display().to_string()),
            configdrive: Some(chosen),
            ..GatherOptions::default()
        })
        .unwrap();
        assert_eq!(orders.hostname.unwrap().value, "chosen");
        assert_eq!(orders.node_uuid.as_deref(), Some("from-option"));
    }

    #[test]
    fn node_url_with_configdrive_url() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        write_tree(&tree, &json!({"metal3-name": "bmh-1"}), Some(b"ud"), None);
        let Some(iso) = iso_from_tree(&tree) else {
            return;
        };
        let base = serve(vec![("/cd", 200, ironic_string(&iso).into_bytes())]);
        let node = json!({"uuid": "u", "instance_info": {"configdrive": format!("{base}/cd")}});
        let base2 = serve(vec![("/node", 200, node.to_string().into_bytes())]);
        let orders = gather(&opts(&format!("ocimetal.node={base2}/node"))).unwrap();
        assert_eq!(orders.metal3_name.as_deref(), Some("bmh-1"));
        assert_eq!(orders.hostname.unwrap().key, "meta_data.metal3-name");
        assert_eq!(orders.user_data.unwrap().expose(), b"ud");
    }

    #[test]
    fn a_per_machine_node_url_is_tried_for_each_mac_and_404_everywhere_is_none() {
        let node = json!({"uuid": "n-mac2", "instance_info": {"image_source": "oci://lab/x:1"}});
        let base = serve(vec![
            ("/nodes/52-54-00-00-00-01.json", 404, b"no".to_vec()),
            (
                "/nodes/52-54-00-00-00-02.json",
                200,
                node.to_string().into_bytes(),
            ),
        ]);
        let facts = placeholders::MachineFacts {
            macs: vec!["52-54-00-00-00-01".into(), "52-54-00-00-00-02".into()],
            ..Default::default()
        };
        let found = node_for_this_machine(&format!("{base}/nodes/{{mac}}.json"), &facts)
            .unwrap()
            .expect("the second NIC's document");
        assert_eq!(found.uuid.as_deref(), Some("n-mac2"));
        let none = placeholders::MachineFacts {
            macs: vec!["52-54-00-00-00-01".into()],
            ..Default::default()
        };
        assert!(
            node_for_this_machine(&format!("{base}/nodes/{{mac}}.json"), &none)
                .unwrap()
                .is_none()
        );
        // Another failure is not "not this machine".
        let err = node_for_this_machine("http://127.0.0.1:9/{mac}", &facts).unwrap_err();
        assert!(!err.chain().any(|e| e.is::<fetch::NotFound>()), "{err:#}");
    }

    #[test]
    fn inline_node_configdrive_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let node_path = dir.path().join("node.json");
        let node =
            json!({"instance_info": {"configdrive": {"meta_data": {"oci_image": "alpine:3"}}}});
        fs::write(&node_path, node.to_string()).unwrap();
        let orders = gather(&GatherOptions {
            node: Some(node_path.display().to_string()),
            ..opts("")
        })
        .unwrap();
        assert_eq!(orders.image.value, "alpine:3");
        assert_eq!(
            orders.configdrive_origin.as_deref(),
            Some("instance_info.configdrive")
        );
    }

    #[test]
    fn bad_input_is_an_order_error() {
        let err = gather(&opts("ocimetal.bogus=1")).unwrap_err();
        assert_eq!(
            err.downcast_ref::<OrderError>().unwrap().field,
            "ocimetal.bogus"
        );
        let err = gather(&GatherOptions {
            configdrive: Some("/nonexistent/cd".into()),
            ..opts("")
        })
        .unwrap_err();
        let order = err.downcast_ref::<OrderError>().unwrap();
        assert_eq!(order.field, "--configdrive");
        assert!(order.problem.contains("/nonexistent/cd"));
        let dir = tempfile::tempdir().unwrap();
        let not_iso = dir.path().join("x.img");
        fs::write(&not_iso, vec![0u8; 40000]).unwrap();
        let err = gather(&opts(&format!(
            "ocimetal.configdrive={}",
            not_iso.display()
        )))
        .unwrap_err();
        assert!(err
            .downcast_ref::<OrderError>()
            .unwrap()
            .problem
            .contains("ISO 9660"));
    }

    #[test]
    fn summary_of_gathered_orders_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        write_tree(
            dir.path(),
            &json!({"admin_pass": "pw-in-meta"}),
            Some(b"user-data-secret"),
            None,
        );
        let orders = gather(&GatherOptions {
            configdrive: Some(dir.path().to_path_buf()),
            ..opts("ocimetal.apt_proxy=http://u:proxypw@proxy:3142")
        })
        .unwrap();
        let summary = redacted_summary(&orders);
        for secret in ["pw-in-meta", "user-data-secret", "proxypw"] {
            assert!(!summary.contains(secret), "{summary}");
        }
        assert!(
            summary.contains("admin_pass"),
            "key names are listed: {summary}"
        );
    }
}
