//! Applies uncompressed OCI layer tar streams onto a root directory, confined to that root.

use std::io::Read;
use std::path::Path;

/// Counts of what one layer did to the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Entries created or replaced.
    pub entries: u64,
    /// Whiteouts (including opaque ones) applied.
    pub whiteouts: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
}

/// Applies layers, in order, onto one root directory.
pub struct Applier {
    _private: (),
}

impl Applier {
    /// Opens `root` (which must exist and be a directory) as the confinement root.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let _ = root;
        anyhow::bail!("layer application is not implemented yet")
    }

    /// Applies one uncompressed tar stream with OCI layer semantics.
    pub fn apply_layer(&mut self, tar: &mut dyn Read) -> anyhow::Result<LayerStats> {
        let _ = tar;
        anyhow::bail!("layer application is not implemented yet")
    }
}
