//! The host room: everything that reads or changes the machine the installer runs on (kernel
//! command line, sysfs, the udev database, mounts, device waits, commands, systemd over D-Bus).
//! Every other module may use it; it uses nothing above it.
//!
//! The executor reaches the machine through [`Host`], so that a plan can be run against a
//! recording host in tests: every command, mount and write in order, nothing touched.

pub mod cmdline;
pub mod confined;
pub mod escape;
pub mod exec;
pub mod mount;
pub mod mountinfo;
pub mod report;
pub mod sysfs;
pub mod systemd;
pub mod transport;
pub mod udev;
pub mod wait;

use exec::Output;
use report::Event;
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
    /// [`Host::run_streamed`], with every output line also given to `watch` as it comes.
    fn run_watched(&self, cmd: &mut Command, watch: exec::LineWatch) -> anyhow::Result<()> {
        let _ = watch;
        self.run_streamed(cmd)
    }
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
    /// Writes the file `rel` of the target `root`, confined to it (see [`confined::write`]).
    fn write_file(&self, root: &Path, rel: &Path, contents: &[u8], mode: u32)
        -> anyhow::Result<()>;
    /// Removes the file `rel` of the target `root`; a missing one is fine.
    fn remove_file(&self, root: &Path, rel: &Path) -> anyhow::Result<()>;
    /// Renames the entry `from` to `to` in the directory `dir` of the target `root`; false
    /// when `from` does not exist (see [`confined::rename`]).
    fn rename_file(&self, root: &Path, dir: &Path, from: &str, to: &str) -> anyhow::Result<bool>;
    /// Flushes the whole filesystem that holds `path` to its disk (`syncfs`).
    fn sync_filesystem(&self, path: &Path) -> anyhow::Result<()>;
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
    /// Reports an event to the operator's webhook, if one was ordered; never waits.
    fn report(&self, event: &Event);
    /// Gives queued reports up to `timeout` to be delivered (before a reboot, or on failure).
    fn flush_reports(&self, timeout: Duration);
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
#[derive(Default)]
pub struct System {
    reporter: Option<report::Reporter>,
}

impl System {
    /// The machine, reporting events to `url` (with `authorization` as the header's value).
    pub fn reporting_to(url: &str, authorization: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            reporter: Some(report::Reporter::start(url, authorization)?),
        })
    }
}

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

    fn run_watched(&self, cmd: &mut Command, watch: exec::LineWatch) -> anyhow::Result<()> {
        exec::run_watched(cmd, Some(watch))
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

    fn write_file(
        &self,
        root: &Path,
        rel: &Path,
        contents: &[u8],
        mode: u32,
    ) -> anyhow::Result<()> {
        confined::write(root, rel, contents, mode)
    }

    fn remove_file(&self, root: &Path, rel: &Path) -> anyhow::Result<()> {
        confined::remove(root, rel)
    }

    fn rename_file(&self, root: &Path, dir: &Path, from: &str, to: &str) -> anyhow::Result<bool> {
        confined::rename(root, dir, from, to)
    }

    fn sync_filesystem(&self, path: &Path) -> anyhow::Result<()> {
        use anyhow::Context;
        let dir =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        nix::unistd::syncfs(&dir).with_context(|| format!("flushing {} to disk", path.display()))
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

    fn report(&self, event: &Event) {
        if let Some(reporter) = &self.reporter {
            reporter.send(event);
        }
    }

    fn flush_reports(&self, timeout: Duration) {
        if let Some(reporter) = &self.reporter {
            reporter.flush(timeout);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_is_flushed_by_any_path_on_it() {
        let dir = tempfile::tempdir().unwrap();
        System::default().sync_filesystem(dir.path()).unwrap();
        let err = System::default()
            .sync_filesystem(&dir.path().join("missing"))
            .unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
    }
}
