//! The executor: walks the plan's steps in order, one small logged step at a time, undoing its
//! mounts and deactivating the storage stack whatever happens.

mod phases;
pub mod reentry;

use crate::cli::Decision;
use crate::config::RebootAction;
use crate::exec::{cmd, run, run_tolerant};
use crate::oci::PullOptions;
use crate::plan::{self, Plan};
use crate::storage::{mount::MountStack, partition, stack, sysfs, wipe};
use crate::systemd::notify_status;
use crate::target::record::{DeploymentRecord, RecordedDisk, RecordedImage};
use crate::target::{apt, bootloader, chroot::Chroot, efi, packages::OsRelease, write};
use anyhow::Context;
use phases::Phases;
use std::path::{Path, PathBuf};

/// Where the target's root filesystem is mounted during the install.
pub const TARGET_ROOT: &str = "/run/ocimetal/target";

/// Executes the plan, then performs the ordered power action. Errors leave the machine up.
pub fn execute(decision: &Decision) -> anyhow::Result<()> {
    let plan = &decision.plan;
    let orders = &decision.orders;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let mut phases = Phases::default();

    // Before anything needs the registry: an installed machine reboots into its system
    // even when the registry is out of reach.
    let orders_hash = reentry::orders_hash(orders);
    if !orders.force && already_deployed(plan, orders, &orders_hash) {
        notify_status("already deployed: booting the installed system", false);
        match efi::boot_next_to_ours(&plan.boot_entries) {
            Ok(Some(n)) => tracing::info!("BootNext set to Boot{n}"),
            Ok(None) => tracing::warn!("no boot entry of ours; relying on the firmware's order"),
            Err(err) => tracing::warn!("setting BootNext: {err:#}"),
        }
        return power_action(&runtime, orders.reboot.value, None);
    }

    let pull_options = pull_options(orders, &plan.platform)?;
    let resolved = phases.run("validate", || {
        refuse_busy_targets(plan)?;
        runtime.block_on(crate::oci::resolve(&plan.image, &pull_options))
    })?;
    tracing::info!("image {} is {}", plan.image, resolved.manifest_digest);

    let started = std::time::SystemTime::now();
    let mut storage = StorageGuard::new(plan);
    // Layers download while the disks are prepared; they are applied once the root
    // filesystem is mounted. An early return drops `target_ready`, which ends the pull.
    let (target_ready, target) = std::sync::mpsc::channel();
    let pull = runtime.spawn({
        let resolved = resolved.clone();
        let options = PullOptions {
            layer_buffer: prefetch_buffer(available_memory(), pull_options.parallel_downloads),
            ..pull_options.clone()
        };
        async move { crate::oci::pull_when_ready(&resolved, &options, target).await }
    });
    phases.run("wipe", || wipe::wipe_disks(&plan.wipe))?;
    phases.run("partition", || {
        for (layout, disk) in plan.layout.iter().zip(&plan.disk_details) {
            partition::write_gpt(layout, disk.logical_sectors.unwrap_or(512))?;
            for part in &layout.partitions {
                wipe::erase_signatures(&part.device)?;
            }
        }
        Ok(())
    })?;
    if let Some(array) = &plan.raid_array {
        phases.run("raid", || stack::create_raid(array))?;
    }
    phases.run("lvm", || stack::create_lvm(&plan.lvm))?;
    phases.run("mkfs", || stack::make_filesystems(&plan.filesystems))?;

    let root = PathBuf::from(TARGET_ROOT);
    let mut mounts = MountStack::new();
    phases.run("mount", || {
        mounts.mount_fs(&plan.lvm.lv_path, &root, "ext4", None)
    })?;
    // Layers go onto the bare root filesystem: the applier never crosses a mount point, so
    // the ESP is mounted only afterwards.
    let report = phases.run("pull", || {
        // A pull that already ended (it failed) no longer listens; its own error is the one
        // to report, so it is awaited either way.
        let _ = target_ready.send(root.clone());
        runtime.block_on(pull).context("the pull task failed")?
    })?;
    mount_esp(&mut mounts, plan, &root)?;
    tracing::info!(
        "pull: {} layers, {} MiB downloaded, {} entries, {} MiB written in {:.1} s \
         (downloads started with the disk preparation)",
        report.layers.len(),
        report.downloaded_bytes >> 20,
        report.layers.iter().map(|l| l.entries).sum::<u64>(),
        report.layers.iter().map(|l| l.bytes).sum::<u64>() >> 20,
        report.elapsed.as_secs_f64()
    );

    let chroot = Chroot::enter(&root)?;
    let os = read_os_release(&root)?;
    let os_id = os.id.clone();
    phases.run("packages", || {
        let wanted = crate::target::packages::packages_for(&os, plan.arch)?;
        let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
        let installed = apt::installed_packages(&status);
        let missing = apt::missing_packages(&wanted, &installed, apt::has_kernel(&root));
        let unwanted: Vec<String> = crate::target::packages::packages_to_purge(&os)
            .into_iter()
            .filter(|p| installed.contains(p))
            .collect();
        let (install, skipped) =
            apt::packages_to_install(&missing, plan.raid, apt::secure_boot_enabled());
        if !skipped.is_empty() {
            tracing::info!(
                "packages: the image boots as it is; not installing {} (no apt needed)",
                skipped.join(" ")
            );
        }
        apt::install(&chroot, &install, &unwanted, orders.apt_proxy.as_deref())
    })?;
    phases.run("files", || {
        let scan = match plan.raid {
            true => stack::mdadm_array_lines()?.join("\n"),
            false => String::new(),
        };
        let existing = |path: &str| std::fs::read_to_string(root.join(path)).ok();
        let files = write::target_files(plan, orders, &scan, &existing)?;
        write::write_all(&root, &files)
    })?;
    phases.run("initramfs", || {
        bootloader::build_initramfs(&chroot, plan.raid)
    })?;
    phases.run("bootloader", || {
        for (index, install) in plan.bootloader.iter().enumerate() {
            if index > 0 {
                let dir = root.join(install.efi_directory.trim_start_matches('/'));
                mounts.mount_fs(&install.esp, &dir, "vfat", None)?;
            }
            bootloader::grub_install(
                &chroot,
                &install.target,
                &install.efi_directory,
                &os_id,
                plan.arch.removable_efi_name(),
            )?;
        }
        bootloader::update_grub(&chroot)
    })?;
    // The firmware entry starts shim when the image has it (Secure Boot), GRUB otherwise.
    let esp = root.join("boot/efi");
    let shim = plan.arch.shim_loader_name();
    let loader = if bootloader::find_case_insensitive(&esp, &["EFI", &os_id, shim]).is_some() {
        shim
    } else {
        plan.arch.grub_loader_name()
    };
    let boot_entries: Vec<plan::BootEntry> = plan
        .boot_entries
        .iter()
        .map(|e| plan::BootEntry {
            loader: e.loader.replace(shim, loader),
            ..e.clone()
        })
        .collect();
    let kexec_loaded = match orders.reboot.value {
        RebootAction::Kexec => Some(load_kexec(&root)?),
        _ => None,
    };
    chroot.leave()?;
    phases.run("record", || {
        let record = DeploymentRecord::new(
            orders.node_uuid.clone(),
            orders_hash.clone(),
            RecordedImage {
                reference: plan.image.clone(),
                digest: resolved.manifest_digest.clone(),
                platform: plan.platform.clone(),
            },
            plan.disk_details.iter().map(RecordedDisk::from).collect(),
            started,
            std::time::SystemTime::now(),
        );
        write::write_all(&root, &[record.to_file()?])?;
        // Last of all, so a marker on the ESP always means a complete install.
        for install in &plan.bootloader {
            let dir = root.join(install.efi_directory.trim_start_matches('/'));
            reentry::write_marker(&dir, &record)?;
        }
        Ok(())
    })?;
    phases.run("finish", || {
        mounts.unmount_all()?;
        storage.deactivate();
        Ok(())
    })?;
    phases.run("efi-entries", || {
        match efi::ensure_entries(&boot_entries, &os_id) {
            Ok(numbers) => tracing::info!("efi: entries {}", numbers.join(", ")),
            // The removable fallback path is on every ESP: the disk still boots.
            Err(err) => {
                tracing::warn!("EFI entries not written ({err:#}); firmware will use \\EFI\\BOOT")
            }
        }
        Ok(())
    })?;
    tracing::info!(
        "installed {} ({}) on {}; {}",
        plan.image,
        resolved.manifest_digest,
        plan.disks.join(" + "),
        phases.summary()
    );
    notify_status("installed", true);
    power_action(&runtime, orders.reboot.value, kexec_loaded)
}

/// Whether the primary ESP's marker records this very deployment (same node UUID, or the
/// same orders when there is none).
fn already_deployed(plan: &Plan, orders: &crate::config::Orders, orders_hash: &str) -> bool {
    let primary_esp = &plan.layout[0].partitions[0].device;
    let Some(marker) = reentry::read_marker(primary_esp) else {
        return false;
    };
    if marker.is_same_deployment(orders.node_uuid.as_deref(), orders_hash) {
        tracing::info!(
            "this deployment ({} {}, finished {}) is already installed on {}: \
             booting it instead of reinstalling (ocimetal.force reinstalls)",
            marker.image.reference,
            marker.image.digest,
            marker.finished_at,
            plan.disks.join(", ")
        );
        return true;
    }
    tracing::info!(
        "the disks hold another deployment ({}, {}); reinstalling",
        marker.image.reference,
        marker.orders_hash
    );
    false
}

/// Compressed bytes each layer may download ahead of its application while the disks are
/// being prepared: a quarter of the available memory shared by the parallel downloads,
/// between the default and 256 MiB per layer.
fn prefetch_buffer(available: usize, parallel: usize) -> usize {
    (available / 4 / parallel.max(1)).clamp(crate::oci::DEFAULT_LAYER_BUFFER, 256 << 20)
}

/// Memory available now, from /proc/meminfo (0 when unreadable).
fn available_memory() -> usize {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text))
        .unwrap_or(0)
}

/// `MemAvailable` from /proc/meminfo, in bytes.
fn mem_available(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How the pull reaches the registry, from the orders.
fn pull_options(orders: &crate::config::Orders, platform: &str) -> anyhow::Result<PullOptions> {
    Ok(PullOptions {
        platform: platform.parse()?,
        insecure_registries: orders.insecure_registries.clone(),
        mirrors: orders.registry_mirrors.clone(),
        auth_file: orders.auth_file.clone(),
        pull_secret: orders.image_pull_secret.clone(),
        ca_file: orders.ca_file.clone(),
        ..PullOptions::default()
    })
}

fn read_os_release(root: &Path) -> anyhow::Result<OsRelease> {
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .map(|text| OsRelease::parse(&text))
        .context("the image has no /etc/os-release or /usr/lib/os-release")
}

/// Refuses targets that hold a mounted filesystem: that would be the running system or the
/// installer's own media, which the inventory normally keeps out.
fn refuse_busy_targets(plan: &Plan) -> anyhow::Result<()> {
    let sys = Path::new("/sys");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for disk in plan.wipe.iter().chain(&plan.disks) {
        let name = sysfs::kernel_name(disk);
        for dev in sysfs::partitions(sys, &name)
            .iter()
            .chain(std::iter::once(&name))
        {
            let Some(number) = sysfs::dev_number(sys, dev) else {
                continue;
            };
            if let Some(point) = sysfs::mountpoints_of(&mountinfo, &number).first() {
                anyhow::bail!(
                    "refusing to touch {disk}: /dev/{dev} is mounted on {point} (the running \
                     system or the installer's media); nothing was wiped"
                );
            }
        }
    }
    Ok(())
}

fn mount_esp(mounts: &mut MountStack, plan: &Plan, root: &Path) -> anyhow::Result<()> {
    let esp = &plan
        .filesystems
        .iter()
        .find(|f| f.mountpoint == plan::esp_mountpoint(0));
    if let Some(esp) = esp {
        mounts.mount_fs(
            &esp.device,
            &root.join("boot/efi"),
            "vfat",
            Some("umask=0077"),
        )?;
    }
    Ok(())
}

/// Loads the installed kernel for `kexec`, with the console settings of this boot.
fn load_kexec(root: &Path) -> anyhow::Result<String> {
    let version = bootloader::kernel_versions(root)
        .pop()
        .context("no kernel to kexec into")?;
    let kernel = root.join(format!("boot/vmlinuz-{version}"));
    let initrd = root.join(format!("boot/initrd.img-{version}"));
    let consoles: Vec<String> = std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .split_whitespace()
        .filter(|w| w.starts_with("console="))
        .map(str::to_string)
        .collect();
    let append = format!("root=LABEL={} ro {}", plan::ROOT_LABEL, consoles.join(" "));
    run(&mut cmd(
        "kexec",
        [
            "-l".to_string(),
            kernel.display().to_string(),
            format!("--initrd={}", initrd.display()),
            format!("--append={}", append.trim()),
        ],
    ))?;
    Ok(version)
}

fn power_action(
    runtime: &tokio::runtime::Runtime,
    action: RebootAction,
    kexec_version: Option<String>,
) -> anyhow::Result<()> {
    let unit = match action {
        RebootAction::None => {
            tracing::info!("done; ocimetal.reboot=none: leaving the machine as it is");
            return Ok(());
        }
        RebootAction::Reboot => "reboot.target",
        RebootAction::Poweroff => "poweroff.target",
        RebootAction::Kexec => "kexec.target",
    };
    runtime.block_on(async {
        if let Err(err) = crate::systemd::wait_for_logouts().await {
            tracing::warn!("cannot ask logind for sessions ({err:#}); not waiting");
        }
        if let Some(version) = &kexec_version {
            tracing::info!("kexec into {version}");
        }
        tracing::info!("{unit}");
        crate::systemd::start_power_unit(unit).await
    })
}

/// Deactivates LVM and md after the install, and on the way out of a failed one, so the disks
/// are quiescent for the reboot or for inspection. Declared before the mounts so that it is
/// dropped after them.
struct StorageGuard<'a> {
    plan: &'a Plan,
    done: bool,
}

impl<'a> StorageGuard<'a> {
    fn new(plan: &'a Plan) -> Self {
        Self { plan, done: false }
    }

    fn deactivate(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        run_tolerant(&mut cmd(
            "lvm",
            ["vgchange", "-an", self.plan.lvm.vg.as_str()],
        ));
        if let Some(array) = &self.plan.raid_array {
            run_tolerant(&mut cmd("mdadm", ["--stop", array.device.as_str()]));
        }
    }
}

impl Drop for StorageGuard<'_> {
    fn drop(&mut self) {
        self.deactivate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:        3000000 kB\nMemFree:  100 kB\nMemAvailable:    2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2048 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn the_prefetch_buffer_is_a_share_of_a_quarter_of_the_memory_within_bounds() {
        const MIB: usize = 1 << 20;
        assert_eq!(prefetch_buffer(1200 * MIB, 3), 100 * MIB);
        assert_eq!(
            prefetch_buffer(64 * MIB, 3),
            crate::oci::DEFAULT_LAYER_BUFFER
        );
        assert_eq!(prefetch_buffer(64 * 1024 * MIB, 3), 256 * MIB);
        assert_eq!(prefetch_buffer(0, 0), crate::oci::DEFAULT_LAYER_BUFFER);
    }
}
