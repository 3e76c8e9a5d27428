//! Reads and writes inside the target root that never leave it: every path is resolved by the
//! kernel with `openat2(RESOLVE_IN_ROOT)`, so a symlink the image made (`var/lib/cloud ->
//! /x`, `etc/os-release -> /usr/lib/os-release`) is followed as it would be inside the
//! installed system, never into the ramdisk. Mount points under the root (the ESPs) are
//! crossed: the markers live there.

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// `openat2` retries when a concurrent rename kept the kernel from proving `..` safe.
const RESOLVE_RETRIES: usize = 32;

/// Reads a file of the target (`rel` relative to `root`), at most `limit` bytes; `None` when
/// it does not exist, is not a regular file, or is larger.
pub fn read(root: &Path, rel: &Path, limit: u64) -> anyhow::Result<Option<Vec<u8>>> {
    let root_fd = open_root(root)?;
    let fd = match resolve(root_fd.as_fd(), rel, OFlag::O_RDONLY) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening /{}", rel.display())),
    };
    let mut file = File::from(fd);
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    Read::by_ref(&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading /{}", rel.display()))?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// Writes `contents` to `rel` inside `root` with `mode`: missing directories are made (0755),
/// a symlink or other non-directory at `rel` itself is replaced, never followed.
pub fn write(root: &Path, rel: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let shown = format!("/{}", rel.display());
    let (parent, name) = split(rel).with_context(|| format!("{shown}: not a file path"))?;
    let root_fd = open_root(root)?;
    let dir = make_dirs(root_fd.as_fd(), parent).with_context(|| format!("creating {shown}"))?;
    if let Ok(st) = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir)
                .with_context(|| format!("replacing {shown}"))?;
        }
    }
    let fd = nix::fcntl::openat(
        &dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .with_context(|| format!("opening {shown}"))?;
    fchmod(&fd, Mode::from_bits_truncate(mode)).with_context(|| format!("chmod {shown}"))?;
    File::from(fd)
        .write_all(contents)
        .with_context(|| format!("writing {shown}"))
}

/// Removes the file `rel` inside `root`; a missing one is fine.
pub fn remove(root: &Path, rel: &Path) -> anyhow::Result<()> {
    let Some((parent, name)) = split(rel) else {
        return Ok(());
    };
    let root_fd = open_root(root)?;
    let dir = match resolve(root_fd.as_fd(), parent, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(dir) => dir,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("removing /{}", rel.display())),
    };
    match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing /{}", rel.display())),
    }
}

/// Renames `from` to `to` inside the directory `dir` of the target (the entries themselves,
/// symlinks included, are moved, never followed); false when `from` does not exist.
pub fn rename(root: &Path, dir: &Path, from: &str, to: &str) -> anyhow::Result<bool> {
    let root_fd = open_root(root)?;
    let shown = format!("/{}/{from}", dir.display());
    let dir = match resolve(root_fd.as_fd(), dir, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(dir) => dir,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("moving {shown}")),
    };
    match nix::fcntl::renameat(&dir, from, &dir, to) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("moving {shown} to {to}")),
    }
}

fn open_root(root: &Path) -> anyhow::Result<OwnedFd> {
    nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening the target root {}", root.display()))
}

/// The directory part and the last component of a relative path made of plain names.
fn split(rel: &Path) -> Option<(&Path, &std::ffi::OsStr)> {
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some((rel.parent()?, rel.file_name()?))
}

/// Opens `rel` (empty: the root) inside `root`, resolving as the installed system would.
fn resolve(root: BorrowedFd<'_>, rel: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let path: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut attempts = 0;
    loop {
        match openat2(root, path, how) {
            Err(Errno::EAGAIN) if attempts < RESOLVE_RETRIES => attempts += 1,
            other => return other,
        }
    }
}

/// Opens directory `rel` inside `root`, making each missing component on the way.
fn make_dirs(root: BorrowedFd<'_>, rel: &Path) -> nix::Result<OwnedFd> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match resolve(root, rel, dir_flags) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut done = std::path::PathBuf::new();
    for component in rel.components() {
        done.push(component);
        match resolve(root, &done, dir_flags) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let parent = resolve(root, done.parent().unwrap_or(Path::new("")), dir_flags)?;
        let name = component.as_os_str().as_bytes();
        match mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    resolve(root, rel, dir_flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn absolute_symlinks_in_the_image_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        // The image made a directory an absolute symlink that, followed on the host, leads out.
        symlink(outside.path(), root.join("var/lib/cloud")).unwrap();
        let seed = Path::new("var/lib/cloud/seed/meta-data");
        assert!(
            write(root, seed, b"id", 0o600).is_err(),
            "dangling inside the root"
        );
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        // Where the link leads inside the root, the write follows it there.
        let target_inside = root.join(outside.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&target_inside).unwrap();
        write(root, seed, b"id", 0o600).unwrap();
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let inside = target_inside.join("seed/meta-data");
        assert_eq!(std::fs::read(&inside).unwrap(), b"id");
        let mode = std::fs::metadata(&inside).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_symlink_at_the_file_itself_is_replaced_and_reads_follow_links_inside() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=debian\n").unwrap();
        symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        let read_back = read(root, Path::new("etc/os-release"), 1024).unwrap();
        assert_eq!(read_back.as_deref(), Some(&b"ID=debian\n"[..]));
        assert_eq!(read(root, Path::new("etc/missing"), 1024).unwrap(), None);
        assert_eq!(read(root, Path::new("etc/os-release"), 4).unwrap(), None);

        symlink("/etc/passwd", root.join("etc/hostname")).unwrap();
        write(root, Path::new("etc/hostname"), b"node\n", 0o644).unwrap();
        assert!(!root
            .join("etc/hostname")
            .symlink_metadata()
            .unwrap()
            .is_symlink());
        assert_eq!(std::fs::read(root.join("etc/hostname")).unwrap(), b"node\n");
        remove(root, Path::new("etc/hostname")).unwrap();
        remove(root, Path::new("etc/hostname")).unwrap();
        assert!(!root.join("etc/hostname").exists());
        assert!(write(root, Path::new("../escape"), b"x", 0o644).is_err());
    }
}
