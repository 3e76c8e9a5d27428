//! Layer blobs read and verified before the pull, kept in memory so that the pull applies
//! them without downloading them again: the look into the top layers before the wipe reads
//! whole layers, often the biggest one of the image.

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

use super::pipe::{Chunk, PipeSender};
use super::progress::Progress;
use super::pull_error::PullError;

/// Slices handed to the applier at a time, as a download's chunks would be.
const FEED_CHUNK: usize = 256 << 10;

/// A layer blob whose digest and size were verified as it was downloaded. Only this crate
/// makes them, from a download's verified end.
#[derive(Clone)]
pub struct VerifiedBlob {
    digest: String,
    bytes: Bytes,
}

impl VerifiedBlob {
    /// `bytes` must be exactly what a download of `digest` verified.
    pub(crate) fn new(digest: &str, bytes: Bytes) -> Self {
        Self {
            digest: digest.to_string(),
            bytes,
        }
    }

    /// The blob's digest (`sha256:…`).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Hands the blob to the applier through `tx`, ending with [`Chunk::End`], as layer
    /// `index`'s download would.
    pub(crate) async fn feed(
        self,
        tx: PipeSender,
        progress: Arc<Progress>,
        index: usize,
    ) -> Result<(), PullError> {
        let mut left = self.bytes;
        while !left.is_empty() {
            let chunk = left.split_to(left.len().min(FEED_CHUNK));
            let len = chunk.len() as u64;
            if tx.send_data(chunk).await.is_err() {
                // The applier stopped; its reason is reported on its side.
                return Ok(());
            }
            progress.add(index, len);
        }
        let _ = tx.send(Chunk::End);
        Ok(())
    }
}

impl fmt::Debug for VerifiedBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VerifiedBlob({}, {} bytes)",
            self.digest,
            self.bytes.len()
        )
    }
}
