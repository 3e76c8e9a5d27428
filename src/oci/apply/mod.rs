//! Applies uncompressed OCI layer tar streams onto a root directory, confined to that root.
//!
//! Layers are applied in order with the image-spec semantics (whiteouts, opaque directories,
//! type changes, hard links across layers, numeric ownership, modes, times, extended
//! attributes). Every path is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` and every
//! change is made relative to a directory fd, so nothing a layer says can touch anything
//! outside the root. `docs/extraction.md` lists the exact rules and what is refused.

mod extension;
mod flush;
mod fsops;
mod header;
mod layer;
mod path;
mod pool;
mod prune;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::Context as _;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

pub(in crate::oci) use extension::ExtensionCap;
pub use extension::MAX_EXTENSION;
pub(in crate::oci) use header::{read_member, Kind};
use layer::LayerWriter;
pub(in crate::oci) use path::{CleanPath, Whiteout};

/// What one layer did to the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Members created or replaced (directories updated in place included).
    pub entries: u64,
    /// Whiteouts (including opaque markers) applied.
    pub whiteouts: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Filesystem objects deleted, by whiteouts or by members replacing them.
    pub removed: u64,
    /// Members that describe nothing to write: the root directory itself, PAX global headers,
    /// AUFS `.wh..wh.*` metadata.
    pub skipped: u64,
    /// Extended attributes the target file system does not support, skipped with a warning.
    pub xattrs_skipped: u64,
}

/// A layer member that cannot be applied safely or meaningfully, e.g. a name with a `..`
/// component. The layer stops at such a member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused layer member `{member}`: {reason}")]
pub struct RefusedEntry {
    /// The offending name (member name or link target), lossily decoded.
    pub member: String,
    /// Why it is refused.
    pub reason: String,
}

impl RefusedEntry {
    fn new(member: &[u8], reason: &str) -> Self {
        Self {
            member: String::from_utf8_lossy(member).into_owned(),
            reason: reason.to_owned(),
        }
    }
}

/// Applies layers, in order, onto one root directory.
///
/// `Send`, so that it can move to the blocking thread that reads the layers.
pub struct Applier {
    /// `O_PATH` handle of the root: the only starting point of every path resolution.
    root: OwnedFd,
    /// Threads that write file content and set metadata.
    pool: pool::Pool,
    dirty: flush::DirtyBudget,
}

// The registry pull drives this from a blocking thread.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Applier>();
};

impl Applier {
    /// Opens `root` (which must exist and be a directory) as the confinement root.
    ///
    /// Needs Linux 5.6 or later (`openat2`) and `/proc` (extended attributes on directories and
    /// special files are set through `/proc/self/fd`).
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let root_fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening layer root {}", root.display()))?;
        match fsops::open_dir_in_root(root_fd.as_fd(), b"") {
            Ok(_) => {}
            Err(Errno::ENOSYS) => {
                anyhow::bail!("layer application needs openat2(2) (Linux 5.6 or later)")
            }
            Err(e) => return Err(e).context("probing openat2(2) on the layer root"),
        }
        if !Path::new("/proc/self/fd").is_dir() {
            anyhow::bail!("layer application needs /proc mounted (extended attributes of symlinks and devices are set through /proc/self/fd)");
        }
        let fs = fsops::open_in_root(root_fd.as_fd(), b"", OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .context("opening the layer root")?;
        Ok(Self {
            root: root_fd,
            pool: pool::Pool::new()?,
            dirty: flush::DirtyBudget::new(fs),
        })
    }

    /// Applies one uncompressed tar stream with OCI layer semantics.
    ///
    /// The stream is read to its end, past the tar end-of-archive marker, so that a caller
    /// hashing it sees every byte. On error the layer may be partly applied.
    pub fn apply_layer(&mut self, tar: &mut dyn Read) -> anyhow::Result<LayerStats> {
        let result = self.apply_members(tar);
        if result.is_err() {
            // Nothing may still be writing when the caller looks at the tree.
            let _ = self.pool.drain();
        }
        result
    }

    fn apply_members(&mut self, tar: &mut dyn Read) -> anyhow::Result<LayerStats> {
        let mut writer = LayerWriter::new(self.root.as_fd(), &mut self.pool, &mut self.dirty);
        let mut archive = tar::Archive::new(ExtensionCap::new(tar));
        for entry in archive.entries().context("reading layer tar")? {
            writer.failure()?;
            let mut entry = entry.map_err(refusal_or_read_error)?;
            writer.apply(&mut entry).with_context(|| {
                format!(
                    "applying layer member `{}`",
                    layer::lossy(&entry.path_bytes())
                )
            })?;
        }
        let stats = writer.finish()?;
        std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
            .context("reading the end of the layer stream")?;
        Ok(stats)
    }
}

/// An error from the tar reader: the refusal of an oversized extension header as it is, any
/// other as a read error.
pub(in crate::oci) fn refusal_or_read_error(e: std::io::Error) -> anyhow::Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<RefusedEntry>())
    {
        Some(refused) => refused.clone().into(),
        None => anyhow::Error::new(e).context("reading layer tar"),
    }
}
