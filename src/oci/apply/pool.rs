//! Finishing files on a few threads: writing their content and setting their metadata.
//!
//! On a journalling file system each of those calls may wait for the journal; one thread doing
//! them all waits for every one in turn. The applier keeps every change to the namespace
//! (create, remove, link, rename of nothing) on its own thread, in archive order, and hands
//! each new file's open descriptor, content and metadata to a worker here. What a worker does
//! touches only that inode, through its descriptor, so a later member that removes, replaces
//! or hard-links the name sees the same tree as if the file had been finished at once.
//!
//! Work travels in batches: the content of many small files shares one buffer, and one
//! hand-over (one wake-up of a worker) carries up to [`FILES_PER_BATCH`] files. Handing over
//! each file on its own cost more in thread switches than writing it on a file system that
//! does not wait (tmpfs, or a disk's page cache).
//!
//! Memory is bounded: content travels in at most [`BUFFERS`] buffers of [`CHUNK`] bytes
//! (2 MiB in all), which the workers hand back for reuse; open descriptors are bounded by
//! the files per batch times the batches a worker may hold (queued, running and being filled).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write as _};
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _};
use nix::sys::stat::{fchmod, futimens, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, Gid, Uid};

use super::fsops;
use crate::oci::inflate::fill;

/// Worker threads. Their work is mostly waiting for the file system, so more than the CPUs.
pub(super) const WORKERS: usize = 4;
/// Size of the buffers file content is handed over in.
pub(super) const CHUNK: usize = 256 << 10;
/// Buffers of content being filled, queued or being written, at most.
const BUFFERS: usize = 8;
/// Files (each an open descriptor) in one batch, at most.
const FILES_PER_BATCH: usize = 16;
/// Batches waiting per worker, at most.
const QUEUE: usize = 2;
/// How much lower the writers' scheduling priority is (`nice`) than the applier's.
const WRITER_NICENESS: libc::c_int = 5;

/// Ownership, mode, extended attributes and times for a finished object.
pub(super) struct Metadata {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mode: u32,
    pub(super) xattrs: Vec<(CString, Vec<u8>)>,
    /// `None` for directories: their times are set once the layer is written.
    pub(super) times: Option<(TimeSpec, TimeSpec)>,
}

/// A file being handed over: its descriptor and member name.
pub(super) struct Target {
    pub(super) file: File,
    pub(super) name: Vec<u8>,
}

enum Job {
    /// Appends `content[start..end]` of the batch to a file.
    Write {
        target: Arc<Target>,
        start: usize,
        end: usize,
    },
    /// Sets the metadata, then closes the descriptor (with the last reference).
    Finish { target: Arc<Target>, meta: Metadata },
}

/// Jobs for one worker, done in order, and the buffer their content is in.
#[derive(Default)]
struct Batch {
    /// [`CHUNK`] bytes, of which the first `used` are content; taken when first needed.
    content: Option<Vec<u8>>,
    used: usize,
    jobs: Vec<Job>,
    files: usize,
    /// Counts the batch as pending from its hand-over until it is dropped, done or not.
    _pending: Option<Pending>,
}

impl Batch {
    /// Bytes left in its buffer; 0 before it has one.
    fn room(&self) -> usize {
        match self.content {
            Some(_) => CHUNK - self.used,
            None => 0,
        }
    }
}

/// One batch handed over and not yet done: counted in [`Shared::pending`] while it lives, so
/// that a batch dropped undone (a worker gone) does not hold a drain for ever.
struct Pending(Arc<Shared>);

impl Pending {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.pending.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(shared))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Taking the lock orders this wake-up after the drainer's check of `pending`.
            let _idle = self.0.idle.lock().unwrap();
            self.0.done.notify_all();
        }
    }
}

#[derive(Default)]
struct Shared {
    /// Batches handed over and not yet done.
    pending: AtomicUsize,
    /// Guards the wait for `pending` to reach zero.
    idle: Mutex<()>,
    done: Condvar,
    /// Set with the first failure; later jobs are skipped.
    failed: AtomicBool,
    failure: Mutex<Option<anyhow::Error>>,
    xattrs_skipped: AtomicU64,
}

/// The worker threads of one applier.
pub(super) struct Pool {
    senders: Vec<SyncSender<Batch>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Worker of the file being handed over: all jobs of one file go to one worker, in order.
    current: usize,
    /// The batch being filled for each worker.
    open: Vec<Batch>,
    /// Buffers the workers are done with.
    recycled: Receiver<Vec<u8>>,
    /// Buffers made so far, at most [`BUFFERS`].
    made: usize,
}

impl Pool {
    pub(super) fn new() -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::default());
        let (recycle, recycled) = channel();
        let mut senders = Vec::with_capacity(WORKERS);
        let mut threads = Vec::with_capacity(WORKERS);
        for index in 0..WORKERS {
            let (tx, rx) = sync_channel::<Batch>(QUEUE);
            let shared = Arc::clone(&shared);
            let recycle = recycle.clone();
            let thread = std::thread::Builder::new()
                .name(format!("apply-{index}"))
                .spawn(move || {
                    // The inflater and the applier feed every writer: on a target that
                    // never waits (tmpfs, a page cache) they are the critical path, and a
                    // writer that waits for a disk uses little CPU and loses nothing.
                    crate::oci::priority::shift_this_thread(WRITER_NICENESS);
                    for batch in rx {
                        if let Some(buffer) = shared.run(batch) {
                            // The pool may be gone already; then so is the need.
                            let _ = recycle.send(buffer);
                        }
                    }
                })
                .context("starting a layer writer thread")?;
            senders.push(tx);
            threads.push(thread);
        }
        Ok(Self {
            senders,
            threads,
            shared,
            current: 0,
            open: (0..WORKERS).map(|_| Batch::default()).collect(),
            recycled,
            made: 0,
        })
    }

    /// Chooses the worker for the next jobs by `key`: jobs with the same key go to the same
    /// worker, in order.
    pub(super) fn assign(&mut self, key: u64) {
        self.current = (key % self.senders.len() as u64) as usize;
    }

    /// Reads up to `max` bytes of `target`'s content from `content` and queues them; returns
    /// how many were read (0 only at the end of `content`, or when `max` is 0).
    pub(super) fn write_from(
        &mut self,
        target: &Arc<Target>,
        content: &mut dyn Read,
        max: u64,
    ) -> anyhow::Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        if self.open[self.current].room() == 0 {
            if self.open[self.current].content.is_some() {
                self.send(self.current)?;
            }
            let buffer = self.buffer()?;
            self.open[self.current].content = Some(buffer);
        }
        let batch = &mut self.open[self.current];
        let want = batch.room().min(usize::try_from(max).unwrap_or(usize::MAX));
        let start = batch.used;
        let buffer = batch.content.as_mut().expect("a buffer was just given");
        let read = fill(content, &mut buffer[start..start + want])
            .context("reading file content from the layer")?;
        if read == 0 {
            return Ok(0);
        }
        batch.used += read;
        match batch.jobs.last_mut() {
            Some(Job::Write {
                target: last, end, ..
            }) if Arc::ptr_eq(last, target) && *end == start => *end += read,
            _ => batch.jobs.push(Job::Write {
                target: Arc::clone(target),
                start,
                end: start + read,
            }),
        }
        Ok(read)
    }

    /// Queues the metadata of `target`, after its content.
    pub(super) fn finish(&mut self, target: Arc<Target>, meta: Metadata) -> anyhow::Result<()> {
        let batch = &mut self.open[self.current];
        batch.jobs.push(Job::Finish { target, meta });
        batch.files += 1;
        if batch.files >= FILES_PER_BATCH {
            self.send(self.current)?;
        }
        Ok(())
    }

    /// An empty buffer of [`CHUNK`] bytes, once one is free.
    fn buffer(&mut self) -> anyhow::Result<Vec<u8>> {
        if let Ok(buffer) = self.recycled.try_recv() {
            return Ok(buffer);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(vec![0; CHUNK]);
        }
        // Buffers in batches still being filled only come back once handed over.
        self.send_all()?;
        self.recycled
            .recv()
            .map_err(|_| anyhow!("the layer writer threads have stopped"))
    }

    /// Hands worker `index`'s open batch over, if it has jobs.
    fn send(&mut self, index: usize) -> anyhow::Result<()> {
        if self.open[index].jobs.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.open[index]);
        batch._pending = Some(Pending::new(&self.shared));
        self.senders[index]
            .send(batch)
            .map_err(|_| anyhow!("a layer writer thread has stopped"))
    }

    fn send_all(&mut self) -> anyhow::Result<()> {
        (0..self.open.len()).try_for_each(|index| self.send(index))
    }

    /// The first failure of a worker so far, if any.
    pub(super) fn failure(&self) -> anyhow::Result<()> {
        if !self.shared.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.shared.failure.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hands over everything queued and waits until it is done; returns the first failure,
    /// or how many extended attributes were skipped as unsupported since the last call.
    pub(super) fn drain(&mut self) -> anyhow::Result<u64> {
        let sent = self.send_all();
        let mut idle = self.shared.idle.lock().unwrap();
        while self.shared.pending.load(Ordering::SeqCst) > 0 {
            idle = self.shared.done.wait(idle).unwrap();
        }
        drop(idle);
        sent?;
        self.failure()?;
        Ok(self.shared.xattrs_skipped.swap(0, Ordering::Relaxed))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Does the jobs of `batch` unless a job failed before; returns its content buffer.
    fn run(&self, mut batch: Batch) -> Option<Vec<u8>> {
        let content = batch.content.take().unwrap_or_default();
        for job in std::mem::take(&mut batch.jobs) {
            // A skipped job still drops its reference, so the descriptor closes.
            if self.failed.load(Ordering::Acquire) {
                continue;
            }
            let (target, result) = match job {
                Job::Write { target, start, end } => {
                    let written = (&target.file).write_all(&content[start..end]);
                    (target, written.context("writing file content"))
                }
                Job::Finish { target, meta } => {
                    let result = self.set_metadata(&target.file, &target.name, &meta);
                    (target, result)
                }
            };
            if let Err(e) = result {
                let member = super::layer::lossy(&target.name);
                let e = e.context(format!("applying layer member `{member}`"));
                self.failure.lock().unwrap().get_or_insert(e);
                self.failed.store(true, Ordering::Release);
            }
        }
        (content.len() == CHUNK).then_some(content)
    }

    fn set_metadata(&self, file: &File, name: &[u8], meta: &Metadata) -> anyhow::Result<()> {
        // chown clears setuid/setgid and file capabilities, so it goes first.
        fchown(
            file,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )?;
        fchmod(file, Mode::from_bits_truncate(meta.mode))?;
        for (key, value) in &meta.xattrs {
            let result = fsops::set_xattr_fd(file.as_fd(), key, value);
            if fsops::xattr_skipped(result, key, name)? {
                self.xattrs_skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some((atime, mtime)) = &meta.times {
            futimens(file, atime, mtime)?;
        }
        Ok(())
    }
}
