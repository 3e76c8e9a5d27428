//! OCI registry pull and confined layer application.
//!
//! [`resolve`] checks an image (reference, manifest, platform) without downloading layers;
//! [`peek`] reads which os-release its topmost layers give, within limits, without applying
//! anything (and keeps the layers it read for the pull, within a memory limit);
//! [`pull_into`] then streams, verifies, decompresses and applies the layers in order.

pub mod apply;
mod as_text;
pub mod auth;
pub mod cli;
mod download;
mod endpoint;
mod http;
mod inflate;
mod kept;
pub mod peek;
mod pipe;
pub mod platform;
mod priority;
mod progress;
pub mod pull;
pub mod pull_error;
pub mod reference;
pub mod registry;
pub mod resolve;
pub mod secret;
mod token;
pub mod verify;

pub use http::RequestTimeLimits;
pub use kept::VerifiedBlob;
pub use platform::Platform;
pub use pull::{pull_into, pull_into_sink, pull_when_ready, LayerSink, PullReport};
pub use pull_error::PullError;
pub use reference::{normalize_reference, ImageRef};
pub use registry::RetryPolicy;
pub use resolve::{resolve, resolve_image, Compression, LayerDesc, ResolvedImage};
pub use secret::Secret;

use serde::Serialize;
use std::path::PathBuf;

/// How ocimetal introduces itself to registries.
pub(crate) const USER_AGENT: &str = concat!("ocimetal/", env!("CARGO_PKG_VERSION"));

/// Layers downloaded at once by default.
pub const DEFAULT_PARALLEL_DOWNLOADS: usize = 3;

/// Compressed bytes a layer's download may run ahead of its application by default.
pub const DEFAULT_LAYER_BUFFER: usize = 4 << 20;

/// Told the bytes downloaded and the total, about once a second during a pull.
#[derive(Clone)]
pub struct ProgressObserver(pub std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for ProgressObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressObserver")
    }
}

/// A registry mirror: pulls from `registry` try `endpoint` first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryMirror {
    /// Registry host as it appears in normalised references, e.g. `docker.io`.
    pub registry: String,
    /// Mirror base URL, e.g. `http://10.0.2.2:5000`; printed without a password.
    #[serde(serialize_with = "serialize_without_password")]
    pub endpoint: String,
}

/// A mirror's URL as printed: its password replaced (mirrors are validated http(s) URLs).
fn serialize_without_password<S: serde::Serializer>(
    endpoint: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url::Url::parse(endpoint) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            s.serialize_str(url.as_str())
        }
        _ => s.serialize_str(endpoint),
    }
}

/// How to reach the registry and which platform to pick. [`resolve`] sets up the registry
/// client from these; the pull reuses that client and takes only the download settings
/// (`parallel_downloads`, `layer_buffer`) from the options it is given.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Platform to select from multi-platform images; defaults to the machine's own.
    pub platform: Platform,
    /// Registries (`host[:port]`) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Mirrors, tried in order before the origin registry.
    pub mirrors: Vec<RegistryMirror>,
    /// A docker `config.json` with credentials.
    pub auth_file: Option<PathBuf>,
    /// Ironic's `image_pull_secret`; wins over the auth file.
    pub pull_secret: Option<Secret>,
    /// Extra CA certificates (PEM), trusted on top of the system bundle.
    pub ca_file: Option<PathBuf>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Layers downloaded at once (application stays in order).
    pub parallel_downloads: usize,
    /// Compressed bytes one layer's download may run ahead of its application. Memory use
    /// is bounded by about `parallel_downloads` times this.
    pub layer_buffer: usize,
    /// Told the download's progress about once a second.
    pub progress: Option<ProgressObserver>,
    /// Time limits of manifest and token requests.
    pub time_limits: RequestTimeLimits,
    /// Layers already downloaded and verified (by [`peek`]): applied from memory instead of
    /// downloaded again.
    pub verified_blobs: Vec<VerifiedBlob>,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            platform: Platform::host(),
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            auth_file: None,
            pull_secret: None,
            ca_file: None,
            retry: RetryPolicy::default(),
            parallel_downloads: DEFAULT_PARALLEL_DOWNLOADS,
            layer_buffer: DEFAULT_LAYER_BUFFER,
            progress: None,
            time_limits: RequestTimeLimits::default(),
            verified_blobs: Vec::new(),
        }
    }
}
