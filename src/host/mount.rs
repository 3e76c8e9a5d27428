//! Mounts made by the installer, undone in reverse order — also on failure.

use super::Host;
use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// Mount points, newest last, and the one way to undo them.
#[derive(Debug, Default)]
struct Points(Vec<PathBuf>);

impl Points {
    /// Unmounts every point with `unmount`, newest first; reports the first failure after
    /// trying all.
    fn unmount_all(&mut self, unmount: impl Fn(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(point) = self.0.pop() {
            if let Err(err) = unmount(&point) {
                tracing::warn!("{err:#}");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A stack of mount points made through a [`Host`]; dropping it unmounts everything still
/// mounted, newest first.
pub struct MountStack<'h> {
    host: &'h dyn Host,
    points: Points,
}

impl<'h> MountStack<'h> {
    /// An empty stack.
    pub fn new(host: &'h dyn Host) -> Self {
        Self {
            host,
            points: Points::default(),
        }
    }

    /// Mounts a filesystem at `target` (see [`Host::mount`]).
    pub fn mount_fs(
        &mut self,
        source: &str,
        target: &Path,
        fstype: &str,
        options: Option<&str>,
    ) -> anyhow::Result<()> {
        self.host.mount(source, target, fstype, options)?;
        self.points.0.push(target.to_path_buf());
        Ok(())
    }

    /// Bind-mounts `source` at `target` (see [`Host::bind`]).
    pub fn bind(&mut self, source: &Path, target: &Path, recursive: bool) -> anyhow::Result<()> {
        self.host.bind(source, target, recursive)?;
        self.points.0.push(target.to_path_buf());
        Ok(())
    }

    /// Unmounts everything, newest first; reports the first failure after trying all.
    pub fn unmount_all(&mut self) -> anyhow::Result<()> {
        let host = self.host;
        self.points.unmount_all(|point| host.unmount(point))
    }
}

impl Drop for MountStack<'_> {
    fn drop(&mut self) {
        let _ = self.unmount_all();
    }
}

/// Mounts made on this machine directly, for readers that run before any [`Host`] exists
/// (the configuration drive); dropping it unmounts everything still mounted, newest first.
#[derive(Debug, Default)]
pub struct MountGuard {
    points: Points,
}

impl MountGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts `source` (`fstype`) at the existing directory `target` read-only, without
    /// set-uid, device nodes, execution or symlinks followed: for reading media we do not
    /// trust.
    pub fn mount_read_only(
        &mut self,
        source: &Path,
        target: &Path,
        fstype: &str,
    ) -> nix::Result<()> {
        // nix names no MS_NOSYMFOLLOW (Linux 5.10); libc does.
        let flags = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);
        mount(Some(source), target, Some(fstype), flags, None::<&str>)?;
        self.points.0.push(target.to_path_buf());
        Ok(())
    }

    /// Unmounts everything, newest first; reports the first failure after trying all.
    pub fn unmount_all(&mut self) -> anyhow::Result<()> {
        self.points.unmount_all(unmount_point)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = self.unmount_all();
    }
}

/// Mounts a filesystem (`fstype` like `ext4`, `vfat`, `proc`) at `target`, creating the
/// directory first.
pub fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    options: Option<&str>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("creating mount point {}", target.display()))?;
    mount(
        Some(source),
        target,
        Some(fstype),
        MsFlags::empty(),
        options,
    )
    .with_context(|| format!("mounting {source} ({fstype}) on {}", target.display()))
}

/// Bind-mounts `source` at `target`; `recursive` takes submounts along and makes them slaves
/// so our unmounts never propagate back to the host.
pub fn bind(source: &Path, target: &Path, recursive: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(target)
        .with_context(|| format!("creating mount point {}", target.display()))?;
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .with_context(|| format!("bind-mounting {} on {}", source.display(), target.display()))?;
    if recursive {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("making {} a slave mount", target.display()))?;
    }
    Ok(())
}

/// Unmounts recursively-bound trees too: a plain umount fails with EBUSY while submounts exist,
/// so fall back to a lazy detach, which removes the whole subtree.
pub fn unmount_point(point: &Path) -> anyhow::Result<()> {
    match umount2(point, MntFlags::empty()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => Ok(()), // not mounted any more
        Err(_) => umount2(point, MntFlags::MNT_DETACH)
            .with_context(|| format!("unmounting {}", point.display())),
    }
}
