//! Finishing files on a few threads: writing their content and setting their metadata.
//!
//! On a journalling file system each of those calls may wait for the journal; one thread doing
//! them all waits for every one in turn. The applier keeps every change to the namespace
//! (create, remove, link, rename of nothing) on its own thread, in archive order, and hands
//! each new file's open descriptor, content and metadata to a worker here. What a worker does
//! touches only that inode, through its descriptor, so a later member that removes, replaces
//! or hard-links the name sees the same tree as if the file had been finished at once.
//!
//! Memory is bounded: content travels in at most [`BUFFERS`] buffers of [`CHUNK`] bytes
//! (2 MiB in all), which the workers hand back for reuse, and at most [`QUEUE`] jobs wait per
//! worker.

use std::ffi::CString;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context as _};
use nix::sys::stat::{fchmod, futimens, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, Gid, Uid};

use super::fsops;

/// Worker threads. Their work is mostly waiting for the file system, so more than the CPUs.
pub(super) const WORKERS: usize = 4;
/// Size of the buffers file content is handed over in.
pub(super) const CHUNK: usize = 256 << 10;
/// Buffers of content queued or being written, at most.
const BUFFERS: usize = 8;
/// Jobs waiting per worker, at most: each holds an open descriptor.
const QUEUE: usize = 32;

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
    /// Appends content to a file.
    Write { target: Arc<Target>, data: Vec<u8> },
    /// Sets the metadata, then closes the descriptor (with the last reference).
    Finish { target: Arc<Target>, meta: Metadata },
}

#[derive(Default)]
struct Shared {
    /// Jobs not yet done.
    jobs: Mutex<usize>,
    done: Condvar,
    /// The first failure; later jobs are skipped once it is set.
    failure: Mutex<Option<anyhow::Error>>,
    xattrs_skipped: AtomicU64,
}

/// The worker threads of one applier.
pub(super) struct Pool {
    senders: Vec<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Worker of the file being handed over: all jobs of one file go to one worker, in order.
    current: usize,
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
            let (tx, rx) = sync_channel::<Job>(QUEUE);
            let shared = Arc::clone(&shared);
            let recycle = recycle.clone();
            let thread = std::thread::Builder::new()
                .name(format!("apply-{index}"))
                .spawn(move || {
                    for job in rx {
                        if let Some(buffer) = shared.run(job) {
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
            recycled,
            made: 0,
        })
    }

    /// Chooses the worker for the next jobs by `key`: jobs with the same key go to the same
    /// worker, in order.
    pub(super) fn assign(&mut self, key: u64) {
        self.current = (key % self.senders.len() as u64) as usize;
    }

    /// An empty buffer of [`CHUNK`] bytes' capacity, once one is free.
    pub(super) fn buffer(&mut self) -> anyhow::Result<Vec<u8>> {
        if let Ok(buffer) = self.recycled.try_recv() {
            return Ok(buffer);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Ok(Vec::with_capacity(CHUNK));
        }
        self.recycled
            .recv()
            .map_err(|_| anyhow!("the layer writer threads have stopped"))
    }

    /// Takes back a buffer that was not sent.
    pub(super) fn give_back(&mut self, buffer: Vec<u8>) {
        self.made -= 1;
        drop(buffer);
    }

    /// Queues content for `target`, in a buffer from [`buffer`](Self::buffer).
    pub(super) fn write(&mut self, target: &Arc<Target>, data: Vec<u8>) -> anyhow::Result<()> {
        self.send(Job::Write {
            target: Arc::clone(target),
            data,
        })
    }

    /// Queues the metadata of `target`, after its content.
    pub(super) fn finish(&mut self, target: Arc<Target>, meta: Metadata) -> anyhow::Result<()> {
        self.send(Job::Finish { target, meta })
    }

    fn send(&mut self, job: Job) -> anyhow::Result<()> {
        *self.shared.jobs.lock().unwrap() += 1;
        self.senders[self.current]
            .send(job)
            .map_err(|_| anyhow!("a layer writer thread has stopped"))
    }

    /// The first failure of a worker so far, if any.
    pub(super) fn failure(&self) -> anyhow::Result<()> {
        match self.shared.failure.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until every job handed over is done; returns the first failure, or how many
    /// extended attributes were skipped as unsupported since the last call.
    pub(super) fn drain(&self) -> anyhow::Result<u64> {
        let mut jobs = self.shared.jobs.lock().unwrap();
        while *jobs > 0 {
            jobs = self.shared.done.wait(jobs).unwrap();
        }
        drop(jobs);
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
    /// Does `job` unless a job failed before; returns the emptied content buffer.
    fn run(&self, job: Job) -> Option<Vec<u8>> {
        let failed = self.failure.lock().unwrap().is_some();
        let (target, result, buffer) = match job {
            Job::Write { target, mut data } => {
                let result = match failed {
                    true => Ok(()),
                    false => (&target.file)
                        .write_all(&data)
                        .context("writing file content"),
                };
                data.clear();
                (target, result, Some(data))
            }
            Job::Finish { target, meta } => {
                let result = match failed {
                    true => Ok(()),
                    false => self.set_metadata(&target.file, &target.name, &meta),
                };
                (target, result, None)
            }
        };
        if let Err(e) = result {
            let member = super::layer::lossy(&target.name);
            let e = e.context(format!("applying layer member `{member}`"));
            self.failure.lock().unwrap().get_or_insert(e);
        }
        drop(target);
        *self.jobs.lock().unwrap() -= 1;
        self.done.notify_all();
        buffer
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
