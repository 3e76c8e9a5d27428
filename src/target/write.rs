//! Assembling every file the installed system gets and writing them into the target root.

use super::boot::{
    edit_grub_default, edit_initramfs_conf, edit_initramfs_modules, esp_sync_files,
    initramfs_resume_file, GrubSettings, SerialConsole,
};
use super::cloud_init::{nocloud_seed, SeedInput};
use super::files::{
    apt_proxy_file, fstab_file, hostname_file, hosts_file, mdadm_conf_file, Hostname,
};
use super::TargetFile;
use crate::config::Orders;
use crate::plan::{Plan, ROOT_LABEL};
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const GRUB_DEFAULT: &str = "etc/default/grub";
const INITRAMFS_MODULES: &str = "etc/initramfs-tools/modules";
const INITRAMFS_CONF: &str = "etc/initramfs-tools/initramfs.conf";

/// Everything written into the target, given the files the image already has (`existing`
/// reads a target-relative path). `mdadm_scan` is `mdadm --detail --scan` output (RAID1 only).
pub fn target_files(
    plan: &Plan,
    orders: &Orders,
    mdadm_scan: &str,
    existing: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<TargetFile>> {
    let hostname = match (&plan.hostname, &orders.hostname) {
        (Some(name), Some(source)) => Some(Hostname::parse(name, &source.key)?),
        _ => None,
    };
    let seed = nocloud_seed(&SeedInput {
        meta_data: &orders.meta_data,
        user_data: orders.user_data.as_ref(),
        network_data: orders.network_data.as_ref(),
        node_uuid: orders.node_uuid.as_deref(),
        hostname: hostname.as_ref(),
    })?;
    let mut files = seed.files;
    if let Some(hostname) = &hostname {
        files.push(hostname_file(hostname));
        files.push(hosts_file(hostname));
    }
    files.push(fstab_file(plan.raid));
    if plan.raid {
        files.push(mdadm_conf_file(mdadm_scan));
        files.extend(esp_sync_files());
    }
    if let Some(proxy) = &orders.apt_proxy {
        files.push(apt_proxy_file(proxy)?);
    }
    files.push(initramfs_resume_file());
    files.push(TargetFile::plain(
        INITRAMFS_MODULES,
        edit_initramfs_modules(&existing(INITRAMFS_MODULES).unwrap_or_default(), plan.raid),
        0o644,
    ));
    if let Some(conf) = existing(INITRAMFS_CONF) {
        files.push(TargetFile::plain(
            INITRAMFS_CONF,
            edit_initramfs_conf(&conf),
            0o644,
        ));
    }
    let grub = GrubSettings {
        root_label: ROOT_LABEL.to_string(),
        serial: Some(SerialConsole::for_arch(plan.arch)),
    };
    files.push(TargetFile::plain(
        GRUB_DEFAULT,
        edit_grub_default(&existing(GRUB_DEFAULT).unwrap_or_default(), &grub),
        0o644,
    ));
    // After every check: a refusal (e.g. of the proxy) must stay one line.
    for warning in &seed.warnings {
        tracing::warn!("cloud-init seed: {warning}");
    }
    Ok(files)
}

/// Writes `files` under `root` (parents created, modes set). Paths are target-relative and
/// come from our own renderers, never from the image.
pub fn write_all(root: &Path, files: &[TargetFile]) -> anyhow::Result<()> {
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // A symlink in the image at this path must not redirect our write.
        if path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            std::fs::remove_file(&path)?;
        }
        std::fs::write(&path, file.contents.bytes())
            .with_context(|| format!("writing {}", file.path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
        tracing::info!("files: /{} ({:o})", file.path.display(), file.mode);
    }
    Ok(())
}
