//! Removing trees, and whiteouts: removing what lower layers left, never what the current
//! layer wrote.
//!
//! The image spec says whiteouts only hide lower-layer content, wherever the whiteout sits in
//! the archive. Members are applied as they stream past, so a whiteout that comes *after* a
//! member of its own layer must spare it. The layer records every name it creates, keyed by the
//! identity of the directory holding it (so symlinked parents such as merged `/usr` are seen
//! through); pruning removes everything else, keeping a lower-layer directory only while it
//! still holds something the layer wrote.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, futimens, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::fsops::{self, DirId};

/// Names created by the current layer, per directory.
#[derive(Debug, Default)]
pub(super) struct Created {
    names: HashMap<DirId, HashSet<Box<[u8]>>>,
}

impl Created {
    /// Records that the layer created (or updated) `name` in directory `dir`.
    pub(super) fn insert(&mut self, dir: DirId, name: &[u8]) {
        let names = self.names.entry(dir).or_default();
        if !names.contains(name) {
            names.insert(name.into());
        }
    }

    /// Whether the layer created `name` in `dir`.
    pub(super) fn contains(&self, dir: DirId, name: &[u8]) -> bool {
        self.names
            .get(&dir)
            .is_some_and(|names| names.contains(name))
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What a removal removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Removed {
    /// Filesystem objects unlinked (a directory counts with all its contents).
    pub(super) objects: u64,
    /// Whether a directory or a symlink went away, which can change how later paths resolve.
    pub(super) reshaped: bool,
}

/// Removes `name` from `dir` whatever it is (a directory with all its contents); nothing when
/// it does not exist. Never follows symlinks.
pub(super) fn remove_entry(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Removed> {
    prune_with(None, dir, None, name)
}

/// `.wh.NAME`: removes `name` in `dir` and everything under it, except what `created` lists
/// and the directories leading to it.
pub(super) fn prune(
    created: &Created,
    dir: BorrowedFd<'_>,
    dir_id: DirId,
    name: &[u8],
) -> nix::Result<Removed> {
    let created = Some(created).filter(|c| !c.is_empty());
    prune_with(created, dir, Some(dir_id), name)
}

/// `.wh..wh..opq`: removes the contents of directory `dir`, except what `created` lists and
/// the directories leading to it.
pub(super) fn prune_children(created: &Created, dir: BorrowedFd<'_>) -> nix::Result<Removed> {
    let created = Some(created).filter(|c| !c.is_empty());
    let frame = Frame::open(dir, b".", true, created.is_some())?;
    empty_tree(created, frame, None)
}

fn prune_with(
    created: Option<&Created>,
    dir: BorrowedFd<'_>,
    dir_id: Option<DirId>,
    name: &[u8],
) -> nix::Result<Removed> {
    let Some(st) = fsops::lstat_at(dir, name)? else {
        return Ok(Removed::default());
    };
    let kept = matches!((created, dir_id), (Some(c), Some(id)) if c.contains(id, name));
    match fsops::file_type(&st) {
        SFlag::S_IFDIR => {
            let frame = Frame::open(dir, name, kept, created.is_some())?;
            empty_tree(created, frame, Some(dir))
        }
        _ if kept => Ok(Removed::default()),
        kind => {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
            Ok(Removed {
                objects: 1,
                reshaped: kind == SFlag::S_IFLNK,
            })
        }
    }
}

/// A directory being emptied.
struct Frame {
    dir: Dir,
    /// Its identity and original times, when kept names have to be looked up in it.
    id: Option<DirId>,
    times: Option<(TimeSpec, TimeSpec)>,
    /// Something in it was removed.
    changed: bool,
    /// Its name in its parent.
    name: Vec<u8>,
    /// Created by the current layer: stays even if emptied.
    kept: bool,
    /// Something below it stays, so it must stay too.
    holds_kept: bool,
    /// Children still to visit, with whether each may be a directory.
    children: Vec<(Vec<u8>, bool)>,
}

impl Frame {
    fn open(parent: BorrowedFd<'_>, name: &[u8], kept: bool, need_id: bool) -> nix::Result<Self> {
        let fd = fsops::open_child_dir(parent, name, OFlag::O_RDONLY)?;
        let mut dir = Dir::from_fd(fd)?;
        let (id, times) = if need_id {
            let st = fstat(dir.as_fd())?;
            let times = (
                TimeSpec::new(st.st_atime, st.st_atime_nsec),
                TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
            );
            (Some(DirId::from_stat(&st)), Some(times))
        } else {
            (None, None)
        };
        // Listed up front: each directory is read exactly once, whatever is unlinked meanwhile.
        let mut children = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let child = entry.file_name().to_bytes();
            if child == b"." || child == b".." {
                continue;
            }
            // Without d_type, try it as a directory: `O_DIRECTORY | O_NOFOLLOW` decides.
            let maybe_dir = entry.file_type().is_none_or(|kind| kind == Type::Directory);
            children.push((child.to_vec(), maybe_dir));
        }
        Ok(Self {
            dir,
            id,
            times,
            changed: false,
            name: name.to_vec(),
            kept,
            holds_kept: false,
            children,
        })
    }
}

/// Empties the tree of `first` depth first, with an explicit stack (a hostile tree can be far
/// deeper than the thread stack allows), then removes `first` from `parent` unless it stays.
fn empty_tree(
    created: Option<&Created>,
    first: Frame,
    parent: Option<BorrowedFd<'_>>,
) -> nix::Result<Removed> {
    let mut removed = Removed::default();
    let mut stack = vec![first];
    while let Some(top) = stack.last_mut() {
        if let Some((child, maybe_dir)) = top.children.pop() {
            let kept = matches!((created, top.id), (Some(c), Some(id)) if c.contains(id, &child));
            if maybe_dir {
                match Frame::open(top.dir.as_fd(), &child, kept, created.is_some()) {
                    Ok(frame) => {
                        stack.push(frame);
                        continue;
                    }
                    // Not a directory after all (unknown d_type): handled below.
                    Err(Errno::ENOTDIR | Errno::ELOOP) => {}
                    Err(e) => return Err(e),
                }
            }
            if kept {
                top.holds_kept = true;
            } else {
                unlinkat(
                    top.dir.as_fd(),
                    child.as_slice(),
                    UnlinkatFlags::NoRemoveDir,
                )?;
                top.changed = true;
                removed.objects += 1;
                // A symlink may have gone; not worth a stat to find out.
                removed.reshaped = true;
            }
            continue;
        }
        let Some(done) = stack.pop() else { break };
        let stays = done.kept || done.holds_kept;
        if let (true, true, Some((atime, mtime))) = (stays, done.changed, done.times) {
            // Removing lower entries is not a change the image made to the directory.
            futimens(done.dir.as_fd(), &atime, &mtime)?;
        }
        match stack.last_mut() {
            Some(up) if stays => up.holds_kept = true,
            Some(up) => {
                unlinkat(
                    up.dir.as_fd(),
                    done.name.as_slice(),
                    UnlinkatFlags::RemoveDir,
                )?;
                up.changed = true;
                removed.objects += 1;
                removed.reshaped = true;
            }
            None if stays => {}
            None => {
                if let Some(parent) = parent {
                    unlinkat(parent, done.name.as_slice(), UnlinkatFlags::RemoveDir)?;
                    removed.objects += 1;
                    removed.reshaped = true;
                }
            }
        }
    }
    Ok(removed)
}
