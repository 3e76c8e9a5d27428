//! Resolution: reference → manifest (through the platform's index entry) → layer list,
//! validated before anything destructive happens. No layer is downloaded here.

use super::platform::{self, Platform};
use super::pull_error::PullError;
use super::reference::parse_reference;
use super::registry::{Endpoint, Registry};
use super::PullOptions;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use std::sync::Arc;

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (possibly several members).
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression of an OCI or Docker layer media type; `None` for non-layer types.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Self::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// One layer to download and apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDesc {
    /// Blob digest, `sha256:…`.
    pub digest: String,
    /// Media type as the manifest gives it.
    pub media_type: String,
    /// Blob size in bytes (compressed).
    pub size: u64,
    /// Compression derived from the media type.
    pub compression: Compression,
}

/// An image resolved to one platform's manifest: what `pull_into` will fetch.
#[derive(Clone)]
pub struct ResolvedImage {
    /// Normalised reference, e.g. `docker.io/library/ubuntu:24.04`.
    pub reference: String,
    /// Digest of the platform's image manifest.
    pub manifest_digest: String,
    /// Digest of the index the manifest was chosen from, when there was one.
    pub index_digest: Option<String>,
    /// Digest of the image config.
    pub config_digest: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerDesc>,
    /// The platform of the chosen manifest.
    pub platform: Platform,
    /// Host[:port] that served the manifest (a mirror or the origin); blobs come from there.
    pub source: String,
    /// The client that resolved the image: the pull reuses its connections and tokens
    /// (and does not set up TLS a second time).
    pub(crate) registry: Arc<Registry>,
}

impl std::fmt::Debug for ResolvedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedImage")
            .field("reference", &self.reference)
            .field("manifest_digest", &self.manifest_digest)
            .field("index_digest", &self.index_digest)
            .field("config_digest", &self.config_digest)
            .field("layers", &self.layers)
            .field("platform", &self.platform)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ResolvedImage {
    /// Sum of the layer blob sizes.
    pub fn download_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// Largest config blob accepted; real ones are a few KiB.
const MAX_CONFIG_BYTES: i64 = 4 * 1024 * 1024;

/// Resolves `image` for `opts.platform`: mirrors first, then the origin registry.
pub async fn resolve(image: &str, opts: &PullOptions) -> anyhow::Result<ResolvedImage> {
    let reference = parse_reference(image)?;
    let registry = Arc::new(Registry::connect(&reference, opts)?);
    let Some((origin, mirrors)) = registry.endpoints.split_last() else {
        anyhow::bail!("no registry to pull {} from", reference.whole());
    };
    for mirror in mirrors {
        match resolve_at(&registry, mirror, &opts.platform).await {
            Ok(resolved) => return Ok(resolved),
            Err(err) => {
                tracing::warn!(mirror = %mirror.host, "mirror failed, trying the next source: {err}");
            }
        }
    }
    Ok(resolve_at(&registry, origin, &opts.platform).await?)
}

async fn resolve_at(
    registry: &Arc<Registry>,
    endpoint: &Endpoint,
    wanted: &Platform,
) -> Result<ResolvedImage, PullError> {
    let client = &registry.client;
    let top = registry
        .with_retries(endpoint, || {
            client.pull_manifest(&endpoint.reference, &endpoint.auth)
        })
        .await?;
    let (manifest, top_digest) = top;
    check_digest("manifest", endpoint.reference.digest(), &top_digest)?;
    // A mirrored reference still prints the origin registry: that is the image's name.
    let reference = endpoint.reference.whole();

    let (manifest, manifest_digest, index_digest, platform) = match manifest {
        OciManifest::Image(manifest) => {
            let platform = config_platform(registry, endpoint, &manifest.config, wanted).await?;
            (manifest, top_digest, None, platform)
        }
        OciManifest::ImageIndex(index) => {
            let (entry, platform) =
                platform::select(&index.manifests, wanted).map_err(|offered| {
                    PullError::NoSuchPlatform {
                        reference: reference.clone(),
                        wanted: wanted.clone(),
                        offered,
                    }
                })?;
            let by_digest = endpoint.reference.clone_with_digest(entry.digest.clone());
            let (inner, inner_digest) = registry
                .with_retries(endpoint, || {
                    client.pull_manifest(&by_digest, &endpoint.auth)
                })
                .await?;
            check_digest("manifest", Some(&entry.digest), &inner_digest)?;
            let OciManifest::Image(inner) = inner else {
                return Err(PullError::Other {
                    reference,
                    registry: endpoint.host.clone(),
                    cause: format!("index entry {} is itself an index", entry.digest),
                });
            };
            (inner, inner_digest, Some(top_digest), platform)
        }
    };
    let layers = layer_list(&manifest, &reference, &endpoint.host)?;
    Ok(ResolvedImage {
        reference,
        manifest_digest,
        index_digest,
        config_digest: manifest.config.digest.clone(),
        layers,
        platform,
        source: endpoint.host.clone(),
        registry: Arc::clone(registry),
    })
}

fn check_digest(what: &'static str, wanted: Option<&str>, got: &str) -> Result<(), PullError> {
    match wanted {
        Some(wanted) if wanted != got => Err(PullError::Verification {
            what,
            digest: wanted.to_string(),
            problem: format!("registry served {got} (digest mismatch)"),
        }),
        _ => Ok(()),
    }
}

fn layer_list(
    manifest: &OciImageManifest,
    reference: &str,
    registry: &str,
) -> Result<Vec<LayerDesc>, PullError> {
    let invalid = |cause: String| PullError::Other {
        reference: reference.to_string(),
        registry: registry.to_string(),
        cause,
    };
    if manifest.layers.is_empty() {
        return Err(invalid("the image manifest lists no layers".into()));
    }
    manifest
        .layers
        .iter()
        .map(|layer| {
            let compression = Compression::from_media_type(&layer.media_type).ok_or_else(|| {
                invalid(format!(
                    "layer {} has unsupported media type {}",
                    layer.digest, layer.media_type
                ))
            })?;
            let size = u64::try_from(layer.size)
                .map_err(|_| invalid(format!("layer {} has a negative size", layer.digest)))?;
            Ok(LayerDesc {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                size,
                compression,
            })
        })
        .collect()
}

/// A lone manifest names its platform only in the config blob; fetch it (a few KiB) and check.
async fn config_platform(
    registry: &Registry,
    endpoint: &Endpoint,
    config: &OciDescriptor,
    wanted: &Platform,
) -> Result<Platform, PullError> {
    #[derive(serde::Deserialize)]
    struct ConfigPlatform {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let reference = endpoint.reference.whole();
    if !(1..=MAX_CONFIG_BYTES).contains(&config.size) {
        return Err(PullError::Other {
            reference,
            registry: endpoint.host.clone(),
            cause: format!(
                "config blob {} declares {} bytes (expected 1 to {MAX_CONFIG_BYTES})",
                config.digest, config.size
            ),
        });
    }
    let bytes = registry
        .retrying(endpoint, || {
            registry.read_blob(endpoint, "config", &config.digest, config.size as u64)
        })
        .await?;
    let parsed: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|e| PullError::Other {
        reference: reference.clone(),
        registry: endpoint.host.clone(),
        cause: format!("config {} is not an image config: {e}", config.digest),
    })?;
    let (Some(os), Some(architecture)) = (parsed.os, parsed.architecture) else {
        tracing::warn!(config = %config.digest, "image config names no platform; assuming {wanted}");
        return Ok(wanted.clone());
    };
    let platform = Platform {
        os,
        architecture,
        variant: parsed.variant.filter(|v| !v.is_empty()),
    };
    if !wanted.matches(
        &platform.os,
        &platform.architecture,
        platform.variant.as_deref(),
    ) {
        return Err(PullError::NoSuchPlatform {
            reference,
            wanted: wanted.clone(),
            offered: vec![platform],
        });
    }
    Ok(platform)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_compressions() {
        use Compression::*;
        let cases = [
            ("application/vnd.oci.image.layer.v1.tar", Some(None)),
            ("application/vnd.oci.image.layer.v1.tar+gzip", Some(Gzip)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", Some(Zstd)),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                Some(Gzip),
            ),
            ("application/vnd.oci.image.config.v1+json", Option::None),
            ("application/vnd.wasm.content.layer.v1+wasm", Option::None),
        ];
        for (media_type, want) in cases {
            assert_eq!(
                Compression::from_media_type(media_type),
                want,
                "{media_type}"
            );
        }
    }

    #[test]
    fn digest_check_names_the_wanted_digest() {
        let wanted = format!("sha256:{}", "1".repeat(64));
        let err = check_digest("manifest", Some(&wanted), "sha256:other").unwrap_err();
        assert!(err.to_string().contains(&wanted));
        check_digest("manifest", None, "sha256:any").unwrap();
    }
}
