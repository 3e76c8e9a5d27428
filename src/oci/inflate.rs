//! Decompression of the layer blobs, in order, on one thread of its own: it inflates the next
//! layer while the applier is still finishing the previous one, and hands the applier blocks
//! that read as one tar stream per layer. Blocks are bounded in number and come back for
//! reuse, so memory stays fixed whatever the layers hold.

use super::download::Abort;
use super::pipe::PipeReceiver;
use super::pull::ChannelReader;
use super::resolve::{Compression, LayerDesc};
use anyhow::Context;
use std::io::{self, BufRead, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

/// Decompressed data moves to the applier in blocks of this size, at most
/// [`BLOCKS_IN_FLIGHT`] (8 MiB) at a time: enough to ride out a few scheduler time slices
/// of an applier that is not running.
const BLOCK_SIZE: usize = 256 * 1024;
const BLOCKS_IN_FLIGHT: usize = 32;

/// How many `nice` levels the inflater runs above the pull's other threads (when allowed).
const INFLATER_BOOST: libc::c_int = 10;

/// What the inflater sends the applier.
enum Piece {
    /// The next decompressed bytes of the current layer.
    Data(Vec<u8>),
    /// The current layer's blob was read to its verified end.
    LayerEnd,
    /// The current layer could not be read; the inflater has stopped.
    Failed(io::Error),
}

/// A layer the inflater could not read, by index, and why.
pub(super) type InflateFailure = (usize, anyhow::Error);

/// The two ends of the block channel between the inflater and the applier.
pub(super) fn channel() -> (Inflater, LayerBlocks) {
    let (tx, rx) = mpsc::sync_channel(BLOCKS_IN_FLIGHT);
    // Consumed blocks go back to the inflater, which then need not allocate and zero a
    // fresh one for every block.
    let (recycle, recycled) = mpsc::channel();
    (
        Inflater { tx, recycled },
        LayerBlocks {
            rx,
            recycle,
            current: Vec::new(),
            pos: 0,
            at_end: false,
        },
    )
}

/// The decompressing end.
pub(super) struct Inflater {
    tx: SyncSender<Piece>,
    recycled: Receiver<Vec<u8>>,
}

impl Inflater {
    /// Decompresses each layer's blob from its pipe, in order, each read to its verified
    /// end; stops early, without error, when the applier hangs up. The first failure is
    /// also passed on to the applier.
    pub fn run(
        self,
        layers: &[LayerDesc],
        pipes: Vec<PipeReceiver>,
        abort: &Abort,
    ) -> Result<(), InflateFailure> {
        // Inflating is the one step that cannot be spread over threads: whatever else wants
        // the CPUs (downloads, the applier, the writers) waits for it, not it for them.
        super::priority::shift_this_thread(-INFLATER_BOOST);
        for (index, (layer, pipe)) in layers.iter().zip(pipes).enumerate() {
            // The download of the blob being read finishes verifying even after a failure.
            abort.set_applying(index);
            let mut raw = ChannelReader::new(pipe, abort);
            match self.layer(layer.compression, &mut raw) {
                Ok(Sent::All) => {}
                Ok(Sent::ReaderGone) => return Ok(()),
                Err(err) => {
                    let _ = self
                        .tx
                        .send(Piece::Failed(io::Error::other(format!("{err:#}"))));
                    return Err((index, err));
                }
            }
        }
        Ok(())
    }

    fn layer(&self, compression: Compression, raw: &mut ChannelReader<'_>) -> anyhow::Result<Sent> {
        let mut tar = decompressed(compression, &mut *raw)?;
        loop {
            let mut block = self.take();
            let filled = fill(&mut tar, &mut block)?;
            if filled == 0 {
                break;
            }
            block.truncate(filled);
            if self.tx.send(Piece::Data(block)).is_err() {
                return Ok(Sent::ReaderGone);
            }
        }
        drop(tar);
        // The tar end marker and the compressed stream's end may come before the blob's.
        io::copy(raw, &mut io::sink()).context("reading the rest of the layer")?;
        Ok(match self.tx.send(Piece::LayerEnd) {
            Ok(()) => Sent::All,
            Err(_) => Sent::ReaderGone,
        })
    }

    /// An empty block of [`BLOCK_SIZE`] bytes, reused when the applier has given one back.
    fn take(&self) -> Vec<u8> {
        let mut block = self
            .recycled
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BLOCK_SIZE));
        block.resize(BLOCK_SIZE, 0);
        block
    }
}

/// How far one layer got to the applier.
enum Sent {
    All,
    /// The applier stopped reading; its own error is the one reported.
    ReaderGone,
}

/// The applier's end: reads one layer's tar stream up to its end, then (after
/// [`LayerBlocks::next_layer`]) the next one's.
pub(super) struct LayerBlocks {
    rx: Receiver<Piece>,
    recycle: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    at_end: bool,
}

impl LayerBlocks {
    /// Moves on to the next layer; only once this one was read to its end.
    pub fn next_layer(&mut self) {
        debug_assert!(self.at_end, "the layer was not read to its end");
        self.at_end = false;
    }
}

impl Read for LayerBlocks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.at_end {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Piece::Data(block)) => {
                    let used = std::mem::replace(&mut self.current, block);
                    if used.capacity() > 0 {
                        // The inflater may be gone already; then the block is dropped.
                        let _ = self.recycle.send(used);
                    }
                    self.pos = 0;
                }
                Ok(Piece::LayerEnd) => self.at_end = true,
                Ok(Piece::Failed(err)) => return Err(err),
                Err(_) => return Err(io::Error::other("the decompression stopped early")),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The uncompressed tar stream of a layer blob read from `raw`.
pub(crate) fn decompressed<'a>(
    compression: Compression,
    raw: impl BufRead + 'a,
) -> anyhow::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw).context("cannot start zstd")?)
        }
    })
}

/// Fills `block` as far as the input goes; the count is short only at the end.
pub(in crate::oci) fn fill(input: &mut dyn Read, block: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < block.len() {
        match input.read(&mut block[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}
