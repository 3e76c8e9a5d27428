//! Applies the members of one layer, in archive order, onto the root.

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{
    fchmodat, fstat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, FileStat, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};

use super::flush::DirtyBudget;
use super::fsops::{self, DirId};
use super::header::{read_member, Kind, Member};
use super::path::{CleanPath, Whiteout};
use super::pool::{Metadata, Pool, Target};
use super::prune::{self, prune, prune_children, Created, Removed};
use super::{LayerStats, RefusedEntry};

/// Mode of parent directories a layer uses without listing them.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// A resolved directory inside the root.
struct DirHandle {
    fd: OwnedFd,
    id: DirId,
}

/// State of one layer being applied.
pub(super) struct LayerWriter<'a> {
    root: BorrowedFd<'a>,
    /// Writes file content and sets file and directory metadata on other threads.
    pool: &'a mut Pool,
    dirty: &'a mut DirtyBudget,
    stats: LayerStats,
    /// The last directory resolved, by cleaned path: members come grouped by directory, so this
    /// saves one `openat2` per member. Dropped whenever a directory or symlink is removed,
    /// since that can change what a path resolves to.
    last_dir: Option<(Vec<u8>, Rc<DirHandle>)>,
    /// Names this layer created or updated; its whiteouts never remove them.
    created: Created,
    /// Directory times, applied once the layer's members are all written (writing a child
    /// updates the parent's mtime). Later members for the same path win.
    dir_times: BTreeMap<Vec<u8>, (TimeSpec, TimeSpec)>,
    /// Times of the existing directories the layer writes into, as they were before, with a
    /// path that led there: restored at the end, so that a directory's times come from the
    /// image, not from the moment of extraction.
    lower_dir_times: HashMap<DirId, (Vec<u8>, TimeSpec, TimeSpec)>,
}

impl<'a> LayerWriter<'a> {
    /// Starts a layer on `root` (an `O_PATH` directory fd), finishing files on `pool`.
    pub(super) fn new(
        root: BorrowedFd<'a>,
        pool: &'a mut Pool,
        dirty: &'a mut DirtyBudget,
    ) -> Self {
        Self {
            root,
            pool,
            dirty,
            stats: LayerStats::default(),
            last_dir: None,
            created: Created::default(),
            dir_times: BTreeMap::new(),
            lower_dir_times: HashMap::new(),
        }
    }

    /// Applies one member; its file content is streamed from `entry`.
    pub(super) fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> anyhow::Result<()> {
        let Some(member) = read_member(entry)? else {
            self.stats.skipped += 1;
            return Ok(());
        };
        let path = CleanPath::parse(&member.name)?;
        match path.whiteout()? {
            Whiteout::None => {}
            Whiteout::Hide(hidden) => return self.hide(path.parent(), hidden),
            Whiteout::Opaque => return self.make_opaque(path.parent()),
            Whiteout::AufsMetadata => {
                self.stats.skipped += 1;
                return Ok(());
            }
        }
        if path.is_root() {
            // The root's own metadata belongs to the installer, not to the image.
            if member.kind == Kind::Dir {
                self.stats.skipped += 1;
                return Ok(());
            }
            return Err(
                RefusedEntry::new(&member.name, "only a directory may name the root").into(),
            );
        }

        let dir = self.parent_dir(path.parent())?;
        let name = path.name();
        match &member.kind {
            Kind::File => {
                let size = entry.size();
                self.write_file(&dir, name, &member, entry, size)?
            }
            Kind::Dir => self.make_dir(&dir, &path, &member)?,
            Kind::Symlink(target) => self.make_symlink(&dir, name, target, &member)?,
            Kind::HardLink(target) => self.make_hardlink(&dir, name, target)?,
            Kind::CharDevice(dev) => self.make_node(&dir, name, SFlag::S_IFCHR, *dev, &member)?,
            Kind::BlockDevice(dev) => self.make_node(&dir, name, SFlag::S_IFBLK, *dev, &member)?,
            Kind::Fifo => self.make_node(&dir, name, SFlag::S_IFIFO, 0, &member)?,
        }
        self.created.insert(dir.id, name);
        self.stats.entries += 1;
        Ok(())
    }

    /// The first failure of the writer threads so far, if any.
    pub(super) fn failure(&self) -> anyhow::Result<()> {
        self.pool.failure()
    }

    /// Waits for the writer threads, sets the deferred directory times and returns what the
    /// layer did.
    pub(super) fn finish(mut self) -> anyhow::Result<LayerStats> {
        self.stats.xattrs_skipped += self.pool.drain()?;
        for (id, (path, atime, mtime)) in std::mem::take(&mut self.lower_dir_times) {
            self.restore_dir_times(id, &path, atime, mtime)
                .with_context(|| format!("restoring times of `{}`", lossy(&path)))?;
        }
        for (raw, (atime, mtime)) in std::mem::take(&mut self.dir_times) {
            let path = CleanPath::parse(&raw)?;
            // A later member may have replaced or removed the directory: then it has no time
            // of its own to restore.
            let Some(dir) = self.existing_dir(path.parent())? else {
                continue;
            };
            let is_dir = fsops::lstat_at(dir.fd.as_fd(), path.name())?
                .is_some_and(|st| fsops::file_type(&st) == SFlag::S_IFDIR);
            if is_dir {
                utimensat(
                    &dir.fd,
                    path.name(),
                    &atime,
                    &mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .with_context(|| format!("setting times of `{}`", lossy(&raw)))?;
            }
        }
        Ok(self.stats)
    }

    /// Puts back the times directory `id` had before the layer, if `path` still leads to it.
    fn restore_dir_times(
        &self,
        id: DirId,
        path: &[u8],
        atime: TimeSpec,
        mtime: TimeSpec,
    ) -> anyhow::Result<()> {
        let fd = match fsops::open_in_root(self.root, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if DirId::from_stat(&fstat(&fd)?) == id {
            futimens(&fd, &atime, &mtime)?;
        }
        Ok(())
    }

    /// Resolves the parent directory of a member, creating the parts the layer omits.
    fn parent_dir(&mut self, path: &[u8]) -> anyhow::Result<Rc<DirHandle>> {
        if let Some(dir) = self.cached_dir(path) {
            return Ok(dir);
        }
        let fd = match fsops::open_dir_in_root(self.root, path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => self.create_parents(path)?,
            Err(e) => return Err(resolve_error(e, path)),
        };
        self.cache_dir(path, fd)
    }

    /// Resolves an existing directory; `None` when the path does not lead to one.
    fn existing_dir(&mut self, path: &[u8]) -> anyhow::Result<Option<Rc<DirHandle>>> {
        if let Some(dir) = self.cached_dir(path) {
            return Ok(Some(dir));
        }
        match fsops::open_dir_in_root(self.root, path) {
            Ok(fd) => self.cache_dir(path, fd).map(Some),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(resolve_error(e, path)),
        }
    }

    fn cached_dir(&self, path: &[u8]) -> Option<Rc<DirHandle>> {
        match &self.last_dir {
            Some((cached, dir)) if cached == path => Some(Rc::clone(dir)),
            _ => None,
        }
    }

    fn cache_dir(&mut self, path: &[u8], fd: OwnedFd) -> anyhow::Result<Rc<DirHandle>> {
        let st = fstat(&fd)?;
        let id = self.note_dir_times(path, &st);
        let dir = Rc::new(DirHandle { id, fd });
        self.last_dir = Some((path.to_vec(), Rc::clone(&dir)));
        Ok(dir)
    }

    /// Remembers the times of a directory the layer may be about to change (the first time it is
    /// seen), to restore them at the end.
    fn note_dir_times(&mut self, path: &[u8], st: &FileStat) -> DirId {
        let id = DirId::from_stat(st);
        // The root's own times belong to the installer.
        if !path.is_empty() {
            self.lower_dir_times.entry(id).or_insert_with(|| {
                let atime = TimeSpec::new(st.st_atime, st.st_atime_nsec);
                let mtime = TimeSpec::new(st.st_mtime, st.st_mtime_nsec);
                (path.to_vec(), atime, mtime)
            });
        }
        id
    }

    /// Creates the missing directories of `path` (root-owned, 0755) one component at a time,
    /// each relative to the fd of the one before.
    fn create_parents(&mut self, path: &[u8]) -> anyhow::Result<OwnedFd> {
        let mut current = fsops::open_dir_in_root(self.root, b"")?;
        let mut missing = false;
        let mut end = 0usize;
        for component in path.split(|&b| b == b'/') {
            let current_path = &path[..end.saturating_sub(1)];
            end += component.len();
            let prefix = &path[..end];
            end += 1;
            if !missing {
                match fsops::open_dir_in_root(self.root, prefix) {
                    Ok(fd) => {
                        current = fd;
                        continue;
                    }
                    Err(Errno::ENOENT) => {
                        missing = true;
                        self.note_dir_times(current_path, &fstat(&current)?);
                    }
                    Err(e) => return Err(resolve_error(e, prefix)),
                }
            }
            match mkdirat(
                &current,
                component,
                Mode::from_bits_truncate(IMPLICIT_DIR_MODE),
            ) {
                Ok(()) => {}
                Err(Errno::EEXIST) => bail!(
                    "parent `{}` exists but does not lead to a directory (dangling symlink?)",
                    lossy(prefix)
                ),
                Err(e) => bail!("creating parent `{}`: {e}", lossy(prefix)),
            }
            fchownat(
                &current,
                component,
                Some(Uid::from_raw(0)),
                Some(Gid::from_raw(0)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            // Explicit mode: mkdir honours the process umask.
            fchmodat(
                &current,
                component,
                Mode::from_bits_truncate(IMPLICIT_DIR_MODE),
                FchmodatFlags::FollowSymlink,
            )?;
            self.created.insert(DirId::of(current.as_fd())?, component);
            current = fsops::open_child_dir(current.as_fd(), component, OFlag::O_PATH)?;
        }
        Ok(current)
    }

    /// Runs `create`; if the name is taken, removes whatever is there and runs it once more.
    fn create_replacing<T>(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        mut create: impl FnMut() -> nix::Result<T>,
    ) -> anyhow::Result<T> {
        match create() {
            Err(Errno::EEXIST) => {
                self.remove(dir, name)?;
                Ok(create()?)
            }
            other => Ok(other?),
        }
    }

    /// Removes `name` from `dir`, whatever it is.
    fn remove(&mut self, dir: &DirHandle, name: &[u8]) -> anyhow::Result<()> {
        let removed = prune::remove_entry(dir.fd.as_fd(), name)?;
        self.note_removed(removed);
        Ok(())
    }

    fn note_removed(&mut self, removed: Removed) {
        self.stats.removed += removed.objects;
        if removed.reshaped {
            self.last_dir = None;
        }
    }

    fn write_file<R: Read>(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        member: &Member,
        content: &mut R,
        size: u64,
    ) -> anyhow::Result<()> {
        // A fresh inode every time: truncating in place would also rewrite every hard link
        // a lower layer made to the old file.
        let fd = self.create_replacing(dir, name, || {
            nix::fcntl::openat(
                &dir.fd,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        })?;
        let target = Arc::new(Target {
            file: File::from(fd),
            name: member.name.clone(),
        });
        self.pool.assign(self.stats.entries);
        let mut written = 0u64;
        while written < size {
            match self.pool.write_from(&target, content, size - written)? {
                0 => break,
                read => written += read as u64,
            }
        }
        // The tar reader reports a stream cut inside a file as a short file, not an error.
        if written != size {
            bail!("layer stream ends inside this file ({written} of {size} bytes)");
        }
        self.stats.bytes += written;
        self.dirty.wrote(written);
        self.pool.finish(target, metadata(member, true))
    }

    fn make_dir(
        &mut self,
        dir: &DirHandle,
        path: &CleanPath,
        member: &Member,
    ) -> anyhow::Result<()> {
        let name = path.name();
        let mode = Mode::from_bits_truncate(0o700);
        match mkdirat(&dir.fd, name, mode) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                // An existing directory keeps its contents; anything else, a symlink to a
                // directory included, is replaced.
                let is_dir = fsops::lstat_at(dir.fd.as_fd(), name)?
                    .is_some_and(|st| fsops::file_type(&st) == SFlag::S_IFDIR);
                if !is_dir {
                    self.remove(dir, name)?;
                    mkdirat(&dir.fd, name, mode)?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        // Metadata goes through an fd of the directory itself, opened without entering a
        // mount point: an existing directory could be one.
        let fd = fsops::open_child_dir(dir.fd.as_fd(), name, OFlag::O_RDONLY)
            .map_err(|e| resolve_error(e, path.as_bytes()))?;
        // A directory listed twice has its metadata set twice: by one thread, in order.
        self.pool.assign(fstat(&fd)?.st_ino);
        let target = Target {
            file: File::from(fd),
            name: member.name.clone(),
        };
        self.pool
            .finish(Arc::new(target), metadata(member, false))?;
        self.dir_times
            .insert(path.as_bytes().to_vec(), (member.atime, member.mtime));
        Ok(())
    }

    fn make_symlink(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        target: &[u8],
        member: &Member,
    ) -> anyhow::Result<()> {
        let target = fsops::cstr(target)
            .map_err(|_| RefusedEntry::new(&member.name, "symlink target contains a NUL byte"))?;
        self.create_replacing(dir, name, || symlinkat(target.as_c_str(), &dir.fd, name))?;
        self.set_owner_at(dir, name, member)?;
        self.set_xattrs_at(dir, name, member)?;
        utimensat(
            &dir.fd,
            name,
            &member.atime,
            &member.mtime,
            UtimensatFlags::NoFollowSymlink,
        )?;
        Ok(())
    }

    /// Links `name` to the object another member name refers to; its own metadata is that
    /// object's, so the member's header fields are not applied.
    fn make_hardlink(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        target_raw: &[u8],
    ) -> anyhow::Result<()> {
        let target = CleanPath::parse(target_raw)?;
        if target.is_root() {
            return Err(RefusedEntry::new(target_raw, "hardlink to the root").into());
        }
        let Some(target_dir) = self.existing_dir(target.parent())? else {
            bail!("hardlink target `{}` does not exist", lossy(target_raw));
        };
        let link = || {
            linkat(
                &target_dir.fd,
                target.name(),
                &dir.fd,
                name,
                AtFlags::empty(),
            )
        };
        match link() {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => {
                let existing = fsops::lstat_at(dir.fd.as_fd(), name)?;
                let wanted = fsops::lstat_at(target_dir.fd.as_fd(), target.name())?;
                let same = matches!((existing, wanted), (Some(a), Some(b)) if a.st_dev == b.st_dev && a.st_ino == b.st_ino);
                if same {
                    return Ok(());
                }
                self.remove(dir, name)?;
                link().map_err(|e| hardlink_error(e, target_raw))
            }
            Err(e) => Err(hardlink_error(e, target_raw)),
        }
    }

    fn make_node(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        kind: SFlag,
        dev: libc::dev_t,
        member: &Member,
    ) -> anyhow::Result<()> {
        let initial = Mode::from_bits_truncate(0o600);
        self.create_replacing(dir, name, || mknodat(&dir.fd, name, kind, initial, dev))?;
        self.set_owner_at(dir, name, member)?;
        // The node was just made by us, so there is no symlink here to follow.
        fchmodat(
            &dir.fd,
            name,
            Mode::from_bits_truncate(member.mode),
            FchmodatFlags::FollowSymlink,
        )?;
        self.set_xattrs_at(dir, name, member)?;
        utimensat(
            &dir.fd,
            name,
            &member.atime,
            &member.mtime,
            UtimensatFlags::NoFollowSymlink,
        )?;
        Ok(())
    }

    fn set_owner_at(&self, dir: &DirHandle, name: &[u8], member: &Member) -> anyhow::Result<()> {
        fchownat(
            &dir.fd,
            name,
            Some(Uid::from_raw(member.uid)),
            Some(Gid::from_raw(member.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    fn set_xattrs_at(
        &mut self,
        dir: &DirHandle,
        name: &[u8],
        member: &Member,
    ) -> anyhow::Result<()> {
        for (key, value) in &member.xattrs {
            let result = fsops::set_xattr_at(dir.fd.as_fd(), name, key, value);
            self.xattr_result(result, key, &member.name)?;
        }
        Ok(())
    }

    /// Extended attributes the target file system cannot store are skipped with a warning;
    /// any other failure stops the layer.
    fn xattr_result(
        &mut self,
        result: nix::Result<()>,
        key: &CString,
        member: &[u8],
    ) -> anyhow::Result<()> {
        if fsops::xattr_skipped(result, key, member)? {
            self.stats.xattrs_skipped += 1;
        }
        Ok(())
    }

    /// `.wh.NAME` in `parent`: removes what lower layers put at `NAME`, keeping what this
    /// layer wrote there.
    fn hide(&mut self, parent: &[u8], hidden: &[u8]) -> anyhow::Result<()> {
        self.stats.whiteouts += 1;
        let Some(dir) = self.existing_dir(parent)? else {
            return Ok(());
        };
        let removed = prune(&self.created, dir.fd.as_fd(), dir.id, hidden)
            .with_context(|| format!("whiteout of `{}` in `{}`", lossy(hidden), lossy(parent)))?;
        self.note_removed(removed);
        Ok(())
    }

    /// `.wh..wh..opq` in `path`: removes everything lower layers put in that directory.
    fn make_opaque(&mut self, path: &[u8]) -> anyhow::Result<()> {
        self.stats.whiteouts += 1;
        let Some(dir) = self.existing_dir(path)? else {
            return Ok(());
        };
        let removed = prune_children(&self.created, dir.fd.as_fd())
            .with_context(|| format!("opaque directory `{}`", lossy(path)))?;
        self.note_removed(removed);
        Ok(())
    }
}

/// The metadata the writer threads set for `member`; times too, unless they are deferred
/// (directories).
fn metadata(member: &Member, times: bool) -> Metadata {
    Metadata {
        uid: member.uid,
        gid: member.gid,
        mode: member.mode,
        xattrs: member.xattrs.clone(),
        times: times.then_some((member.atime, member.mtime)),
    }
}

/// Explains why a directory path could not be opened.
fn resolve_error(e: Errno, path: &[u8]) -> anyhow::Error {
    match e {
        Errno::ENOTDIR => anyhow!("`{}` is not a directory", lossy(path)),
        Errno::EXDEV => anyhow!(
            "`{}` crosses a mount point; layers are applied before anything is mounted under the root",
            lossy(path)
        ),
        Errno::ELOOP => anyhow!("`{}`: too many levels of symlinks, or a magic link", lossy(path)),
        e => anyhow!("resolving `{}`: {e}", lossy(path)),
    }
}

fn hardlink_error(e: Errno, target: &[u8]) -> anyhow::Error {
    match e {
        Errno::ENOENT => anyhow!("hardlink target `{}` does not exist", lossy(target)),
        Errno::EPERM => anyhow!("hardlink target `{}` is a directory", lossy(target)),
        e => anyhow!("hardlink to `{}`: {e}", lossy(target)),
    }
}

/// A name for messages.
pub(super) fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
