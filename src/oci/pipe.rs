//! One layer's channel from its download to its application, bounded in bytes: a download
//! may run ahead of the applier by at most the pipe's capacity.

use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// What the applier side receives for one layer.
pub(crate) enum Chunk {
    /// The next compressed bytes, holding their share of the pipe's capacity.
    Data(Bytes, OwnedSemaphorePermit),
    /// All bytes sent and the blob verified.
    End,
    /// The download failed; the message says why.
    Failed(String),
}

/// The download's end of a pipe.
pub(crate) struct PipeSender {
    tx: mpsc::UnboundedSender<Chunk>,
    room: Arc<Semaphore>,
    capacity: usize,
}

/// The applier's end of a pipe. Dropping it releases a download waiting for room.
pub(crate) struct PipeReceiver {
    rx: mpsc::UnboundedReceiver<Chunk>,
    room: Arc<Semaphore>,
}

/// The receiver hung up.
#[derive(Debug)]
pub(crate) struct Closed;

/// A pipe that holds at most `capacity` bytes (at least one chunk, whatever its size).
pub(crate) fn pipe(capacity: usize) -> (PipeSender, PipeReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    (
        PipeSender {
            tx,
            room: Arc::clone(&room),
            capacity,
        },
        PipeReceiver { rx, room },
    )
}

impl PipeSender {
    /// Sends `bytes` once there is room for them.
    pub async fn send_data(&self, bytes: Bytes) -> Result<(), Closed> {
        let wanted = bytes.len().clamp(1, self.capacity) as u32;
        let permit = Arc::clone(&self.room)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| Closed)?;
        self.tx.send(Chunk::Data(bytes, permit)).map_err(|_| Closed)
    }

    /// Sends the end marker or a failure (they take no room).
    pub fn send(&self, chunk: Chunk) -> Result<(), Closed> {
        self.tx.send(chunk).map_err(|_| Closed)
    }
}

impl PipeReceiver {
    /// The next chunk, blocking the calling (non-async) thread; None when the sender is gone.
    pub fn blocking_recv(&mut self) -> Option<Chunk> {
        self.rx.blocking_recv()
    }
}

impl Drop for PipeReceiver {
    fn drop(&mut self) {
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_pipe_makes_the_sender_wait_until_bytes_are_consumed() {
        let (tx, mut rx) = pipe(10);
        tx.send_data(Bytes::from_static(b"12345678")).await.unwrap();
        let blocked = tokio::time::timeout(
            Duration::from_millis(50),
            tx.send_data(Bytes::from_static(b"abc")),
        )
        .await;
        assert!(blocked.is_err(), "11 bytes fit into a 10-byte pipe");
        let first = tokio::task::spawn_blocking(move || {
            let chunk = rx.blocking_recv();
            drop(chunk);
            rx
        })
        .await
        .unwrap();
        tx.send_data(Bytes::from_static(b"abc")).await.unwrap();
        drop(first);
    }

    #[tokio::test]
    async fn a_chunk_larger_than_the_pipe_still_passes() {
        let (tx, mut rx) = pipe(4);
        tx.send_data(Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        tx.send(Chunk::End).unwrap();
        let got = tokio::task::spawn_blocking(move || match rx.blocking_recv() {
            Some(Chunk::Data(bytes, _)) => bytes,
            _ => panic!("expected data"),
        })
        .await
        .unwrap();
        assert_eq!(&got[..], b"0123456789");
    }

    #[tokio::test]
    async fn a_dropped_receiver_releases_a_waiting_sender() {
        let (tx, rx) = pipe(4);
        tx.send_data(Bytes::from_static(b"1234")).await.unwrap();
        let waiting = tokio::spawn(async move { tx.send_data(Bytes::from_static(b"5")).await });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(waiting.await.unwrap().is_err());
    }
}
