//! Whiteouts: removing what lower layers left, never what the current layer wrote.
//!
//! The image spec says whiteouts only hide lower-layer content, wherever the whiteout sits in
//! the archive. Members are applied as they stream past, so a whiteout that comes *after* a
//! member of its own layer must spare it: the layer records every name it creates (keyed by
//! the identity of the directory holding it, so symlinked parents such as merged `/usr` are
//! seen through) and pruning walks down through those, removing everything else.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::bail;
use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::SFlag;

use super::fsops::{self, DirId, Removed};

/// Deepest nesting of this-layer directories a whiteout walks through; far beyond any real
/// image, and low enough that neither stack nor file descriptors run out.
const MAX_KEPT_DEPTH: usize = 256;

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

    fn has_any_in(&self, dir: DirId) -> bool {
        self.names.get(&dir).is_some_and(|names| !names.is_empty())
    }
}

/// Removes `name` in `dir` unless this layer created it; a kept directory loses the lower-layer
/// part of its contents.
pub(super) fn prune(
    created: &Created,
    dir: BorrowedFd<'_>,
    dir_id: DirId,
    name: &[u8],
) -> anyhow::Result<Removed> {
    prune_at_depth(created, dir, dir_id, name, 0)
}

fn prune_at_depth(
    created: &Created,
    dir: BorrowedFd<'_>,
    dir_id: DirId,
    name: &[u8],
    depth: usize,
) -> anyhow::Result<Removed> {
    if !created.contains(dir_id, name) {
        return Ok(fsops::remove_entry(dir, name)?);
    }
    let is_dir =
        fsops::lstat_at(dir, name)?.is_some_and(|st| fsops::file_type(&st) == SFlag::S_IFDIR);
    if !is_dir {
        return Ok(Removed::default());
    }
    let child = fsops::open_child_dir(dir, name, OFlag::O_PATH)?;
    prune_children(created, child.as_fd(), depth + 1)
}

/// Removes the lower-layer contents of directory `dir` (an opaque directory, or a kept one
/// under a whiteout), descending into the subdirectories this layer created.
pub(super) fn prune_children(
    created: &Created,
    dir: BorrowedFd<'_>,
    depth: usize,
) -> anyhow::Result<Removed> {
    if depth > MAX_KEPT_DEPTH {
        bail!("whiteout reaches more than {MAX_KEPT_DEPTH} nested directories of its own layer");
    }
    let dir_id = DirId::of(dir)?;
    let mut listing = Dir::from_fd(fsops::open_child_dir(dir, b".", OFlag::O_RDONLY)?)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let child = entry?.file_name().to_bytes().to_vec();
        if child != b"." && child != b".." {
            names.push(child);
        }
    }
    let keep_some = created.has_any_in(dir_id);
    let mut total = Removed::default();
    for name in names {
        let removed = if keep_some {
            prune_at_depth(created, listing.as_fd(), dir_id, &name, depth)?
        } else {
            fsops::remove_entry(listing.as_fd(), &name)?
        };
        total.objects += removed.objects;
        total.reshaped |= removed.reshaped;
    }
    Ok(total)
}
