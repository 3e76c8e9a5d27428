//! A budget of unwritten file content: dirty pages must not pile up in a ramdisk's memory.
//!
//! Starting write-back file by file (`sync_file_range`) as soon as each is written keeps an
//! ext4 journal busy with data write-out (data=ordered), and every create then waits for it:
//! on an ordinary ext4 that made the pull several times slower. Instead, each time another
//! [`DIRTY_BUDGET`] bytes of content have been written, one background thread flushes the
//! whole file system (`syncfs`) while the layers go on; if that flush is still running when
//! the next budget is spent, the applier waits for it. So at most about twice the budget is
//! dirty on the applier's account, and the flushes are few and large.

use std::os::fd::{AsRawFd, OwnedFd};
use std::thread::JoinHandle;

/// Bytes of file content written between two flushes.
pub const DIRTY_BUDGET: u64 = 128 << 20;

/// Counts content written and flushes the file system every [`DIRTY_BUDGET`] bytes.
pub(super) struct DirtyBudget {
    /// A descriptor on the target file system (`syncfs` needs one that is not `O_PATH`).
    fs: std::sync::Arc<OwnedFd>,
    unflushed: u64,
    running: Option<JoinHandle<()>>,
}

impl DirtyBudget {
    pub(super) fn new(fs: OwnedFd) -> Self {
        Self {
            fs: std::sync::Arc::new(fs),
            unflushed: 0,
            running: None,
        }
    }

    /// Counts `bytes` of content written; starts a flush when the budget is spent.
    pub(super) fn wrote(&mut self, bytes: u64) {
        self.unflushed += bytes;
        if self.unflushed < DIRTY_BUDGET {
            return;
        }
        self.unflushed = 0;
        self.wait();
        let fs = std::sync::Arc::clone(&self.fs);
        // Failing to start (or finish) a flush only loses the head start: the caller's
        // final sync or unmount writes everything anyway.
        self.running = std::thread::Builder::new()
            .name("apply-flush".into())
            .spawn(move || {
                // SAFETY: a plain syscall on an open descriptor.
                unsafe { libc::syncfs(fs.as_raw_fd()) };
            })
            .ok();
    }

    /// Waits for the flush under way, if any.
    pub(super) fn wait(&mut self) {
        if let Some(flush) = self.running.take() {
            let _ = flush.join();
        }
    }
}

impl Drop for DirtyBudget {
    fn drop(&mut self) {
        self.wait();
    }
}
