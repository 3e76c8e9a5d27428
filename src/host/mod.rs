//! The host room: everything that reads or changes the machine the installer runs on (kernel
//! command line, sysfs, the udev database, mounts, device waits, commands, systemd over D-Bus).
//! Every other module may use it; it uses nothing above it.
//!
//! The executor reaches the machine through [`Host`], so that a plan can be run against a
//! recording host in tests: every command, mount and write in order, nothing touched.

pub mod cmdline;
pub mod escape;
pub mod exec;
pub mod mount;
pub mod mountinfo;
pub mod sysfs;
pub mod systemd;
pub mod transport;
pub mod udev;
pub mod wait;

use exec::Output;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What the installer does to the machine, one verb per kind of action.
pub trait Host {
    /// Runs a command to completion with its output captured; a non-zero exit is an error
    /// naming the command and the end of its output.
    fn run(&self, cmd: &mut Command) -> anyhow::Result<Output>;
    /// Runs a long, chatty command (apt, update-initramfs) with its output on our console.
    fn run_streamed(&self, cmd: &mut Command) -> anyhow::Result<()>;
    /// Mounts `source` (`fstype` like `ext4`, `vfat`, `proc`) at `target`, creating it.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        options: Option<&str>,
    ) -> anyhow::Result<()>;
    /// Bind-mounts `source` at `target`; `recursive` takes submounts along as slaves.
    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> anyhow::Result<()>;
    /// Unmounts one mount point (detaching it lazily when it is busy with submounts).
    fn unmount(&self, target: &Path) -> anyhow::Result<()>;
    /// Writes a file (parents created, a symlink at `path` replaced, `mode` set).
    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()>;
    /// Removes a file; a missing one is fine.
    fn remove_file(&self, path: &Path);
    /// Waits by event until a block device node exists and udev has processed it.
    fn wait_for_device(&self, path: &Path, timeout: Duration) -> anyhow::Result<()>;
    /// Where sysfs is mounted (read for holders, partitions and device numbers).
    fn sys(&self) -> PathBuf;
    /// `/proc/self/mountinfo`.
    fn mountinfo(&self) -> String;
    /// Whether the firmware booted with Secure Boot enforcing.
    fn secure_boot(&self) -> bool;
    /// The kernel command line this machine booted with.
    fn kernel_cmdline(&self) -> String;
    /// Reports progress to the service manager (`STATUS=`), if there is one.
    fn notify(&self, status: &str, ready: bool);
    /// Starts a power unit (`reboot.target`, `poweroff.target`, `kexec.target`) through
    /// systemd, once nobody is logged in.
    fn start_power_unit(&self, unit: &str) -> anyhow::Result<()>;
    /// Runs a command whose failure only matters to the log (best-effort clean-up).
    fn run_tolerant(&self, cmd: &mut Command) -> Option<Output> {
        match self.run(cmd) {
            Ok(out) => Some(out),
            Err(err) => {
                tracing::debug!("ignored: {err:#}");
                None
            }
        }
    }
}

/// The machine itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct System;

/// The `SecureBoot` EFI variable: four attribute bytes, then 1 for on.
const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

impl Host for System {
    fn run(&self, cmd: &mut Command) -> anyhow::Result<Output> {
        exec::run(cmd)
    }

    fn run_streamed(&self, cmd: &mut Command) -> anyhow::Result<()> {
        exec::run_streamed(cmd)
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        options: Option<&str>,
    ) -> anyhow::Result<()> {
        mount::mount_fs(source, target, fstype, options)
    }

    fn bind(&self, source: &Path, target: &Path, recursive: bool) -> anyhow::Result<()> {
        mount::bind(source, target, recursive)
    }

    fn unmount(&self, target: &Path) -> anyhow::Result<()> {
        mount::unmount_point(target)
    }

    fn write_file(&self, path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
        write_file(path, contents, mode)
    }

    fn remove_file(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    fn wait_for_device(&self, path: &Path, timeout: Duration) -> anyhow::Result<()> {
        wait::wait_for_device(path, timeout)
    }

    fn sys(&self) -> PathBuf {
        PathBuf::from("/sys")
    }

    fn mountinfo(&self) -> String {
        mountinfo::read()
    }

    fn secure_boot(&self) -> bool {
        std::fs::read(SECURE_BOOT_VAR).is_ok_and(|bytes| bytes.get(4) == Some(&1))
    }

    fn kernel_cmdline(&self) -> String {
        cmdline::read().unwrap_or_default()
    }

    fn notify(&self, status: &str, ready: bool) {
        systemd::notify_status(status, ready);
    }

    fn start_power_unit(&self, unit: &str) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            if let Err(err) = systemd::wait_for_logouts().await {
                tracing::warn!("cannot ask logind for sessions ({err:#}); not waiting");
            }
            tracing::info!("{unit}");
            systemd::start_power_unit(unit).await
        })
    }
}

/// Writes `contents` to `path` with `mode`, creating its directory; a symlink at `path` (an
/// image's) is replaced, never followed.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if path
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
    {
        std::fs::remove_file(path)?;
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}
