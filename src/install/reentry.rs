//! The re-entry guard: deployment markers on the ESPs, so that a ramdisk booted again
//! (Ironic's ramdisk deploy may leave the CD or PXE as the boot device) boots the installed
//! disk instead of installing it again, and never wipes a deployed node because its orders
//! drifted. The decision is [`crate::plan::reentry::judge`]'s; this module reads the markers
//! and makes the firmware boot the installed system.

use super::efi;
use crate::host::exec::cmd;
use crate::host::Host;
use crate::plan::reentry::{judge, Found, Identity, Verdict};
use crate::plan::system::record::DeploymentRecord;
use crate::plan::{BootEntry, Reentry, BOOT_ENTRY_PREFIX};
use std::path::Path;

/// Path of the marker on the ESP: the same record as `/etc/ocimetal/deployment.json`, kept
/// where the ramdisk can read it without assembling md or activating LVM.
pub const MARKER_PATH: &str = "ocimetal/deployment.json";

/// A marker is a few hundred bytes; anything larger is not ours.
const MARKER_MAX_BYTES: u64 = 64 * 1024;

/// The re-entry step: `Ok(true)` when the disks hold this deployment and the firmware will
/// boot it next (the install is skipped); `Ok(false)` to install; an error when this node's
/// disks hold a deployment of other orders, or when the installed system cannot be made the
/// next boot (rather than rebooting into the ramdisk again, in a loop).
pub fn run(host: &dyn Host, step: &Reentry) -> anyhow::Result<bool> {
    let found: Vec<Found> = step
        .esps()
        .into_iter()
        .filter_map(|(disk, esp)| read_esp(host, disk, esp, &step.loaders))
        .collect();
    let today = Identity {
        node_uuid: step.node_uuid.as_deref(),
        orders_hash: &step.orders_hash,
        image: &step.image,
    };
    match judge(&found, &today) {
        Verdict::Install(why) => {
            tracing::info!("reentry: {why}; installing");
            Ok(false)
        }
        Verdict::Refuse(why) => anyhow::bail!("{why}"),
        Verdict::Boot(found) => {
            let record = &found.record;
            tracing::info!(
                "this deployment ({} {}, finished {}) is already installed on {}: booting it \
                 instead of reinstalling (ocimetal.force reinstalls)",
                record.image.reference,
                record.image.digest,
                record.finished_at,
                found.esp
            );
            host.notify("already deployed: booting the installed system", false);
            boot_next(host, &found)?;
            Ok(true)
        }
    }
}

/// Points BootNext at our entry for `found`'s ESP, making the entry again when it is gone
/// (NVRAM reset, board replaced): the next boot is the installed system, not this ramdisk.
fn boot_next(host: &dyn Host, found: &Found) -> anyhow::Result<()> {
    let label = format!("{BOOT_ENTRY_PREFIX} {}", fat_label(host, &found.esp));
    if let Some(number) = efi::boot_next_to(host, &label)? {
        tracing::info!("BootNext set to Boot{number} {label:?}");
        return Ok(());
    }
    let loader = found.loader.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "{} holds this deployment's marker but no boot loader, and no boot entry of ours \
             exists; not rebooting into the installer again (ocimetal.force reinstalls)",
            found.esp
        )
    })?;
    let disk = found.disk.clone();
    tracing::info!("reentry: no boot entry {label:?}; making it again for {disk} {loader}");
    efi::ensure_entries(
        host,
        &[BootEntry {
            label,
            disk,
            partition: 1,
            loader,
            without_shim: None,
        }],
    )?;
    Ok(())
}

/// The FAT label of an ESP of ours (`EFI`, `EFI2`); `EFI` when it cannot be read.
fn fat_label(host: &dyn Host, esp: &str) -> String {
    host.run(&mut cmd("blkid", ["-s", "LABEL", "-o", "value", esp]))
        .ok()
        .map(|out| out.stdout.trim().to_string())
        .filter(|label| !label.is_empty())
        .unwrap_or_else(|| crate::plan::ESP_LABEL.to_string())
}

/// Reads the marker and looks for a boot loader on an ESP, mounting it read-only in a private
/// directory; `None` when the device is missing or has no FAT filesystem or no marker.
fn read_esp(host: &dyn Host, disk: String, esp: String, loaders: &[String]) -> Option<Found> {
    let (text, loader) = efi::with_esp(host, &esp, |root| {
        (read_marker(root), find_loader(root, loaders))
    })?;
    let record = DeploymentRecord::parse(&text?).ok()?;
    Some(Found {
        disk,
        esp,
        record,
        loader,
    })
}

/// The marker's bytes on the ESP mounted at `esp_root`, within [`MARKER_MAX_BYTES`].
fn read_marker(esp_root: &Path) -> Option<Vec<u8>> {
    crate::bounded::read_beneath(esp_root, Path::new(MARKER_PATH), MARKER_MAX_BYTES)
        .ok()
        .flatten()
}

/// The first of `loaders` found in a vendor directory `EFI/<name>/` (not the removable-media
/// `EFI/BOOT`), as an EFI path.
fn find_loader(esp_root: &Path, loaders: &[String]) -> Option<String> {
    let mut vendors: Vec<String> = std::fs::read_dir(esp_root.join("EFI"))
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.eq_ignore_ascii_case("BOOT"))
        .collect();
    vendors.sort();
    loaders.iter().find_map(|loader| {
        vendors
            .iter()
            .find(|vendor| esp_root.join("EFI").join(vendor).join(loader).is_file())
            .map(|vendor| format!("\\EFI\\{vendor}\\{loader}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_is_found_in_a_vendor_directory_shim_first() {
        let esp = tempfile::tempdir().unwrap();
        let names = ["shimx64.efi".to_string(), "grubx64.efi".to_string()];
        assert_eq!(find_loader(esp.path(), &names), None);
        std::fs::create_dir_all(esp.path().join("EFI/BOOT")).unwrap();
        std::fs::write(esp.path().join("EFI/BOOT/shimx64.efi"), b"x").unwrap();
        assert_eq!(
            find_loader(esp.path(), &names),
            None,
            "not the fallback path"
        );
        std::fs::create_dir_all(esp.path().join("EFI/debian")).unwrap();
        std::fs::write(esp.path().join("EFI/debian/grubx64.efi"), b"x").unwrap();
        assert_eq!(
            find_loader(esp.path(), &names).as_deref(),
            Some("\\EFI\\debian\\grubx64.efi")
        );
        std::fs::write(esp.path().join("EFI/debian/shimx64.efi"), b"x").unwrap();
        assert_eq!(
            find_loader(esp.path(), &names).as_deref(),
            Some("\\EFI\\debian\\shimx64.efi")
        );
    }

    #[test]
    fn an_oversized_marker_is_not_read() {
        let esp = tempfile::tempdir().unwrap();
        let path = esp.path().join(MARKER_PATH);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, vec![b' '; MARKER_MAX_BYTES as usize + 1]).unwrap();
        assert_eq!(read_marker(esp.path()), None);
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_marker(esp.path()).as_deref(), Some(&b"{}"[..]));
    }
}
