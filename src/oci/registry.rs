//! Talking to registries: the HTTP set-up (TLS, insecure hosts), mirror endpoints,
//! credentials per endpoint, and retries with backoff or after the wait a registry asked for.

use super::auth::{same_registry, Credentials};
use super::endpoint::{Endpoint, Failure};
use super::http::{next_chunk, RegistryHttp};
use super::pull_error::PullError;
use super::verify::BlobVerifier;
use super::PullOptions;
use crate::error::OrderError;
use oci_client::client::{Certificate, CertificateEncoding};
use oci_client::Reference;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently transient failures (connection resets, 5xx, 429) are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// Delay before the second attempt; it doubles after each failure.
    pub initial_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

/// A configured client plus the endpoints to try, mirrors first.
pub(crate) struct Registry {
    /// Manifest and blob requests (`Retry-After` honoured, ranges checked).
    pub http: RegistryHttp,
    pub endpoints: Vec<Endpoint>,
    pub retry: RetryPolicy,
}

/// Only the endpoints: the clients hold credentials and nothing worth printing.
impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self.endpoints.iter().map(|e| e.host.as_str()).collect();
        f.debug_struct("Registry")
            .field("endpoints", &hosts)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: the backoff, or longer when the registry
    /// asked for it, plus up to half as much again at random: a fleet that a registry
    /// throttled at once must not come back at once.
    pub(crate) fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.delay(attempt).max(retry_after.unwrap_or_default());
        base + (base / 2).mul_f64(unit_random())
    }
}

/// A number in [0, 1) from the standard library's per-instance random hash keys (no crate
/// needed for jitter).
fn unit_random() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

impl Registry {
    /// Builds the client for `reference` with the options' TLS, insecure hosts, mirrors and
    /// credentials. Fails on unreadable CA or auth files and on malformed mirrors.
    pub fn connect(reference: &Reference, opts: &PullOptions) -> anyhow::Result<Self> {
        let origin = reference.registry().to_string();
        let credentials = Credentials::load(opts.auth_file.as_deref(), opts.pull_secret.as_ref())?;
        let mut plain_http: Vec<String> = opts.insecure_registries.clone();
        let mut endpoints = Vec::new();
        for mirror in opts
            .mirrors
            .iter()
            .filter(|m| same_registry(&m.registry, &origin))
        {
            let (host, insecure) = mirror_host(&mirror.endpoint)?;
            if insecure {
                plain_http.push(host.clone());
            }
            let mut mirrored = reference.clone();
            mirrored.set_mirror_registry(host.clone());
            endpoints.push(Endpoint {
                reference: mirrored,
                auth: credentials.for_registry(&host, &origin),
                host,
            });
        }
        endpoints.push(Endpoint {
            reference: reference.clone(),
            host: reference.resolve_registry().to_string(),
            auth: credentials.for_registry(&origin, &origin),
        });
        let extra_roots = load_ca_file(opts.ca_file.as_deref())?;
        let http = RegistryHttp::new(
            plain_http,
            extra_roots,
            CONNECT_TIMEOUT,
            READ_TIMEOUT,
            opts.time_limits,
        );
        Ok(Self {
            http,
            endpoints,
            retry: opts.retry.clone(),
        })
    }

    /// A small blob (an image config), whole and verified.
    pub async fn read_blob(
        &self,
        endpoint: &Endpoint,
        what: &'static str,
        digest: &str,
        size: u64,
    ) -> Result<Vec<u8>, Failure> {
        let mut verifier = BlobVerifier::new(what, digest, size).map_err(Failure::Fatal)?;
        let mut blob = self.http.get_range(endpoint, digest, 0, size).await?;
        let mut out = Vec::new();
        while let Some(chunk) = next_chunk(&mut blob.response).await? {
            verifier.update(&chunk).map_err(Failure::Fatal)?;
            out.extend_from_slice(&chunk);
        }
        if verifier.remaining() > 0 {
            let cause = format!("connection closed after {} of {size} bytes", out.len());
            return Err(Failure::Transient(cause, None));
        }
        verifier.finish().map_err(Failure::Fatal)?;
        Ok(out)
    }

    /// Runs `op` against `endpoint`, retrying transient failures with backoff, or after
    /// the time the registry asked for.
    pub async fn retrying<T, F, Fut>(&self, endpoint: &Endpoint, mut op: F) -> Result<T, PullError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(err)) => return Err(err),
                Err(Failure::Transient(cause, retry_after)) if attempt < self.retry.attempts => {
                    let delay = self.retry.wait(attempt, retry_after);
                    tracing::warn!(registry = %endpoint.host, attempt, ?delay, "{cause}; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(Failure::Transient(cause, _)) => {
                    return Err(PullError::Unavailable {
                        registry: endpoint.host.clone(),
                        attempts: attempt,
                        cause,
                    })
                }
            }
        }
    }
}

/// Limits of one registry connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// `http://10.0.2.2:5000` → (`10.0.2.2:5000`, plain HTTP); a bare `host[:port]` means HTTPS.
fn mirror_host(endpoint: &str) -> Result<(String, bool), OrderError> {
    let invalid = || {
        OrderError::new(
            "registry_mirrors",
            format!("{endpoint:?} is not a mirror endpoint; expected http(s)://host[:port] or host[:port], without a path"),
        )
    };
    let with_scheme = if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|_| invalid())?;
    let host = url.host_str().ok_or_else(invalid)?;
    if !matches!(url.path(), "" | "/") || !matches!(url.scheme(), "http" | "https") {
        return Err(invalid());
    }
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    Ok((host, url.scheme() == "http"))
}

/// Largest CA file read (Debian's whole system bundle is some 220 KiB).
pub const MAX_CA_FILE: u64 = 4 * crate::bounded::MIB;

/// Reads a PEM bundle of extra CA certificates, one oci-client certificate per PEM block.
fn load_ca_file(path: Option<&std::path::Path>) -> anyhow::Result<Vec<Certificate>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let bytes = crate::bounded::read_file(path, MAX_CA_FILE).map_err(|refused| {
        OrderError::new(
            "ca_file",
            format!("the CA file {} {refused}", path.display()),
        )
    })?;
    let text = String::from_utf8_lossy(&bytes);
    const END: &str = "-----END CERTIFICATE-----";
    let certs: Vec<Certificate> = text
        .split_inclusive(END)
        .filter_map(|block| {
            block
                .find("-----BEGIN CERTIFICATE-----")
                .map(|at| &block[at..])
        })
        .filter(|block| block.ends_with(END))
        .map(|block| Certificate {
            encoding: CertificateEncoding::Pem,
            data: block.as_bytes().to_vec(),
        })
        .collect();
    if certs.is_empty() {
        return Err(OrderError::new(
            "ca_file",
            format!("{} holds no PEM certificate", path.display()),
        )
        .into());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_jittered_up_to_half_again_and_honour_retry_after() {
        let policy = RetryPolicy::default();
        let base = policy.delay(2).max(Duration::from_secs(1));
        let waits: Vec<Duration> = (0..200)
            .map(|_| policy.wait(2, Some(Duration::from_secs(1))))
            .collect();
        assert!(waits.iter().all(|w| *w >= base && *w <= base.mul_f64(1.5)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() > 100, "{} distinct waits", distinct.len());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let delays: Vec<u128> = (1..=6).map(|a| policy.delay(a).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10000]);
    }

    #[test]
    fn parses_mirror_endpoints() {
        assert_eq!(
            mirror_host("http://10.0.2.2:5000").unwrap(),
            ("10.0.2.2:5000".into(), true)
        );
        assert_eq!(
            mirror_host("https://m.example/").unwrap(),
            ("m.example".into(), false)
        );
        assert_eq!(
            mirror_host("m.example:8443").unwrap(),
            ("m.example:8443".into(), false)
        );
        for bad in ["http://m/v2/prefix", "ftp://m", "http://"] {
            assert_eq!(
                mirror_host(bad).unwrap_err().field,
                "registry_mirrors",
                "{bad}"
            );
        }
    }

    #[test]
    fn mirrors_come_before_the_origin_and_only_for_their_registry() {
        let opts = PullOptions {
            mirrors: vec![
                crate::oci::RegistryMirror {
                    registry: "docker.io".into(),
                    endpoint: "http://10.0.2.2:5000".into(),
                },
                crate::oci::RegistryMirror {
                    registry: "quay.io".into(),
                    endpoint: "https://q.example".into(),
                },
            ],
            ..PullOptions::default()
        };
        let reference: Reference = "ubuntu:24.04".parse().unwrap();
        let registry = Registry::connect(&reference, &opts).unwrap();
        let hosts: Vec<&str> = registry.endpoints.iter().map(|e| e.host.as_str()).collect();
        assert_eq!(hosts, ["10.0.2.2:5000", "index.docker.io"]);
    }

    #[test]
    fn ca_file_needs_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        for bad in [path, dir.path().join("missing")] {
            let err = load_ca_file(Some(&bad)).unwrap_err();
            let order = err.downcast_ref::<OrderError>().expect("an order error");
            assert_eq!(order.field, "ca_file");
        }
        assert!(load_ca_file(None).unwrap().is_empty());
    }
}
