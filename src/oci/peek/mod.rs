//! A bounded look into an image's layers before anything is written: which os-release the
//! installed system would have, read from the topmost layers without applying them.
//!
//! Layers are read last first, one at a time, each downloaded and verified like a pull's
//! (same sources, retries, size and digest checks) and indexed by [`scan`]; after each, the
//! tree they make is asked for `/etc/os-release`, then `/usr/lib/os-release` ([`lookup`]), as
//! the installer reads it after the pull. A layer counts only once it is read to its verified
//! end. The look stops with [`OsReleasePeek::Unknown`] when [`PeekLimits`] run out first.
//! Within [`PeekLimits::keep`], the verified layers are kept for the pull ([`look_into`]).

mod lookup;
mod scan;

use std::sync::Arc;
use std::time::Duration;

use super::download::{Abort, LayerDownload};
use super::kept::VerifiedBlob;
use super::pipe::pipe;
use super::progress::Progress;
use super::pull::{blob_sources, ChannelReader};
use super::pull_error::PullError;
use super::resolve::{LayerDesc, ResolvedImage};
use super::DEFAULT_LAYER_BUFFER;
use lookup::Outcome;
use scan::{Budget, LayerIndex, Stop};

/// Where the installed system's os-release is, in order (os-release(5)), relative to its root.
pub const OS_RELEASE_PATHS: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// How far the look goes before it gives up with [`OsReleasePeek::Unknown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeekLimits {
    /// Layers read at most, the topmost first.
    pub layers: usize,
    /// Uncompressed bytes of those layers read at most, together.
    pub bytes: u64,
    /// Members of those layers indexed at most, together.
    pub entries: u64,
    /// Time for the whole look, downloads included.
    pub time: Duration,
    /// Compressed bytes of verified layers kept in memory for the pull, together; 0 keeps
    /// none. A layer larger than what is left is not kept.
    pub keep: u64,
}

impl Default for PeekLimits {
    fn default() -> Self {
        Self {
            layers: 4,
            bytes: 1 << 30,
            entries: 1_000_000,
            time: Duration::from_secs(120),
            keep: 0,
        }
    }
}

/// What the topmost layers say about the image's os-release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsReleasePeek {
    /// The text of the os-release the installed system would have.
    Found(String),
    /// The image has neither `/etc/os-release` nor `/usr/lib/os-release` as a regular file.
    Absent,
    /// Not known within the limits, or the registry was unavailable; the reason, one line.
    Unknown(String),
}

/// What the look found, and the layers it read and verified, kept for the pull.
#[derive(Debug)]
pub struct Peek {
    /// Which os-release the image would install, as [`read_os_release`] gives it.
    pub os_release: OsReleasePeek,
    /// For [`PullOptions::verified_blobs`](crate::oci::PullOptions::verified_blobs).
    pub kept: Vec<VerifiedBlob>,
}

/// Reads which os-release `resolved` would install, within `limits`. Errors are what would
/// make the pull fail too: a layer that fails verification, a blob the registry does not
/// have, a layer that cannot be decompressed or that the applier would refuse. A registry
/// that stays unavailable is [`OsReleasePeek::Unknown`].
pub async fn read_os_release(
    resolved: &ResolvedImage,
    limits: &PeekLimits,
) -> anyhow::Result<OsReleasePeek> {
    Ok(look_into(resolved, limits).await?.os_release)
}

/// [`read_os_release`], also giving the layers read to their verified end, as far as
/// [`PeekLimits::keep`] allows.
pub async fn look_into(resolved: &ResolvedImage, limits: &PeekLimits) -> anyhow::Result<Peek> {
    let mut kept = Vec::new();
    let answer = tokio::time::timeout(limits.time, read_within(resolved, limits, &mut kept));
    let os_release = match answer.await {
        Ok(answer) => answer?,
        Err(_) => {
            OsReleasePeek::Unknown(format!("no answer within {} s", limits.time.as_secs_f64()))
        }
    };
    Ok(Peek { os_release, kept })
}

async fn read_within(
    resolved: &ResolvedImage,
    limits: &PeekLimits,
    kept: &mut Vec<VerifiedBlob>,
) -> anyhow::Result<OsReleasePeek> {
    let mut look = Look::new(limits, resolved.layers.len());
    let mut keep_left = limits.keep;
    for (at, layer) in resolved.layers.iter().enumerate().rev() {
        if let Some(answer) = look.before() {
            return Ok(answer);
        }
        let keep = layer.size <= keep_left;
        let (left, scanned, blob) = read_layer(resolved, layer, look.budget.clone(), keep).await;
        if let Some(blob) = blob {
            keep_left -= blob.size();
            kept.push(blob);
        }
        if let Some(answer) = look.after(at, &layer.digest, left, scanned)? {
            return Ok(answer);
        }
    }
    Ok(look.exhausted())
}

/// The look across layers, topmost first: what is left of the limits and what was read.
struct Look<'a> {
    limits: &'a PeekLimits,
    /// Layers of the image.
    count: usize,
    budget: Budget,
    read: Vec<LayerIndex>,
}

impl<'a> Look<'a> {
    fn new(limits: &'a PeekLimits, count: usize) -> Self {
        Self {
            limits,
            count,
            budget: Budget {
                bytes: limits.bytes,
                entries: limits.entries,
            },
            read: Vec::new(),
        }
    }

    /// The answer when no further layer may be read.
    fn before(&self) -> Option<OsReleasePeek> {
        (self.read.len() >= self.limits.layers).then(|| {
            OsReleasePeek::Unknown(format!(
                "the top {} of the image's {} layers do not settle it",
                self.limits.layers, self.count
            ))
        })
    }

    /// Takes what reading layer `at` (0 the bottom one) gave, with what is `left` of the
    /// budget; the answer once it is settled.
    fn after(
        &mut self,
        at: usize,
        digest: &str,
        left: Budget,
        scanned: Result<LayerIndex, Stop>,
    ) -> anyhow::Result<Option<OsReleasePeek>> {
        self.budget = left;
        let index = match scanned {
            Ok(index) => index,
            Err(Stop::Limit(why)) => {
                return Ok(Some(OsReleasePeek::Unknown(format!(
                    "{why} in layer {} of {} (at most {} MiB and {} members from the top {} \
                     layers)",
                    at + 1,
                    self.count,
                    self.limits.bytes >> 20,
                    self.limits.entries,
                    self.limits.layers,
                ))))
            }
            Err(Stop::Failed(err)) if is_unavailable(&err) => {
                return Ok(Some(OsReleasePeek::Unknown(format!("{err:#}"))))
            }
            Err(Stop::Failed(err)) => {
                return Err(err.context(format!("layer {} of {} ({digest})", at + 1, self.count)))
            }
        };
        self.read.push(index);
        Ok(
            match lookup::first_file(&self.read, at == 0, &OS_RELEASE_PATHS) {
                Outcome::Found(text) => Some(OsReleasePeek::Found(
                    String::from_utf8_lossy(&text).into_owned(),
                )),
                Outcome::Absent => Some(OsReleasePeek::Absent),
                Outcome::Unknown(why) => Some(OsReleasePeek::Unknown(why)),
                Outcome::NeedMore => None,
            },
        )
    }

    /// The answer when every layer was read without one: only for an image without layers,
    /// since the bottom layer settles everything.
    fn exhausted(&self) -> OsReleasePeek {
        OsReleasePeek::Unknown("the image has no layers".into())
    }
}

/// Transient by the registry's doing: retried as long as the pull would, and still failing.
fn is_unavailable(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<PullError>(),
        Some(PullError::Unavailable { .. })
    )
}

/// Downloads one layer and indexes it on a blocking thread; gives back what is left of the
/// budget, and with `keep` the blob once verified. A download failure is the cause reported
/// over what it did to the reading.
async fn read_layer(
    resolved: &ResolvedImage,
    layer: &LayerDesc,
    budget: Budget,
    keep: bool,
) -> (Budget, Result<LayerIndex, Stop>, Option<VerifiedBlob>) {
    let endpoints = match blob_sources(resolved) {
        Ok(endpoints) => endpoints,
        Err(err) => return (budget, Err(Stop::Failed(err)), None),
    };
    let abort = Arc::new(Abort::default());
    // The download reads on to the blob's verified end even once the reading failed: a
    // digest mismatch is the cause worth reporting.
    abort.set_applying(0);
    let (tx, rx) = pipe(DEFAULT_LAYER_BUFFER);
    let download = LayerDownload {
        registry: &resolved.registry,
        endpoints,
        layer,
        index: 0,
        progress: Progress::new(vec![layer.size], None),
        abort: Arc::clone(&abort),
    }
    .run(tx);
    let compression = layer.compression;
    let size = layer.size;
    let reading = tokio::task::spawn_blocking(move || {
        let mut budget = budget;
        let mut raw = ChannelReader::new(rx, &abort);
        if keep {
            raw = raw.keeping(size);
        }
        let scanned = scan::read_layer(compression, &mut raw, &mut budget);
        // Only a whole blob that the download then verifies is kept.
        let blob = match &scanned {
            Ok(_) if keep => raw.into_kept().ok().flatten(),
            _ => None,
        };
        if let Err(stop) = &scanned {
            if let Stop::Limit(_) = stop {
                // Nothing more of this blob is wanted.
                abort.set_applying(usize::MAX);
            }
            abort.set(match stop {
                Stop::Limit(why) => why.clone(),
                Stop::Failed(err) => format!("{err:#}"),
            });
        }
        (budget, scanned, blob)
    });
    let (downloaded, read) = tokio::join!(download, reading);
    let (budget, scanned, blob) = read.unwrap_or_else(|err| {
        let spent = Budget {
            bytes: 0,
            entries: 0,
        };
        let failed = anyhow::anyhow!("the layer reading thread failed: {err}");
        (spent, Err(Stop::Failed(failed)), None)
    });
    match downloaded {
        Err(err) => (budget, Err(Stop::Failed(err.into())), None),
        Ok(()) => {
            let blob = blob.map(|bytes| VerifiedBlob::new(&layer.digest, bytes));
            (budget, scanned, blob)
        }
    }
}

#[cfg(test)]
mod tests;
