//! The pull pipeline: layers download in parallel (bounded) while blocking threads decompress
//! and apply them strictly in order, fed through pipes bounded in bytes. Downloads may start
//! before the target exists ([`pull_when_ready`]): they fill their pipes meanwhile.
//!
//! Bytes are applied while they stream, so a digest mismatch is only certain once a layer
//! has (partly) been applied: the error then stops the pull and the caller must discard the
//! tree (the installer recreates the filesystem anyway).

use super::apply::{Applier, LayerStats};
use super::download::{Abort, LayerDownload};
use super::endpoint::Endpoint;
use super::inflate::{self, LayerBlocks};
use super::pipe::{pipe, Chunk, PipeReceiver};
use super::progress::Progress;
use super::pull_error::PullError;
use super::resolve::{LayerDesc, ResolvedImage};
use super::PullOptions;
use anyhow::Context;
use bytes::Bytes;
use futures_util::future::Either;
use futures_util::StreamExt;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

/// Where uncompressed layer tar streams go, in order. [`Applier`] is the real one.
pub trait LayerSink: Send {
    /// Applies one uncompressed layer tar stream.
    fn apply_layer(&mut self, tar: &mut dyn Read) -> anyhow::Result<LayerStats>;
}

impl LayerSink for Applier {
    fn apply_layer(&mut self, tar: &mut dyn Read) -> anyhow::Result<LayerStats> {
        Applier::apply_layer(self, tar)
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// Per-layer application counts, bottom layer first.
    pub layers: Vec<LayerStats>,
    /// Compressed bytes downloaded (resumed ranges counted once).
    pub downloaded_bytes: u64,
    /// Compressed bytes applied from [`PullOptions::verified_blobs`] instead.
    ///
    /// [`PullOptions::verified_blobs`]: super::PullOptions::verified_blobs
    pub reused_bytes: u64,
    /// Wall time of download and application.
    pub elapsed: Duration,
}

/// Opens the sink, on the application thread, when the first layer is about to be applied.
type OpenSink = Box<dyn FnOnce() -> anyhow::Result<Box<dyn LayerSink>> + Send>;

/// Downloads `resolved`'s layers and applies them onto `root` (which must exist).
pub async fn pull_into(
    resolved: &ResolvedImage,
    opts: &PullOptions,
    root: &Path,
) -> anyhow::Result<PullReport> {
    let applier = open_applier(root)?;
    pull_with(resolved, opts, Box::new(move || Ok(applier))).await
}

/// Like [`pull_into`], but the downloads start at once while the target is still being
/// made: layers are applied onto the directory `root` delivers. Dropping the sender
/// instead aborts the pull.
pub async fn pull_when_ready(
    resolved: &ResolvedImage,
    opts: &PullOptions,
    root: std::sync::mpsc::Receiver<PathBuf>,
) -> anyhow::Result<PullReport> {
    let open: OpenSink = Box::new(move || {
        let root = root
            .recv()
            .map_err(|_| anyhow::anyhow!("the target filesystem was never made ready"))?;
        open_applier(&root)
    });
    pull_with(resolved, opts, open).await
}

/// The confined applier on `root`, as the sink of a pull.
fn open_applier(root: &Path) -> anyhow::Result<Box<dyn LayerSink>> {
    let applier = Applier::open(root)
        .with_context(|| format!("cannot open {} to apply layers", root.display()))?;
    Ok(Box::new(applier))
}

/// Like [`pull_into`], with any [`LayerSink`] in place of the confined applier.
pub async fn pull_into_sink(
    resolved: &ResolvedImage,
    opts: &PullOptions,
    sink: Box<dyn LayerSink>,
) -> anyhow::Result<PullReport> {
    pull_with(resolved, opts, Box::new(move || Ok(sink))).await
}

async fn pull_with(
    resolved: &ResolvedImage,
    opts: &PullOptions,
    open: OpenSink,
) -> anyhow::Result<PullReport> {
    let started = Instant::now();
    let registry = &resolved.registry;
    let endpoints = blob_sources(resolved)?;

    let layers = resolved.layers.clone();
    let progress = Progress::new(
        layers.iter().map(|l| l.size).collect(),
        opts.progress.clone(),
    );
    let abort = Arc::new(Abort::default());
    let (senders, receivers): (Vec<_>, Vec<_>) =
        layers.iter().map(|_| pipe(opts.layer_buffer)).unzip();
    // Per layer, the blob already verified, if the caller has it.
    let kept: Vec<_> = layers
        .iter()
        .map(|layer| {
            opts.verified_blobs
                .iter()
                .find(|b| b.digest() == layer.digest)
        })
        .collect();
    let reused_bytes: u64 = kept.iter().flatten().map(|b| b.size()).sum();

    let applier = {
        let layers = layers.clone();
        let abort = Arc::clone(&abort);
        tokio::task::spawn_blocking(move || {
            let sink = open().map_err(|e| {
                abort.set(format!("{e:#}"));
                (None, e)
            })?;
            apply_all(sink, &layers, receivers, &abort)
        })
    };
    let ticker = progress.spawn_ticker();
    // Built up front rather than in a stream combinator's closure, so that the whole pull
    // stays a `Send` future that a runtime can spawn.
    let tasks: Vec<_> = layers
        .iter()
        .zip(senders)
        .enumerate()
        .map(|(index, (layer, tx))| {
            let progress = Arc::clone(&progress);
            match kept[index] {
                Some(blob) => Either::Left(blob.clone().feed(tx, progress, index)),
                None => Either::Right(
                    LayerDownload {
                        registry,
                        endpoints,
                        layer,
                        index,
                        progress,
                        abort: Arc::clone(&abort),
                    }
                    .run(tx),
                ),
            }
        })
        .collect();
    let downloads: Vec<Result<(), PullError>> = futures_util::stream::iter(tasks)
        .buffered(opts.parallel_downloads.max(1))
        .collect()
        .await;
    // Always wait for the applier: nothing may write into the tree after we return.
    let applied = applier.await;
    ticker.abort();
    progress.finish();

    let applied = applied.context("the layer application thread failed")?;
    let failed_download = downloads.into_iter().find_map(Result::err);
    match (applied, failed_download) {
        (_, Some(download_error)) => Err(download_error.into()),
        (Err((None, err)), None) => Err(err),
        (Err((Some(index), err)), None) => Err(err.context(format!(
            "applying layer {} of {} ({})",
            index + 1,
            layers.len(),
            layers[index].digest
        ))),
        (Ok(stats), None) => Ok(PullReport {
            layers: stats,
            downloaded_bytes: progress.downloaded().saturating_sub(reused_bytes),
            reused_bytes,
            elapsed: started.elapsed(),
        }),
    }
}

/// Where `resolved`'s blobs come from: the source that resolved the image first, then the
/// ones after it (the origin last), so that a mirror that fails mid-blob hands the rest of it
/// to the next source.
pub(crate) fn blob_sources(resolved: &ResolvedImage) -> anyhow::Result<&[Endpoint]> {
    let endpoints = &resolved.registry.endpoints;
    let first = endpoints
        .iter()
        .position(|e| e.host == resolved.source)
        .unwrap_or(endpoints.len().saturating_sub(1));
    endpoints
        .get(first..)
        .filter(|rest| !rest.is_empty())
        .context("no registry to pull from")
}

/// The blocking side: one thread decompresses the layers in order while this one applies
/// them, each once the one below is complete.
fn apply_all(
    mut sink: Box<dyn LayerSink>,
    layers: &[LayerDesc],
    pipes: Vec<PipeReceiver>,
    abort: &Abort,
) -> Result<Vec<LayerStats>, (Option<usize>, anyhow::Error)> {
    let (inflater, mut blocks) = inflate::channel();
    std::thread::scope(|scope| {
        let inflating = std::thread::Builder::new()
            .name("inflate".into())
            .spawn_scoped(scope, || inflater.run(layers, pipes, abort))
            .map_err(|e| {
                (
                    None,
                    anyhow::Error::from(e).context("cannot start decompressing"),
                )
            })?;
        let applied = apply_each(sink.as_mut(), layers, &mut blocks, abort);
        // Hanging up lets the inflater stop if the applier gave up early.
        drop(blocks);
        let inflated = inflating
            .join()
            .map_err(|_| (None, anyhow::anyhow!("the decompression thread panicked")))?;
        match (applied, inflated) {
            (Ok(all), Ok(())) => Ok(all),
            // The lowest failing layer's cause; on the same layer the inflater's, which saw
            // the bytes first.
            (Err((at, _)), Err((layer, cause))) if layer <= at => Err((Some(layer), cause)),
            (Err((at, err)), _) => Err((Some(at), err)),
            (Ok(_), Err((layer, cause))) => Err((Some(layer), cause)),
        }
    })
}

/// Applies each layer's tar stream from `blocks`; a layer counts once its blob was read to
/// its verified end.
fn apply_each(
    sink: &mut dyn LayerSink,
    layers: &[LayerDesc],
    blocks: &mut LayerBlocks,
    abort: &Abort,
) -> Result<Vec<LayerStats>, (usize, anyhow::Error)> {
    let mut all = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let applied = sink.apply_layer(blocks).and_then(|stats| {
            // The tar end marker comes before the end of the blob.
            io::copy(blocks, &mut io::sink()).context("reading the rest of the layer")?;
            Ok(stats)
        });
        let stats = applied.map_err(|e| {
            // Blobs below this one are verified already: only this one's download is
            // worth finishing for its digest.
            abort.set_applying(index);
            abort.set(format!("{e:#}"));
            (index, e)
        })?;
        blocks.next_layer();
        super::progress::clear_terminal_line();
        tracing::info!(
            layer = index + 1,
            digest = %layer.digest,
            entries = stats.entries,
            whiteouts = stats.whiteouts,
            bytes = stats.bytes,
            "layer applied"
        );
        all.push(stats);
    }
    Ok(all)
}

/// A blocking `Read` over one layer's chunks; errors unless the download ended cleanly, so
/// its end is the end of a blob whose size and digest were verified.
pub(crate) struct ChannelReader<'a> {
    rx: PipeReceiver,
    current: Bytes,
    /// The pipe room `current` occupies, given back once it is consumed.
    _room: Option<OwnedSemaphorePermit>,
    ended: bool,
    abort: &'a Abort,
    /// A copy of every byte received and the blob's announced size, while one is wanted
    /// (see [`Self::keeping`]).
    kept: Option<(Vec<u8>, usize)>,
}

impl<'a> ChannelReader<'a> {
    /// Reads what the download feeding `rx` sends; stops early with the reason once `abort`
    /// has one.
    pub(crate) fn new(rx: PipeReceiver, abort: &'a Abort) -> Self {
        Self {
            rx,
            current: Bytes::new(),
            _room: None,
            ended: false,
            abort,
            kept: None,
        }
    }

    /// Also keeps a copy of the blob, which is `size` bytes, for [`Self::into_kept`].
    pub(crate) fn keeping(mut self, size: u64) -> Self {
        self.kept = usize::try_from(size)
            .ok()
            .map(|size| (Vec::with_capacity(size), size));
        self
    }

    /// Reads the rest of the blob, then gives the copy [`Self::keeping`] asked for: the whole
    /// blob, or None when it was not asked for or more or fewer bytes came than announced.
    pub(crate) fn into_kept(mut self) -> io::Result<Option<Bytes>> {
        loop {
            let left = self.fill_buf()?.len();
            if left == 0 {
                break;
            }
            self.consume(left);
        }
        Ok(self
            .kept
            .take()
            .filter(|(kept, size)| kept.len() == *size)
            .map(|(kept, _)| Bytes::from(kept)))
    }
}

impl BufRead for ChannelReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(&[]);
            }
            if let Some(why) = self.abort.reason() {
                return Err(io::Error::other(why));
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(bytes, room)) => {
                    if let Some((kept, size)) = &mut self.kept {
                        if kept.len() + bytes.len() <= *size {
                            kept.extend_from_slice(&bytes);
                        } else {
                            self.kept = None;
                        }
                    }
                    self.current = bytes;
                    self._room = Some(room);
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(why)) => return Err(io::Error::other(why)),
                None => return Err(io::Error::other("layer download stopped before its end")),
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        let _ = self.current.split_to(amount.min(self.current.len()));
    }
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = buf.len().min(available.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::pipe::pipe;

    /// A reader over a pipe that got `chunks` and then `last`, keeping a copy of a blob of
    /// `size` bytes of which `read` are read before the rest is drained.
    async fn kept_after(
        chunks: &[&'static [u8]],
        last: Chunk,
        size: u64,
        read: usize,
    ) -> Option<Bytes> {
        let (tx, rx) = pipe(1 << 20);
        for chunk in chunks {
            tx.send_data(Bytes::from_static(chunk)).await.unwrap();
        }
        tx.send(last).unwrap();
        tokio::task::spawn_blocking(move || {
            let abort = Abort::default();
            let mut reader = ChannelReader::new(rx, &abort).keeping(size);
            let mut start = vec![0; read];
            reader.read_exact(&mut start).unwrap();
            reader.into_kept().ok().flatten()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_copy_is_the_whole_blob_or_nothing() {
        let whole = kept_after(&[b"abc", b"defg"], Chunk::End, 7, 2).await;
        assert_eq!(whole.as_deref(), Some(&b"abcdefg"[..]), "read to its end");
        assert_eq!(kept_after(&[b"abc", b"defg"], Chunk::End, 6, 1).await, None);
        assert_eq!(kept_after(&[b"abc", b"defg"], Chunk::End, 8, 1).await, None);
        let failed = Chunk::Failed("digest mismatch".into());
        assert_eq!(kept_after(&[b"abc", b"defg"], failed, 7, 1).await, None);
    }
}
