//! The pull pipeline: layers download in parallel (bounded) while blocking threads decompress
//! and apply them strictly in order, fed through pipes bounded in bytes. Downloads may start
//! before the target exists ([`pull_when_ready`]): they fill their pipes meanwhile.
//!
//! Bytes are applied while they stream, so a digest mismatch is only certain once a layer
//! has (partly) been applied: the error then stops the pull and the caller must discard the
//! tree (the installer recreates the filesystem anyway).

use super::apply::{Applier, LayerStats};
use super::download::{Abort, LayerDownload};
use super::pipe::{pipe, Chunk, PipeReceiver};
use super::progress::Progress;
use super::pull_error::PullError;
use super::reference::parse_reference;
use super::registry::Registry;
use super::resolve::{Compression, LayerDesc, ResolvedImage};
use super::PullOptions;
use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{self, BufReader, Read};
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
    let reference = parse_reference(&resolved.reference)?;
    let registry = Registry::connect(&reference, opts)?;
    // The source that resolved the image first, then the ones after it (the origin last):
    // a mirror that fails mid-pull hands the rest of the blob to the next source.
    let first = registry
        .endpoints
        .iter()
        .position(|e| e.host == resolved.source)
        .unwrap_or(registry.endpoints.len().saturating_sub(1));
    let endpoints = registry
        .endpoints
        .get(first..)
        .filter(|rest| !rest.is_empty())
        .context("no registry to pull from")?;
    // Blob requests only authenticate with credentials the client already holds.
    for endpoint in endpoints {
        registry
            .client
            .store_auth_if_needed(endpoint.reference.resolve_registry(), &endpoint.auth)
            .await;
    }

    let layers = resolved.layers.clone();
    let progress = Progress::new(layers.iter().map(|l| l.size).collect());
    let abort = Arc::new(Abort::default());
    let (senders, receivers): (Vec<_>, Vec<_>) =
        layers.iter().map(|_| pipe(opts.layer_buffer)).unzip();

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
            LayerDownload {
                registry: &registry,
                endpoints,
                layer,
                index,
                progress: Arc::clone(&progress),
                abort: Arc::clone(&abort),
            }
            .run(tx)
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
            downloaded_bytes: progress.downloaded(),
            elapsed: started.elapsed(),
        }),
    }
}

/// The blocking side: decompress and apply each layer in order.
fn apply_all(
    mut sink: Box<dyn LayerSink>,
    layers: &[LayerDesc],
    receivers: Vec<PipeReceiver>,
    abort: &Abort,
) -> Result<Vec<LayerStats>, (Option<usize>, anyhow::Error)> {
    let mut all = Vec::with_capacity(layers.len());
    for (index, (layer, rx)) in layers.iter().zip(receivers).enumerate() {
        abort.set_applying(index);
        let mut raw = ChannelReader {
            rx,
            current: Bytes::new(),
            _room: None,
            ended: false,
            abort,
        };
        let stats = apply_one(sink.as_mut(), layer, &mut raw).map_err(|e| {
            abort.set(format!("{e:#}"));
            (Some(index), e)
        })?;
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

/// Decompressed data moves from the decompression thread to the applier in blocks of this
/// size, at most [`BLOCKS_IN_FLIGHT`] at a time: inflating overlaps with the applier's writes.
const BLOCK_SIZE: usize = 256 * 1024;
const BLOCKS_IN_FLIGHT: usize = 8;

type Block = io::Result<Vec<u8>>;

/// Applies one layer: a scoped thread decompresses, this one applies.
fn apply_one(
    sink: &mut dyn LayerSink,
    layer: &LayerDesc,
    raw: &mut ChannelReader<'_>,
) -> anyhow::Result<LayerStats> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(BLOCKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let decompressor = scope.spawn(move || decompress(layer.compression, raw, tx));
        let mut tar = BlockReader {
            rx,
            current: Vec::new(),
            pos: 0,
        };
        let applied = sink.apply_layer(&mut tar).and_then(|stats| {
            // The tar end marker may come before the end of the blob: read on, so that the
            // whole blob is downloaded and its digest checked before the layer counts.
            io::copy(&mut tar, &mut io::sink()).context("reading the rest of the layer")?;
            Ok(stats)
        });
        // Hanging up lets the decompressor stop if the applier gave up early.
        drop(tar);
        let decompressed = decompressor
            .join()
            .map_err(|_| anyhow::anyhow!("the decompression thread panicked"))?;
        decompressed?;
        applied
    })
}

/// Decompresses `raw` into blocks, then reads `raw` to its verified end; the first error is
/// also passed on to the applier.
fn decompress(
    compression: Compression,
    raw: &mut ChannelReader<'_>,
    tx: std::sync::mpsc::SyncSender<Block>,
) -> anyhow::Result<()> {
    let result = decompress_into(compression, raw, &tx);
    if let Err(err) = &result {
        let _ = tx.send(Err(io::Error::other(format!("{err:#}"))));
    }
    result
}

fn decompress_into(
    compression: Compression,
    raw: &mut ChannelReader<'_>,
    tx: &std::sync::mpsc::SyncSender<Block>,
) -> anyhow::Result<()> {
    let input = BufReader::with_capacity(BLOCK_SIZE, &mut *raw);
    let mut tar: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).context("cannot start zstd")?)
        }
    };
    loop {
        let block = read_block(&mut tar)?;
        if block.is_empty() {
            break;
        }
        if tx.send(Ok(block)).is_err() {
            // The applier stopped; its own error is the one reported.
            return Ok(());
        }
    }
    drop(tar);
    io::copy(raw, &mut io::sink())?;
    Ok(())
}

/// Reads up to [`BLOCK_SIZE`] bytes; empty at the end.
fn read_block(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut block = vec![0u8; BLOCK_SIZE];
    let mut filled = 0;
    while filled < BLOCK_SIZE {
        match input.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    block.truncate(filled);
    Ok(block)
}

/// The applier's side of the block channel; the end of the channel is the end of the tar.
struct BlockReader {
    rx: std::sync::mpsc::Receiver<Block>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for BlockReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(block) => {
                    self.current = block?;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A blocking `Read` over one layer's chunks; errors unless the download ended cleanly.
struct ChannelReader<'a> {
    rx: PipeReceiver,
    current: Bytes,
    /// The pipe room `current` occupies, given back once it is consumed.
    _room: Option<OwnedSemaphorePermit>,
    ended: bool,
    abort: &'a Abort,
}

impl Read for ChannelReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            if let Some(why) = self.abort.reason() {
                return Err(io::Error::other(why));
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(bytes, room)) => {
                    self.current = bytes;
                    self._room = Some(room);
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::Failed(why)) => return Err(io::Error::other(why)),
                None => return Err(io::Error::other("layer download stopped before its end")),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
