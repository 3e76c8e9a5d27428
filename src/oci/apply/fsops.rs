//! Confined filesystem primitives.
//!
//! Multi-component paths are only ever resolved by `openat2(RESOLVE_IN_ROOT)` against the root
//! fd; everything else operates on a directory fd plus one final component (which the `*at`
//! calls never follow), so no string handling can take a write outside the root.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// How often a resolution is retried when the kernel reports a concurrent rename (`EAGAIN`).
const RESOLVE_RETRIES: usize = 32;

/// Identity of a directory (device, inode), stable while the directory exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct DirId {
    dev: u64,
    ino: u64,
}

impl DirId {
    /// Identity of the directory behind `fd`.
    pub(super) fn of(fd: BorrowedFd<'_>) -> nix::Result<Self> {
        Ok(Self::from_stat(&fstat(fd)?))
    }

    fn from_stat(st: &FileStat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// Converts one path component (or a symlink target) to a C string.
pub(super) fn cstr(bytes: &[u8]) -> nix::Result<CString> {
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

/// Opens `path` (relative, `/`-separated; empty means the root) as an `O_PATH` directory,
/// resolving every component inside `root` the way a container runtime does: symlinks are
/// followed but absolute targets and `..` are clamped to `root`, magic links are refused.
pub(super) fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempts = 0;
    loop {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) if attempts < RESOLVE_RETRIES => attempts += 1,
            other => return other,
        }
    }
}

/// Opens the directory `name` in `dir` without following a symlink there.
pub(super) fn open_child_dir(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `lstat` of one entry of `dir`; `None` when it does not exist.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// File type bits of a stat result.
pub(super) fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// What [`remove_entry`] removed.
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
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(Removed::default());
    };
    match file_type(&st) {
        SFlag::S_IFDIR => Ok(Removed {
            objects: remove_tree(dir, name)?,
            reshaped: true,
        }),
        kind => {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
            Ok(Removed {
                objects: 1,
                reshaped: kind == SFlag::S_IFLNK,
            })
        }
    }
}

/// A directory being emptied: its handle, its name in its parent, and what is left to visit.
struct Frame {
    dir: Dir,
    name: Vec<u8>,
    children: Vec<(Vec<u8>, bool)>,
}

impl Frame {
    fn open(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<Self> {
        let fd = open_child_dir(parent, name, OFlag::O_RDONLY)?;
        let mut dir = Dir::from_fd(fd)?;
        // Listed up front: unlinking while a readdir stream is open is allowed, but a stable
        // list keeps the walk simple and each directory is read exactly once.
        let mut children = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let child = entry.file_name().to_bytes();
            if child == b"." || child == b".." {
                continue;
            }
            // Without d_type, try it as a directory: `O_DIRECTORY | O_NOFOLLOW` decides.
            let is_dir = entry.file_type().is_none_or(|kind| kind == Type::Directory);
            children.push((child.to_vec(), is_dir));
        }
        Ok(Self {
            dir,
            name: name.to_vec(),
            children,
        })
    }
}

/// Deletes directory `name` in `parent` and everything below it, depth first, with an explicit
/// stack (a hostile tree can be far deeper than the thread stack allows). Returns the number of
/// objects removed.
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> nix::Result<u64> {
    let mut removed = 0;
    let mut stack = vec![Frame::open(parent, name)?];
    while let Some(top) = stack.last_mut() {
        match top.children.pop() {
            Some((child, maybe_dir)) => {
                if maybe_dir {
                    match Frame::open(top.dir.as_fd(), &child) {
                        Ok(frame) => {
                            stack.push(frame);
                            continue;
                        }
                        // Not a directory after all (unknown d_type): unlink it below.
                        Err(Errno::ENOTDIR | Errno::ELOOP) => {}
                        Err(e) => return Err(e),
                    }
                }
                unlinkat(
                    top.dir.as_fd(),
                    child.as_slice(),
                    UnlinkatFlags::NoRemoveDir,
                )?;
                removed += 1;
            }
            None => {
                let Some(done) = stack.pop() else { break };
                let parent_fd = match stack.last() {
                    Some(frame) => frame.dir.as_fd(),
                    None => parent,
                };
                unlinkat(parent_fd, done.name.as_slice(), UnlinkatFlags::RemoveDir)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Sets extended attribute `key` on entry `name` of `dir` without following a symlink there.
///
/// There is no `lsetxattrat` before Linux 6.13, so the entry is named through the directory's
/// `/proc/self/fd` link: only that link (our own confined fd) is followed, never `name`.
pub(super) fn set_xattr_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &CString,
    value: &[u8],
) -> nix::Result<()> {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    let path = cstr(&path)?;
    // SAFETY: all pointers are valid NUL-terminated strings / a live slice for the call.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Sets extended attribute `key` on an open file.
pub(super) fn set_xattr_fd(fd: BorrowedFd<'_>, key: &CString, value: &[u8]) -> nix::Result<()> {
    // SAFETY: fd is open, key is NUL-terminated and value a live slice for the call.
    let rc = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(rc).map(drop)
}
