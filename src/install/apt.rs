//! Installing packages in the target with apt, only what the image lacks, with services and
//! initramfs generation held back until every file is in place.

use super::apt_progress::AptProgress;
use super::chroot::Chroot;
use crate::host::exec::LineWatch;
use crate::host::systemd::notify_status;
use crate::plan::system::dpkg::config_only_packages;
use crate::plan::system::files::{apt_proxy_file, policy_rc_d_file};
use crate::plan::Packages;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Diverted so each kernel/package trigger does not rebuild the initramfs (minutes under
/// emulation); the installer runs it once at the end.
const UPDATE_INITRAMFS: &str = "/usr/sbin/update-initramfs";
const UPDATE_INITRAMFS_DIVERTED: &str = "/usr/sbin/update-initramfs.ocimetal";
/// dpkg configuration that skips fsync while the installer runs apt in the target.
const DPKG_UNSAFE_IO: &str = "etc/dpkg/dpkg.cfg.d/ocimetal-unsafe-io";
/// apt's proxy while the installer runs apt (with its password: readable by root only).
const INSTALL_PROXY: &str = "etc/apt/apt.conf.d/00ocimetal-install-proxy";

/// True when the target already has a kernel image with its modules.
pub fn has_kernel(root: &Path) -> bool {
    super::bootloader::kernel_versions(root)
        .into_iter()
        .any(|version| {
            ["usr/lib/modules", "lib/modules"]
                .iter()
                .any(|dir| root.join(dir).join(&version).is_dir())
        })
}

/// The packages step, as refined from the image: apt only when there is something to do.
pub fn run(chroot: &Chroot, step: &Packages) -> anyhow::Result<()> {
    let Packages::Decided {
        install: wanted,
        purge,
        skipped,
        apt_proxy,
    } = step
    else {
        anyhow::bail!("the packages step was not refined from the image");
    };
    if !skipped.is_empty() {
        tracing::info!(
            "packages: the image boots as it is; not installing {} (no apt needed)",
            skipped.join(" ")
        );
    }
    install(chroot, wanted, purge, apt_proxy.as_deref())
}

/// Installs `missing` (and removes `unwanted` when installed), with service starts blocked
/// and initramfs generation deferred. Does nothing at all — no apt, no network — when
/// nothing is missing or unwanted.
pub fn install(
    chroot: &Chroot,
    missing: &[String],
    unwanted: &[String],
    apt_proxy: Option<&str>,
) -> anyhow::Result<()> {
    if missing.is_empty() && unwanted.is_empty() {
        tracing::info!("packages: the image has everything; apt not needed");
        return Ok(());
    }
    let root = chroot.root();
    let _guard = AptGuard::arm(chroot, apt_proxy)?;
    if !unwanted.is_empty() {
        tracing::info!("packages: purging {}", unwanted.join(" "));
        let mut purge = chroot.command("apt-get");
        purge.args(["purge", "-y"]).args(unwanted);
        chroot.run_streamed(&mut purge)?;
    }
    if !missing.is_empty() {
        tracing::info!("packages: installing {}", missing.join(" "));
        chroot.run_streamed(chroot.command("apt-get").args(["update", "-q"]))?;
        let mut install = chroot.command("apt-get");
        install
            .args([
                "install",
                "-y",
                "-q",
                "-o",
                "Dpkg::Options::=--force-confold",
            ])
            .args(missing);
        chroot
            .run_watched(&mut install, progress_watch())
            .context("installing packages in the target")?;
    }
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    let leftovers = config_only_packages(&status);
    if !leftovers.is_empty() {
        chroot.run_streamed(chroot.command("dpkg").arg("--purge").args(&leftovers))?;
    }
    chroot.run_streamed(
        chroot
            .command("apt-get")
            .args(["autoremove", "--purge", "-y", "-q"]),
    )?;
    chroot
        .host()
        .run_tolerant(chroot.command("apt-get").arg("clean"));
    Ok(())
}

/// Follows apt's output: the service status at every package, the journal every 10 s or 10 %.
fn progress_watch() -> LineWatch {
    let progress = std::sync::Mutex::new(AptProgress::default());
    std::sync::Arc::new(move |line: &str| {
        let Ok(mut progress) = progress.lock() else {
            return;
        };
        let Some(count) = progress.feed(line) else {
            return;
        };
        notify_status(&format!("step packages: {}", count.line()), true);
        if progress.due(count, std::time::Instant::now()) {
            tracing::info!(
                ocimetal_step = "packages",
                packages_done = count.done,
                packages_total = count.total,
                "{}",
                count.line()
            );
        }
    })
}

/// Puts policy-rc.d, the update-initramfs diversion, dpkg's unsafe-io setting and the apt
/// proxy in place; removes them again on drop.
struct AptGuard<'a, 'h> {
    chroot: &'a Chroot<'h>,
    /// Target-relative files of ours, removed on drop.
    placed: Vec<PathBuf>,
    diverted: bool,
}

impl<'a, 'h> AptGuard<'a, 'h> {
    fn arm(chroot: &'a Chroot<'h>, apt_proxy: Option<&str>) -> anyhow::Result<Self> {
        let mut guard = Self {
            chroot,
            placed: Vec::new(),
            diverted: false,
        };
        let policy = policy_rc_d_file();
        guard.place(&policy.path, policy.contents.bytes(), policy.mode)?;
        chroot.run(&mut divert_update_initramfs(chroot, "--add"))?;
        guard.diverted = true;
        guard.place(
            Path::new(UPDATE_INITRAMFS.trim_start_matches('/')),
            b"#!/bin/sh\n# ocimetal: deferred until the install's end\nexit 0\n",
            0o755,
        )?;
        // The target is unmounted (hence flushed) at the end and remade if the install fails,
        // so dpkg's fsync after every unpacked file buys nothing and costs minutes.
        guard.place(
            Path::new(DPKG_UNSAFE_IO),
            b"# ocimetal: removed again at the end of the install\nforce-unsafe-io\n",
            0o644,
        )?;
        if let Some(proxy) = apt_proxy {
            // The same normalised setting the installed system keeps: nothing in the order's
            // text can add apt options.
            let setting = apt_proxy_file(proxy)?;
            guard.place(Path::new(INSTALL_PROXY), setting.contents.bytes(), 0o600)?;
        }
        Ok(guard)
    }

    fn place(&mut self, rel: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        self.chroot
            .host()
            .write_file(self.chroot.root(), rel, contents, mode)?;
        self.placed.push(rel.to_path_buf());
        Ok(())
    }
}

impl Drop for AptGuard<'_, '_> {
    fn drop(&mut self) {
        let host = self.chroot.host();
        for rel in self.placed.drain(..).rev() {
            if let Err(err) = host.remove_file(self.chroot.root(), &rel) {
                tracing::warn!("{err:#}");
            }
        }
        if self.diverted {
            host.run_tolerant(&mut divert_update_initramfs(self.chroot, "--remove"));
        }
    }
}

/// `dpkg-divert` adding (`--add`) or removing (`--remove`) the diversion that parks the real
/// update-initramfs while apt runs.
fn divert_update_initramfs(chroot: &Chroot, action: &str) -> std::process::Command {
    let mut divert = chroot.command("dpkg-divert");
    divert.args([
        "--local",
        "--rename",
        "--divert",
        UPDATE_INITRAMFS_DIVERTED,
        action,
        UPDATE_INITRAMFS,
    ]);
    divert
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_needs_its_modules_to_count() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("boot")).unwrap();
        std::fs::write(root.path().join("boot/vmlinuz-6.12.1-amd64"), "k").unwrap();
        assert!(!has_kernel(root.path()));
        std::fs::create_dir_all(root.path().join("usr/lib/modules/6.12.1-amd64")).unwrap();
        assert!(has_kernel(root.path()));
    }
}
