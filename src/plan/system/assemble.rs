//! Assembling every file the installed system gets: those the orders alone decide (at plan
//! time) and the edits of files the image brings (once the image is on disk).

use super::boot::{
    edit_grub_default, edit_initramfs_conf, edit_initramfs_modules, esp_sync_files,
    initramfs_resume_file, BootChoices, GrubSettings,
};
use super::cloud_init::{nocloud_seed, SeedInput};
use super::files::{
    apt_proxy_file, fstab_file, hostname_file, hosts_file, mdadm_conf_file, Hostname,
};
use super::TargetFile;
use crate::config::Orders;
use crate::error::OrderError;
use crate::plan::{FileEdit, ROOT_LABEL};

/// `/etc/default/grub`.
pub const GRUB_DEFAULT: &str = "etc/default/grub";
/// `/etc/initramfs-tools/modules`.
pub const INITRAMFS_MODULES: &str = "etc/initramfs-tools/modules";
/// `/etc/initramfs-tools/initramfs.conf`.
pub const INITRAMFS_CONF: &str = "etc/initramfs-tools/initramfs.conf";

/// The files the orders alone decide (NoCloud seed, hostname, hosts, fstab, the ESP sync hook,
/// the apt proxy, initramfs resume), and the seed's warnings for the log. Every order that
/// shapes a file is validated here.
pub fn order_files(
    orders: &Orders,
    raid: bool,
) -> Result<(Vec<TargetFile>, Vec<String>), OrderError> {
    let hostname = match &orders.hostname {
        Some(source) => Some(Hostname::parse(&source.value, &source.key)?),
        None => None,
    };
    let seed = nocloud_seed(&SeedInput {
        meta_data: &orders.meta_data,
        user_data: orders.user_data.as_ref(),
        network_data: orders.network_data.as_ref(),
        node_uuid: orders.node_uuid.as_deref(),
        hostname: hostname.as_ref(),
        ssh_keys: &orders.ssh_keys,
    })?;
    let mut files = seed.files;
    if let Some(hostname) = &hostname {
        files.push(hostname_file(hostname));
        files.push(hosts_file(hostname));
    }
    files.push(fstab_file(raid));
    if raid {
        files.extend(esp_sync_files());
    }
    if let Some(proxy) = &orders.apt_proxy {
        files.push(apt_proxy_file(proxy)?);
    }
    files.push(initramfs_resume_file());
    let warnings = seed
        .warnings
        .into_iter()
        .map(|w| format!("cloud-init seed: {w}"))
        .collect();
    Ok((files, warnings))
}

/// The path an edit writes.
pub fn edit_path(edit: &FileEdit) -> &'static str {
    match edit {
        FileEdit::GrubDefault => GRUB_DEFAULT,
        FileEdit::InitramfsModules => INITRAMFS_MODULES,
        FileEdit::InitramfsConf => INITRAMFS_CONF,
        FileEdit::MdadmConf => super::files::MDADM_CONF_PATH,
    }
}

/// One edit made concrete from what the target holds (`existing` reads a target-relative
/// path) and `mdadm --detail --scan` output; `None` when there is nothing to edit
/// (initramfs.conf only exists in images with initramfs-tools).
pub fn render_edit(
    edit: &FileEdit,
    existing: &dyn Fn(&str) -> Option<String>,
    mdadm_scan: &str,
    raid: bool,
    boot: &BootChoices,
) -> Option<TargetFile> {
    let path = edit_path(edit);
    match edit {
        FileEdit::InitramfsModules => Some(TargetFile::plain(
            path,
            edit_initramfs_modules(&existing(path).unwrap_or_default(), raid),
            0o644,
        )),
        FileEdit::InitramfsConf => {
            existing(path).map(|conf| TargetFile::plain(path, edit_initramfs_conf(&conf), 0o644))
        }
        FileEdit::GrubDefault => {
            let grub = GrubSettings {
                root_label: ROOT_LABEL.to_string(),
                serial: boot.serial.clone(),
                extra_args: boot.extra_args.clone(),
            };
            Some(TargetFile::plain(
                path,
                edit_grub_default(&existing(path).unwrap_or_default(), &grub),
                0o644,
            ))
        }
        FileEdit::MdadmConf => Some(mdadm_conf_file(mdadm_scan)),
    }
}
