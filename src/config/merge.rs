//! Merging the sources into [`Orders`], by the priorities documented in docs/orders.md, and
//! the redacted one-look summary of the result.

use super::cmdline::{check_simplified_hints, parse_wipe_mode, CmdlineOrders};
use super::configdrive::ConfigDrive;
use super::node::{NodeConfigDrive, NodeDoc};
use super::{fetch, HintsInput, Orders, RebootAction, Source, Sourced, WipeMode, DEFAULT_IMAGE};
use crate::error::OrderError;
use crate::json_field::{describe, optional_string};
use serde_json::{Map, Value};

/// The scheme that marks an `image_source` as ours.
const OCI_SCHEME: &str = "oci://";

/// meta_data keys that may name the host, first non-empty wins.
pub const HOSTNAME_KEYS: &[&str] = &[
    "local-hostname",
    "local_hostname",
    "hostname",
    "metal3-name",
    "name",
];

/// Merges the sources into typed orders. Pure: no I/O, no logging (warnings are returned in
/// [`Orders::warnings`]).
///
/// `drive` is the configdrive that was read (from a medium or directory); without one, the
/// node's inline `instance_info.configdrive` is used.
pub fn merge(
    cmdline: &CmdlineOrders,
    node: Option<&NodeDoc>,
    drive: Option<&ConfigDrive>,
) -> Result<Orders, OrderError> {
    let drive = drive.or(match node.and_then(|n| n.configdrive.as_ref()) {
        Some(NodeConfigDrive::Inline(drive)) => Some(drive),
        _ => None,
    });
    let empty = Map::new();
    let meta = drive.map_or(&empty, |d| &d.meta_data);
    let mut warnings = Vec::new();

    let image = choose_image(cmdline, node, meta, &mut warnings)?;
    let root_device_hints = choose_hints(cmdline, node, meta, &mut warnings)?;
    let wipe_mode = choose_wipe_mode(cmdline, meta)?;
    let hostname = choose_hostname(meta)?;
    let metal3_name = meta_string(meta, "metal3-name")?;
    let report_url = choose_report_url(cmdline, node, meta)?;
    let reboot = match cmdline.reboot {
        Some(action) => Sourced::new(action, Source::Cmdline, "ocimetal.reboot"),
        None => Sourced::new(RebootAction::Reboot, Source::Default, "default"),
    };

    Ok(Orders {
        node_uuid: node.and_then(|n| n.uuid.clone()),
        image,
        root_device_hints,
        wipe_mode,
        hostname,
        metal3_name,
        meta_data: meta.clone(),
        user_data: drive.and_then(|d| d.user_data.clone()),
        network_data: drive.and_then(|d| d.network_data.clone()),
        insecure_registries: cmdline.insecure_registries.clone(),
        registry_mirrors: cmdline.registry_mirrors.clone(),
        image_pull_secret: node.and_then(|n| n.image_pull_secret.clone()),
        auth_file: cmdline.auth_file.clone(),
        ca_file: cmdline.ca_file.clone(),
        apt_proxy: cmdline.apt_proxy.clone(),
        reboot,
        on_failure: cmdline.on_failure.unwrap_or_default(),
        report_url,
        report_auth: cmdline.report_auth.clone(),
        force: cmdline.force || meta_flag(meta, "ocimetal_force")?.unwrap_or(false),
        ssh_server: cmdline.ssh_server.unwrap_or(true),
        ssh_keys: cmdline.ssh_keys.clone(),
        console: cmdline.console.clone(),
        kernel_args: cmdline.kernel_args.clone(),
        debug: cmdline.debug,
        dry_run: cmdline.dry_run,
        configdrive_origin: drive.map(|d| d.origin.clone()),
        configdrive_source: None,
        user_data_source: drive
            .and_then(|d| d.user_data.as_ref())
            .map(|_| "configdrive".to_string()),
        instance_id: None,
        warnings,
    })
}

/// `instance_info.image_source` (`oci://` only) → `ocimetal.image` → `meta_data.oci_image` →
/// the default.
fn choose_image(
    cmdline: &CmdlineOrders,
    node: Option<&NodeDoc>,
    meta: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Sourced<String>, OrderError> {
    if let Some(source) = node.and_then(|n| n.image_source.as_deref()) {
        match source.strip_prefix(OCI_SCHEME) {
            Some(image) if !image.trim().is_empty() => {
                return Ok(Sourced::new(
                    image.trim().to_string(),
                    Source::InstanceInfo,
                    "instance_info.image_source",
                ));
            }
            Some(_) => warnings.push(
                "instance_info.image_source is an empty oci:// reference; falling back".into(),
            ),
            // Image URLs may be signed: never log their query.
            None => warnings.push(format!(
                "instance_info.image_source \"{}\" is not an oci:// reference; ignored",
                fetch::display_url(source)
            )),
        }
    }
    if let Some(image) = cmdline.image.as_deref().map(strip_oci) {
        if !image.is_empty() {
            return Ok(Sourced::new(
                image.to_string(),
                Source::Cmdline,
                "ocimetal.image",
            ));
        }
    }
    if let Some(image) = meta_string(meta, "oci_image")? {
        let image = strip_oci(&image);
        if !image.is_empty() {
            return Ok(Sourced::new(
                image.to_string(),
                Source::MetaData,
                "meta_data.oci_image",
            ));
        }
    }
    warnings.push(format!(
        "no image ordered (instance_info.image_source, ocimetal.image, meta_data.oci_image): \
         installing the default {DEFAULT_IMAGE}"
    ));
    Ok(Sourced::new(
        DEFAULT_IMAGE.to_string(),
        Source::Default,
        "default",
    ))
}

/// `instance_info.ocimetal_report_url` → `ocimetal.report_url` →
/// `meta_data.ocimetal_report_url`, the same order as the image.
fn choose_report_url(
    cmdline: &CmdlineOrders,
    node: Option<&NodeDoc>,
    meta: &Map<String, Value>,
) -> Result<Option<Sourced<String>>, OrderError> {
    if let Some(url) = node.and_then(|n| n.report_url.clone()) {
        let key = "instance_info.ocimetal_report_url";
        return Ok(Some(Sourced::new(url, Source::InstanceInfo, key)));
    }
    if let Some(url) = cmdline.report_url.clone() {
        return Ok(Some(Sourced::new(
            url,
            Source::Cmdline,
            "ocimetal.report_url",
        )));
    }
    const KEY: &str = "meta_data.ocimetal_report_url";
    match meta_string(meta, "ocimetal_report_url")? {
        Some(url) => {
            let url = super::cmdline::check_http_url(KEY, &url)?;
            Ok(Some(Sourced::new(url, Source::MetaData, KEY)))
        }
        None => Ok(None),
    }
}

/// Accepts an image written with the `oci://` scheme where a bare reference is expected.
fn strip_oci(image: &str) -> &str {
    image.strip_prefix(OCI_SCHEME).unwrap_or(image).trim()
}

/// `meta_data.root_device_hints` (simplified string) → `ocimetal.root_device_hints` →
/// `instance_info.root_device`.
fn choose_hints(
    cmdline: &CmdlineOrders,
    node: Option<&NodeDoc>,
    meta: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<Sourced<HintsInput>>, OrderError> {
    const FIELD: &str = "meta_data.root_device_hints";
    match meta.get("root_device_hints") {
        None | Some(Value::Null) => {}
        Some(Value::String(hints)) if hints.trim().is_empty() => {
            warnings.push(format!("{FIELD} is empty; ignored"));
        }
        Some(Value::String(hints)) => {
            let hints = hints.trim();
            check_simplified_hints(FIELD, hints)?;
            return Ok(Some(Sourced::new(
                HintsInput::Simplified(hints.to_string()),
                Source::MetaData,
                FIELD,
            )));
        }
        Some(other) => {
            return Err(OrderError::new(
                FIELD,
                format!(
                    "{} is not a string; use \"serial=A [B]\" or \"wwn=X [Y]\"",
                    describe(other)
                ),
            ))
        }
    }
    if let Some(hints) = &cmdline.root_device_hints {
        return Ok(Some(Sourced::new(
            hints.clone(),
            Source::Cmdline,
            "ocimetal.root_device_hints",
        )));
    }
    Ok(node.and_then(|n| n.root_device.as_ref()).map(|map| {
        Sourced::new(
            HintsInput::Map(map.clone()),
            Source::InstanceInfo,
            "instance_info.root_device",
        )
    }))
}

/// `meta_data.disk_wipe_mode` → `ocimetal.disk_wipe_mode` → none (the planner's default).
fn choose_wipe_mode(
    cmdline: &CmdlineOrders,
    meta: &Map<String, Value>,
) -> Result<Option<Sourced<WipeMode>>, OrderError> {
    const FIELD: &str = "meta_data.disk_wipe_mode";
    if let Some(mode) = meta_string(meta, "disk_wipe_mode")? {
        return Ok(Some(Sourced::new(
            parse_wipe_mode(FIELD, &mode)?,
            Source::MetaData,
            FIELD,
        )));
    }
    Ok(cmdline
        .disk_wipe_mode
        .map(|mode| Sourced::new(mode, Source::Cmdline, "ocimetal.disk_wipe_mode")))
}

fn choose_hostname(meta: &Map<String, Value>) -> Result<Option<Sourced<String>>, OrderError> {
    for key in HOSTNAME_KEYS {
        if let Some(name) = meta_string(meta, key)? {
            return Ok(Some(Sourced::new(
                name,
                Source::MetaData,
                format!("meta_data.{key}"),
            )));
        }
    }
    Ok(None)
}

/// A trimmed, non-empty string under `key`; absent, null and blank are `None`; any other
/// type is an error naming `meta_data.KEY`.
fn meta_string(meta: &Map<String, Value>, key: &str) -> Result<Option<String>, OrderError> {
    optional_string(meta.get(key), &format!("meta_data.{key}"))
}

/// A yes/no key of meta_data: a JSON boolean, or a string like the command line's flags.
fn meta_flag(meta: &Map<String, Value>, key: &str) -> Result<Option<bool>, OrderError> {
    match meta.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => crate::host::cmdline::flag_value(Some(s))
            .map(Some)
            .ok_or_else(|| {
                OrderError::new(
                    format!("meta_data.{key}"),
                    format!("{s:?} is not a yes/no value; use true or false"),
                )
            }),
        Some(other) => Err(OrderError::new(
            format!("meta_data.{key}"),
            format!("must be true or false, not {other}"),
        )),
    }
}

/// A few log lines with every merged value and its source, and no secret: user_data and the
/// pull secret appear only as their size, meta_data only as its key names.
pub fn redacted_summary(orders: &Orders) -> String {
    let sourced = |value: String, key: &str| format!("{value} ({key})");
    let hints = match &orders.root_device_hints {
        None => "none (the only eligible disk)".to_string(),
        Some(h) => {
            let text = match &h.value {
                HintsInput::Simplified(s) => s.clone(),
                HintsInput::Map(map) => Value::Object(map.clone()).to_string(),
            };
            sourced(text, &h.key)
        }
    };
    let wipe = match &orders.wipe_mode {
        None => "default (all for RAID1, target for one disk)".to_string(),
        Some(w) => sourced(wipe_name(w.value).to_string(), &w.key),
    };
    let hostname = orders
        .hostname
        .as_ref()
        .map_or("none".to_string(), |h| sourced(h.value.clone(), &h.key));
    let mut lines = vec![format!(
        "orders: image={}; root_device_hints={}; disk_wipe_mode={}; hostname={}; reboot={}; node={}; force={} debug={} dry_run={}",
        sourced(orders.image.value.clone(), &orders.image.key),
        hints,
        wipe,
        hostname,
        sourced(reboot_name(orders.reboot.value).to_string(), &orders.reboot.key),
        orders.node_uuid.as_deref().unwrap_or("none"),
        orders.force,
        orders.debug,
        orders.dry_run,
    )];
    let mirrors: Vec<String> = orders
        .registry_mirrors
        .iter()
        .map(|m| format!("{}={}", m.registry, fetch::display_url(&m.endpoint)))
        .collect();
    lines.push(format!(
        "orders: registries: insecure=[{}] mirrors=[{}] auth_file={} ca_file={} image_pull_secret={} apt_proxy={}; report_url={} report_auth={} on_failure={}",
        orders.insecure_registries.join(", "),
        mirrors.join(", "),
        display_path(orders.auth_file.as_deref()),
        display_path(orders.ca_file.as_deref()),
        secret_size(orders.image_pull_secret.as_ref()),
        orders
            .apt_proxy
            .as_deref()
            .map_or("none".to_string(), fetch::display_url),
        orders
            .report_url
            .as_ref()
            .map_or("none".to_string(), |u| sourced(fetch::display_url(&u.value), &u.key)),
        secret_size(orders.report_auth.as_ref()),
        format!("{:?}", orders.on_failure).to_lowercase(),
    ));
    let keys: Vec<&str> = orders.meta_data.keys().map(String::as_str).collect();
    let configdrive = configdrive_shown(
        orders.configdrive_origin.as_deref(),
        orders.configdrive_source.as_deref(),
    );
    let user_data = match (&orders.user_data, &orders.user_data_source) {
        (Some(secret), Some(source)) => format!("{} ({source})", secret_size(Some(secret))),
        (secret, _) => secret_size(secret.as_ref()),
    };
    lines.push(format!(
        "orders: configdrive={} meta_data keys=[{}] metal3-name={} user_data={} network_data={}",
        configdrive,
        keys.join(", "),
        orders.metal3_name.as_deref().unwrap_or("none"),
        user_data,
        if orders.network_data.is_some() {
            "present"
        } else {
            "none"
        },
    ));
    lines.join("\n")
}

/// Where the configdrive came from, in one phrase: `/dev/sr0 (config-2 medium)`, or the
/// origin alone when it already names its source (`ocimetal.configdrive_url http://…`);
/// `none` without one.
pub fn configdrive_shown(origin: Option<&str>, source: Option<&str>) -> String {
    match (origin, source) {
        (Some(origin), Some(source)) if !origin.starts_with(source) => {
            format!("{origin} ({source})")
        }
        (Some(origin), _) => origin.to_string(),
        (None, _) => "none".to_string(),
    }
}

fn secret_size(secret: Option<&super::Secret>) -> String {
    secret.map_or("none".to_string(), |s| {
        format!("<redacted, {} bytes>", s.len())
    })
}

fn display_path(path: Option<&std::path::Path>) -> String {
    path.map_or("none".to_string(), |p| p.display().to_string())
}

fn wipe_name(mode: WipeMode) -> &'static str {
    match mode {
        WipeMode::All => "all",
        WipeMode::Target => "target",
    }
}

fn reboot_name(action: RebootAction) -> &'static str {
    match action {
        RebootAction::Reboot => "reboot",
        RebootAction::Poweroff => "poweroff",
        RebootAction::Kexec => "kexec",
        RebootAction::None => "none",
    }
}

#[cfg(test)]
mod tests;
