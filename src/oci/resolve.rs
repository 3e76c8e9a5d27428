//! Resolution: reference → manifest (through the platform's index entry) → layer list,
//! validated before anything destructive happens. No layer is downloaded here.

use super::endpoint::Endpoint;
use super::http::MANIFEST_MEDIA_TYPES;
use super::platform::{self, Platform};
use super::pull_error::PullError;
use super::reference::{parse_image, ImageRef};
use super::registry::Registry;
use super::verify::BlobVerifier;
use super::PullOptions;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::Reference;
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
#[derive(Debug, Clone)]
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
    resolve_image(&parse_image(image)?, opts).await
}

/// [`resolve`] for a reference already parsed.
pub async fn resolve_image(image: &ImageRef, opts: &PullOptions) -> anyhow::Result<ResolvedImage> {
    let reference = image.as_reference().clone();
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
    let (manifest, top_digest) = fetch_manifest(registry, endpoint, &endpoint.reference).await?;
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
            let (inner, inner_digest) = fetch_manifest(registry, endpoint, &by_digest).await?;
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

/// The manifest `by` names, checked against the digest it was asked by and the one the
/// registry named (`Docker-Content-Digest`); returns it with its digest.
async fn fetch_manifest(
    registry: &Registry,
    endpoint: &Endpoint,
    by: &Reference,
) -> Result<(OciManifest, String), PullError> {
    let tag_or_digest = by.digest().or(by.tag()).unwrap_or("latest");
    let (body, named) = registry
        .retrying(endpoint, || {
            registry.http.get_manifest(endpoint, tag_or_digest)
        })
        .await?;
    let check = |digest: &str| BlobVerifier::check_whole("manifest", digest, &body);
    if let Some(asked) = by.digest() {
        check(asked)?;
    }
    // A registry's own digest in an algorithm we do not know is left unchecked.
    let named = named.filter(|d| BlobVerifier::supports(d));
    if let Some(named) = &named {
        check(named).map_err(|err| match err {
            PullError::Verification { what, digest, .. } => PullError::Verification {
                what,
                digest,
                problem: "the registry's Docker-Content-Digest does not match the manifest"
                    .to_string(),
            },
            other => other,
        })?;
    }
    let digest = match (by.digest(), named) {
        (Some(asked), _) => asked.to_string(),
        (None, Some(named)) => named,
        (None, None) => sha256_digest(&body),
    };
    let manifest = parse_manifest(&body).map_err(|cause| PullError::Other {
        reference: endpoint.reference.whole(),
        registry: endpoint.host.clone(),
        cause: format!("manifest {digest}: {cause}"),
    })?;
    Ok((manifest, digest))
}

/// An image manifest or index of schema 2, in one of the four media types.
fn parse_manifest(body: &[u8]) -> Result<OciManifest, String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Versioned {
        schema_version: i64,
        media_type: Option<String>,
    }
    use crate::bounded::{too_many_values, MAX_JSON_VALUES};
    // Parsed, `{"annotations": {"a": "", …}}` would take many times its 4 MiB.
    if too_many_values(body) {
        return Err(format!("holds more than {MAX_JSON_VALUES} JSON values"));
    }
    let versioned: Versioned =
        serde_json::from_slice(body).map_err(|e| format!("not a manifest: {}", quoted(&e)))?;
    if versioned.schema_version != 2 {
        return Err(format!(
            "schema version {} is not supported (only 2)",
            versioned.schema_version
        ));
    }
    if let Some(media_type) = versioned.media_type {
        if !MANIFEST_MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(format!(
                "media type {media_type} is not a manifest or an index"
            ));
        }
    }
    serde_json::from_slice(body).map_err(|e| format!("cannot read it: {}", quoted(&e)))
}

/// A parse error as one short line: serde quotes the offending value, which the registry
/// chose and may make megabytes long.
fn quoted(err: &serde_json::Error) -> String {
    crate::bounded::excerpt(err.to_string().as_bytes())
}

fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(openssl::sha::sha256(body)))
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
        cause: format!(
            "config {} is not an image config: {}",
            config.digest,
            quoted(&e)
        ),
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
    fn manifests_of_schema_2_in_the_four_types_only() {
        let image = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aa","size":2},
            "layers":[]}"#;
        assert!(matches!(
            parse_manifest(image.as_bytes()),
            Ok(OciManifest::Image(_))
        ));
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[]}"#;
        assert!(matches!(
            parse_manifest(index.as_bytes()),
            Ok(OciManifest::ImageIndex(_))
        ));
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[]}"#;
        assert!(parse_manifest(schema1.as_bytes())
            .unwrap_err()
            .contains("schema version 1"));
        let artifact = r#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#;
        assert!(parse_manifest(artifact.as_bytes())
            .unwrap_err()
            .contains("application/vnd.example+json"));
        assert!(parse_manifest(b"<html>")
            .unwrap_err()
            .contains("not a manifest"));
        let annotations = format!(
            r#"{{"schemaVersion":2,"annotations":{{{}"z":""}}}}"#,
            r#""a":"","#.repeat(100_000)
        );
        assert_eq!(
            parse_manifest(annotations.as_bytes()).unwrap_err(),
            "holds more than 100000 JSON values"
        );
        let long = format!(r#"{{"schemaVersion":"{}"}}"#, "A".repeat(1 << 20));
        let err = parse_manifest(long.as_bytes()).unwrap_err();
        assert!(
            err.starts_with("not a manifest: invalid type: string \"AAA"),
            "{err:.300}"
        );
        assert!(err.chars().count() < 250, "{err:.300}");
    }
}
