//! Confined filesystem primitives.
//!
//! Multi-component paths are only ever resolved by `openat2(RESOLVE_IN_ROOT)` against the root
//! fd; everything else operates on a directory fd plus one final component (which the `*at`
//! calls never follow), so no string handling can take a write outside the root.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, SFlag};

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

    /// Identity from a stat result.
    pub(super) fn from_stat(st: &FileStat) -> Self {
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
/// followed but absolute targets and `..` are clamped to `root`, magic links are refused, and
/// so is entering a mount point (`EXDEV`): the tree is the root's own file system.
pub(super) fn open_dir_in_root(root: BorrowedFd<'_>, path: &[u8]) -> nix::Result<OwnedFd> {
    open_in_root(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY)
}

/// Opens `path` inside `root` like [`open_dir_in_root`], with `flags`.
pub(super) fn open_in_root(
    root: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    let path: &[u8] = if path.is_empty() { b"." } else { path };
    let resolve = ResolveFlag::RESOLVE_IN_ROOT
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV;
    resolve_retrying(root, path, flags, resolve)
}

/// Opens the directory `name` (one component) in `dir`, neither following a symlink there nor
/// entering a mount point (`EXDEV`).
pub(super) fn open_child_dir(
    dir: BorrowedFd<'_>,
    name: &[u8],
    flags: OFlag,
) -> nix::Result<OwnedFd> {
    let resolve = ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_XDEV;
    resolve_retrying(
        dir,
        name,
        flags | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        resolve,
    )
}

/// `openat2`, retried when the kernel reports that a concurrent rename elsewhere on the system
/// kept it from proving `..` safe (`EAGAIN`).
fn resolve_retrying(
    dir: BorrowedFd<'_>,
    path: &[u8],
    flags: OFlag,
    resolve: ResolveFlag,
) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let mut attempts = 0;
    loop {
        match openat2(dir, path, how) {
            Err(Errno::EAGAIN) if attempts < RESOLVE_RETRIES => attempts += 1,
            other => return other,
        }
    }
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

/// The outcome of setting an extended attribute of member `member`: an attribute the target
/// file system cannot store is skipped with a warning (`Ok(true)`); any other failure stops
/// the layer.
pub(super) fn xattr_skipped(
    result: nix::Result<()>,
    key: &CString,
    member: &[u8],
) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(Errno::EOPNOTSUPP) => {
            tracing::warn!(member = %String::from_utf8_lossy(member), xattr = %key.to_string_lossy(), "file system does not support this extended attribute; skipped");
            Ok(true)
        }
        Err(e) => Err(anyhow::anyhow!(
            "setting extended attribute {}: {e}",
            key.to_string_lossy()
        )),
    }
}
