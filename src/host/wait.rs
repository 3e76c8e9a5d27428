//! Waiting for device nodes by inotify event, with a timeout; never by sleeping.
//!
//! After partitioning, RAID or LVM creation the kernel announces new block devices and udev
//! then creates links and probes them. We watch the directories where the awaited entry will
//! appear (the nearest existing ancestor when its parent does not exist yet) and the udev
//! database, and re-check after arming the watches so that an entry created in between is
//! not missed.

use super::udev;
use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Waits until `path` exists (e.g. /dev/sda2, /dev/md0, /dev/disk/by-label/EFI) and, for a block
/// device, udev has finished processing it (its /run/udev/data/b<maj>:<min> entry exists), or the
/// timeout passes (error naming the path and the timeout).
///
/// When udevd is not running (no `/run/udev/control`) only the node is awaited: nothing would
/// ever write the database entry.
pub fn wait_for_device(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let udev_data = udev::running().then_some(Path::new(udev::DATA_DIR));
    wait_for_device_with(path, timeout, udev_data)
}

/// [`wait_for_device`] with the udev database at `udev_data` (`None`: do not wait for udev).
pub fn wait_for_device_with(
    path: &Path,
    timeout: Duration,
    udev_data: Option<&Path>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .context("creating an inotify instance")?;
    let mut watches = Watches::default();
    loop {
        let state = State::of(path, udev_data);
        watches.set(&inotify, state.dirs_to_watch(path, udev_data))?;
        // Re-check with the watches armed: whatever happens from here on wakes us up.
        let state = State::of(path, udev_data);
        if state == State::Ready {
            return Ok(());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!(
                "timed out after {timeout:?} waiting for {}: {}",
                path.display(),
                state.describe()
            );
        }
        wait_for_events(&inotify, remaining)?;
        watches.forget_removed(&inotify)?;
    }
}

/// Waits until `ready()` holds, re-checking whenever an entry of `dir` is created, moved in
/// or changed (e.g. the udev database while a late device is probed); `Ok(false)` when the
/// timeout passes first.
pub fn wait_until(
    dir: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .context("creating an inotify instance")?;
    let mut watches = Watches::default();
    loop {
        watches.set(&inotify, vec![dir.to_path_buf()])?;
        // Checked with the watch armed: whatever happens from here on wakes us up.
        if ready() {
            return Ok(true);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(false);
        }
        wait_for_events(&inotify, remaining)?;
        watches.forget_removed(&inotify)?;
    }
}

/// How far the awaited device has come.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// The path (or its link target) does not exist yet.
    Missing,
    /// A block device node exists but udev has not written this database entry yet.
    AwaitingUdev(PathBuf),
    Ready,
}

impl State {
    fn of(path: &Path, udev_data: Option<&Path>) -> Self {
        let Ok(metadata) = fs::metadata(path) else {
            return Self::Missing;
        };
        let Some(udev_data) = udev_data else {
            return Self::Ready;
        };
        if !metadata.file_type().is_block_device() {
            return Self::Ready;
        }
        let rdev = metadata.rdev();
        let entry = udev::entry_path(
            udev_data,
            &format!("{}:{}", libc::major(rdev), libc::minor(rdev)),
        );
        if entry.exists() {
            Self::Ready
        } else {
            Self::AwaitingUdev(entry)
        }
    }

    /// Directories whose changes can move us forward.
    fn dirs_to_watch(&self, path: &Path, udev_data: Option<&Path>) -> Vec<PathBuf> {
        match self {
            Self::Ready => Vec::new(),
            Self::Missing => {
                let mut dirs: Vec<PathBuf> = path
                    .parent()
                    .and_then(nearest_existing_dir)
                    .into_iter()
                    .collect();
                // A dangling link (by-label made before the node): watch where its target goes.
                if let Ok(target) = fs::read_link(path) {
                    let target = path.parent().unwrap_or(Path::new("/")).join(target);
                    dirs.extend(target.parent().and_then(nearest_existing_dir));
                }
                dirs
            }
            Self::AwaitingUdev(_) => udev_data
                .and_then(nearest_existing_dir)
                .into_iter()
                .collect(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::AwaitingUdev(entry) => format!(
                "it exists but udev has not finished processing it (no {})",
                entry.display()
            ),
            _ => "it does not exist".to_owned(),
        }
    }
}

/// `dir` if it is a directory, else its closest ancestor that is.
fn nearest_existing_dir(dir: &Path) -> Option<PathBuf> {
    // The parent of a bare relative name is "", meaning the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.ancestors()
        .find(|ancestor| ancestor.is_dir())
        .map(Path::to_path_buf)
}

/// The inotify watches currently armed, by directory.
#[derive(Default)]
struct Watches {
    armed: HashMap<PathBuf, WatchDescriptor>,
    removed: Vec<WatchDescriptor>,
}

impl Watches {
    const MASK: AddWatchFlags = AddWatchFlags::IN_CREATE
        .union(AddWatchFlags::IN_MOVED_TO)
        .union(AddWatchFlags::IN_ATTRIB)
        .union(AddWatchFlags::IN_DELETE_SELF)
        .union(AddWatchFlags::IN_MOVE_SELF)
        .union(AddWatchFlags::IN_ONLYDIR);

    /// Watches exactly `dirs`: drops the watches no longer needed, adds the missing ones.
    fn set(&mut self, inotify: &Inotify, dirs: Vec<PathBuf>) -> anyhow::Result<()> {
        let stale: Vec<PathBuf> = self
            .armed
            .keys()
            .filter(|dir| !dirs.contains(dir))
            .cloned()
            .collect();
        for dir in stale {
            if let Some(wd) = self.armed.remove(&dir) {
                // Fails with EINVAL when the kernel already dropped it (directory deleted).
                let _ = inotify.rm_watch(wd);
            }
        }
        for dir in dirs {
            if self.armed.contains_key(&dir) {
                continue;
            }
            match inotify.add_watch(&dir, Self::MASK) {
                Ok(wd) => {
                    self.armed.insert(dir, wd);
                }
                // Removed since we looked: the next round picks its parent.
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(err) => return Err(err).with_context(|| format!("watching {}", dir.display())),
            }
        }
        Ok(())
    }

    /// Reads all pending events and forgets watches the kernel removed (deleted or moved
    /// directories), so that a re-created directory gets watched again.
    fn forget_removed(&mut self, inotify: &Inotify) -> anyhow::Result<()> {
        loop {
            match inotify.read_events() {
                Ok(events) => self.removed.extend(
                    events
                        .into_iter()
                        .filter(|event| {
                            event.mask.intersects(
                                AddWatchFlags::IN_IGNORED
                                    | AddWatchFlags::IN_DELETE_SELF
                                    | AddWatchFlags::IN_MOVE_SELF,
                            )
                        })
                        .map(|event| event.wd),
                ),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(err) => return Err(err).context("reading inotify events"),
            }
        }
        let removed = std::mem::take(&mut self.removed);
        self.armed.retain(|_, wd| !removed.contains(wd));
        Ok(())
    }
}

/// Blocks until inotify has events or `remaining` passes.
fn wait_for_events(inotify: &Inotify, remaining: Duration) -> anyhow::Result<()> {
    // Round up so that we never spin on a zero-millisecond poll before the deadline.
    let millis = remaining.as_millis().saturating_add(1);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => Ok(()),
        Err(err) => Err(err).context("waiting for inotify events"),
    }
}

#[cfg(test)]
mod tests;
