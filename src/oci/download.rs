//! Streams one layer blob from the registry into a bounded channel, verifying size and
//! digest on the way and resuming with a Range request after a dropped connection.

use super::endpoint::{Endpoint, Failure};
use super::http::next_chunk;
use super::pipe::{Chunk, PipeSender};
use super::progress::Progress;
use super::pull_error::PullError;
use super::registry::Registry;
use super::resolve::LayerDesc;
use super::verify::BlobVerifier;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The first failure of any download or of the applier, so that everyone else stops early;
/// and the layer being applied, whose download finishes verifying even after a failure.
pub(crate) struct Abort {
    reason: Mutex<Option<String>>,
    applying: AtomicUsize,
}

impl Default for Abort {
    fn default() -> Self {
        Self {
            reason: Mutex::new(None),
            // No layer is being applied before the sink is open.
            applying: AtomicUsize::new(usize::MAX),
        }
    }
}

impl Abort {
    /// Records a failure (the first one wins).
    pub fn set(&self, why: String) {
        if let Ok(mut slot) = self.reason.lock() {
            slot.get_or_insert(why);
        }
    }

    /// The recorded failure, if any.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().ok().and_then(|slot| slot.clone())
    }

    /// Marks layer `index` as the one being applied.
    pub fn set_applying(&self, index: usize) {
        self.applying.store(index, Ordering::Relaxed);
    }

    fn is_applying(&self, index: usize) -> bool {
        self.applying.load(Ordering::Relaxed) == index
    }
}

/// Why one streaming attempt stopped.
enum Interrupted {
    /// Worth resuming; the registry may have said when.
    Transient(String, Option<Duration>),
    Fatal(PullError),
    /// The applier hung up (it failed or finished): nothing more to do.
    ConsumerGone,
}

impl From<Failure> for Interrupted {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transient(cause, retry_after) => Self::Transient(cause, retry_after),
            Failure::Fatal(err) => Self::Fatal(err),
        }
    }
}

/// Where one layer comes from and where its bytes go.
pub(crate) struct LayerDownload<'a> {
    pub registry: &'a Registry,
    /// Where the blob can come from, in order of preference; the next one takes over when
    /// one gives up (every source serves the same digest-verified bytes).
    pub endpoints: &'a [Endpoint],
    pub layer: &'a LayerDesc,
    pub index: usize,
    pub progress: Arc<Progress>,
    pub abort: Arc<Abort>,
}

impl LayerDownload<'_> {
    /// Downloads the layer into `tx`, ending with [`Chunk::End`] or [`Chunk::Failed`].
    pub async fn run(self, tx: PipeSender) -> Result<(), PullError> {
        match self.stream_all(&tx).await {
            Ok(()) => {
                // The applier may have stopped already; that is reported on its side.
                let _ = tx.send(Chunk::End);
                Ok(())
            }
            Err(err) => {
                self.abort.set(err.to_string());
                let _ = tx.send(Chunk::Failed(err.to_string()));
                Err(err)
            }
        }
    }

    async fn stream_all(&self, tx: &PipeSender) -> Result<(), PullError> {
        let mut verifier = BlobVerifier::new("layer", &self.layer.digest, self.layer.size)?;
        let mut sources = self.endpoints.iter().peekable();
        while let Some(endpoint) = sources.next() {
            match self.stream_from(endpoint, &mut verifier, tx).await {
                Ok(()) => break,
                // Wrong bytes are wrong whatever their source.
                Err(err @ PullError::Verification { .. }) => return Err(err),
                Err(err) => match sources.peek() {
                    Some(next) if self.abort.reason().is_none() => tracing::warn!(
                        layer = %self.layer.digest,
                        at = verifier.received(),
                        "{err}; continuing from {}",
                        next.host
                    ),
                    _ => return Err(err),
                },
            }
        }
        if verifier.remaining() > 0 {
            // Another download or the applier failed first; that failure is reported.
            return Ok(());
        }
        verifier.finish()
    }

    /// Streams what is still missing from `endpoint`, retrying and resuming transient
    /// failures; returns when the blob is complete or the pull is aborted.
    async fn stream_from(
        &self,
        endpoint: &Endpoint,
        verifier: &mut BlobVerifier,
        tx: &PipeSender,
    ) -> Result<(), PullError> {
        let policy = &self.registry.retry;
        let mut attempt = 1;
        while verifier.remaining() > 0 {
            let before = verifier.received();
            match self.stream_once(endpoint, verifier, tx).await {
                Ok(()) => {}
                Err(Interrupted::ConsumerGone) => return Ok(()),
                Err(Interrupted::Fatal(err)) => return Err(err),
                Err(Interrupted::Transient(cause, retry_after)) => {
                    if self.abort.reason().is_some() {
                        return Ok(());
                    }
                    // Progress earns a fresh set of attempts: only stalls give up.
                    if verifier.received() > before {
                        attempt = 1;
                    }
                    if attempt >= policy.attempts {
                        return Err(PullError::Unavailable {
                            registry: endpoint.host.clone(),
                            attempts: attempt,
                            cause: format!("layer {}: {cause}", self.layer.digest),
                        });
                    }
                    let delay = policy.wait(attempt, retry_after);
                    tracing::warn!(
                        layer = %self.layer.digest,
                        at = verifier.received(),
                        ?delay,
                        "{cause}; resuming"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
        Ok(())
    }

    /// One request from the current offset to the end of the blob.
    async fn stream_once(
        &self,
        endpoint: &Endpoint,
        verifier: &mut BlobVerifier,
        tx: &PipeSender,
    ) -> Result<(), Interrupted> {
        let offset = verifier.received();
        let registry = self.registry;
        let digest = self.layer.digest.as_str();
        let remaining = verifier.remaining();
        let mut response = registry
            .http
            .get_range(endpoint, digest, offset, remaining)
            .await?;
        // A registry that ignores the range sends the whole blob: skip what was applied.
        let mut skip = if response.partial { 0 } else { offset };
        let mut sending = true;
        while verifier.remaining() > 0 {
            // When the applier failed on this very layer (say, a gzip error), read the blob
            // to its end anyway: a digest mismatch is the cause worth reporting.
            if self.abort.reason().is_some() {
                if !self.abort.is_applying(self.index) {
                    return Err(Interrupted::ConsumerGone);
                }
                sending = false;
            }
            let mut bytes = match next_chunk(&mut response.response).await? {
                Some(bytes) => bytes,
                None => {
                    return Err(Interrupted::Transient(
                        format!(
                            "connection closed after {} of {} bytes",
                            verifier.received(),
                            self.layer.size
                        ),
                        None,
                    ))
                }
            };
            if skip > 0 {
                let dropped = skip.min(bytes.len() as u64);
                let _ = bytes.split_to(dropped as usize);
                skip -= dropped;
            }
            if bytes.is_empty() {
                continue;
            }
            verifier.update(&bytes).map_err(Interrupted::Fatal)?;
            self.progress.add(self.index, bytes.len() as u64);
            if sending && tx.send_data(bytes).await.is_err() {
                if !self.abort.is_applying(self.index) {
                    return Err(Interrupted::ConsumerGone);
                }
                sending = false;
            }
        }
        Ok(())
    }
}
