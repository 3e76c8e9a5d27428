//! Running commands inside the installed system: proc, sys, dev, run and efivarfs bound in,
//! resolv.conf usable, everything undone on leave (also when dropped on an error path).

use crate::host::exec::{LineWatch, Output};
use crate::host::mount::MountStack;
use crate::host::Host;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The resolver configuration, in the target's `/etc`.
const RESOLV_CONF: &str = "resolv.conf";
/// Where the target's own resolv.conf waits while ours is in place, in the same directory.
const RESOLV_BACKUP: &str = "resolv.conf.ocimetal-orig";

/// An entered chroot; [`Chroot::leave`] (or drop) undoes every mount and file change.
pub struct Chroot<'h> {
    root: PathBuf,
    mounts: MountStack<'h>,
    host: &'h dyn Host,
    resolv_replaced: bool,
}

impl<'h> Chroot<'h> {
    /// Binds the API filesystems into `root` and makes name resolution work inside.
    pub fn enter(host: &'h dyn Host, root: &Path) -> anyhow::Result<Self> {
        let mut chroot = Chroot {
            root: root.to_path_buf(),
            mounts: MountStack::new(host),
            host,
            resolv_replaced: false,
        };
        chroot
            .mounts
            .mount_fs("proc", &root.join("proc"), "proc", None)?;
        // Recursive + slave: /sys brings efivarfs, /dev brings /dev/pts and /dev/shm.
        chroot
            .mounts
            .bind(Path::new("/sys"), &root.join("sys"), true)?;
        chroot
            .mounts
            .bind(Path::new("/dev"), &root.join("dev"), true)?;
        // Plain bind: the udev database and lvm/mdadm run state without the ramdisk's submounts.
        chroot
            .mounts
            .bind(Path::new("/run"), &root.join("run"), false)?;
        chroot.resolv_replaced = install_resolv_conf(host, root)?;
        Ok(chroot)
    }

    /// The target root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host the commands run on.
    pub fn host(&self) -> &'h dyn Host {
        self.host
    }

    /// Runs a command made by [`Chroot::command`], output captured.
    pub fn run(&self, cmd: &mut Command) -> anyhow::Result<Output> {
        self.host.run(cmd)
    }

    /// Runs a command made by [`Chroot::command`], output streamed.
    pub fn run_streamed(&self, cmd: &mut Command) -> anyhow::Result<()> {
        self.host.run_streamed(cmd)
    }

    /// Runs a command made by [`Chroot::command`], output streamed and watched.
    pub fn run_watched(&self, cmd: &mut Command, watch: LineWatch) -> anyhow::Result<()> {
        self.host.run_watched(cmd, watch)
    }

    /// A command that runs `program` inside the chroot with a clean, non-interactive
    /// environment (apt and debconf never prompt).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", "/root");
        let root = CString::new(self.root.as_os_str().as_bytes()).unwrap_or_default();
        // SAFETY: between fork and exec only async-signal-safe calls (chroot, chdir) run, on
        // memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::chroot(root.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Undoes everything `enter` did.
    pub fn leave(mut self) -> anyhow::Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> anyhow::Result<()> {
        if std::mem::take(&mut self.resolv_replaced) {
            restore_resolv_conf(self.host, &self.root)?;
        }
        self.mounts.unmount_all()
    }
}

impl Drop for Chroot<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.restore() {
            tracing::warn!("leaving the chroot: {err:#}");
        }
    }
}

/// Puts the ramdisk's resolver configuration in place of the target's (which is often a
/// symlink into a /run that is not populated here). Returns whether anything was replaced.
fn install_resolv_conf(host: &dyn Host, root: &Path) -> anyhow::Result<bool> {
    // Prefer the upstream servers over a local stub: the stub is not reachable inside.
    let source = ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok());
    let Some(contents) = source else {
        return Ok(false);
    };
    host.rename_file(root, Path::new("etc"), RESOLV_CONF, RESOLV_BACKUP)?;
    host.write_file(root, &Path::new("etc").join(RESOLV_CONF), &contents, 0o644)?;
    Ok(true)
}

fn restore_resolv_conf(host: &dyn Host, root: &Path) -> anyhow::Result<()> {
    host.remove_file(root, &Path::new("etc").join(RESOLV_CONF))?;
    host.rename_file(root, Path::new("etc"), RESOLV_BACKUP, RESOLV_CONF)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_symlink_is_set_aside_and_restored() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        let link = root.path().join("etc/resolv.conf");
        std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", &link).unwrap();
        let replaced = install_resolv_conf(&crate::host::System::default(), root.path()).unwrap();
        if !replaced {
            eprintln!("skipped: this machine has no resolv.conf to copy");
            return;
        }
        assert!(link.symlink_metadata().unwrap().file_type().is_file());
        restore_resolv_conf(&crate::host::System::default(), root.path()).unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            Path::new("../run/systemd/resolve/stub-resolv.conf")
        );
        assert!(!root.path().join("etc").join(RESOLV_BACKUP).exists());
    }

    #[test]
    fn commands_run_inside_the_root() {
        // A chroot needs no mounts to run a static check: use the host's own root as target.
        let host = crate::host::System::default();
        let chroot = Chroot {
            root: PathBuf::from("/"),
            mounts: MountStack::new(&host),
            host: &host,
            resolv_replaced: false,
        };
        let out = chroot
            .command("sh")
            .args(["-c", "echo $DEBIAN_FRONTEND"])
            .output();
        let out = out.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "noninteractive"
        );
    }
}
