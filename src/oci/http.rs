//! Manifest and blob requests, with the token from [`super::token`]. Their answers' headers
//! decide what happens next: `Retry-After` on 429 and 503, `Content-Range` on a resumed
//! blob, `Docker-Content-Digest` on a manifest. A manifest is read up to
//! [`MAX_MANIFEST_BYTES`]; an error answer only as far as the one line quoted from it.

use super::endpoint::{one_line, Endpoint, Failure};
use super::pull_error::PullError;
use crate::bounded::{self, BodyError};
use bytes::Bytes;
use oci_client::client::Certificate;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_RANGE, RANGE, RETRY_AFTER,
};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// The longest wait a `Retry-After` answer is granted; a registry asking for more is
/// retried after this long.
pub(crate) const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);

/// Every manifest type a pull can use; registries (docker-registry 2.8 among them) answer
/// 404 for a manifest whose type the request does not accept.
pub(crate) const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// Largest manifest accepted (registries commonly refuse to store more than 4 MiB).
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 * bounded::MIB;

/// Time limits of the requests whose answers are small, body included (blobs have only the
/// read timeout: they are as large as they are). A registry that trickles an answer a byte at
/// a time never trips the read timeout; these end such a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeLimits {
    /// One manifest request.
    pub manifest: Duration,
    /// Each of the `/v2/` challenge and the token request.
    pub token: Duration,
}

impl Default for RequestTimeLimits {
    fn default() -> Self {
        Self {
            manifest: Duration::from_secs(120),
            token: Duration::from_secs(60),
        }
    }
}

/// How manifest and blob requests reach the registries.
pub(crate) struct RegistryHttp {
    /// Set up on a thread of its own from the start: loading the system's CA bundle takes
    /// tens of milliseconds of CPU, which the manifest requests then hide.
    client: Arc<LazyClient>,
    plain_http: Vec<String>,
    /// The `Authorization` value per registry and repository (`None`: anonymous), fetched
    /// once and again when the registry answers 401 (an expired token).
    authorization: tokio::sync::Mutex<HashMap<String, Option<HeaderValue>>>,
    limits: RequestTimeLimits,
}

/// An open blob response.
pub(crate) struct BlobResponse {
    pub response: reqwest::Response,
    /// The registry sent the requested range (206); otherwise the whole blob (200).
    pub partial: bool,
}

/// The client, and what it is built from.
struct LazyClient {
    built: OnceLock<Result<reqwest::Client, String>>,
    settings: HttpSettings,
}

impl LazyClient {
    /// The client; built here unless the setup thread has done it (or is doing it).
    fn get(&self) -> &Result<reqwest::Client, String> {
        self.built.get_or_init(|| self.settings.build())
    }
}

/// What the HTTP client is built from: the TLS trust and the connection limits.
struct HttpSettings {
    extra_roots: Vec<Certificate>,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl HttpSettings {
    fn build(&self) -> Result<reqwest::Client, String> {
        let mut builder = reqwest::Client::builder()
            .user_agent(super::USER_AGENT)
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout);
        for root in &self.extra_roots {
            let cert = reqwest::Certificate::from_pem(&root.data).map_err(|e| one_line(&e))?;
            builder = builder.add_root_certificate(cert);
        }
        builder.build().map_err(|e| one_line(&e))
    }
}

impl RegistryHttp {
    /// Requests trusting `extra_roots` besides the system's, over plain HTTP to
    /// `plain_http`, with these connection and time limits.
    pub fn new(
        plain_http: Vec<String>,
        extra_roots: Vec<Certificate>,
        connect_timeout: Duration,
        read_timeout: Duration,
        limits: RequestTimeLimits,
    ) -> Self {
        let settings = HttpSettings {
            extra_roots,
            connect_timeout,
            read_timeout,
        };
        let client = Arc::new(LazyClient {
            built: OnceLock::new(),
            settings,
        });
        let early = Arc::clone(&client);
        // Whoever comes first builds it, the other waits. Without the thread, the first
        // request builds it.
        let _ = std::thread::Builder::new()
            .name("registry-http-setup".into())
            .spawn(move || {
                early.get();
            });
        Self {
            client,
            plain_http,
            authorization: tokio::sync::Mutex::new(HashMap::new()),
            limits,
        }
    }

    fn http(&self, endpoint: &Endpoint) -> Result<&reqwest::Client, Failure> {
        self.client
            .get()
            .as_ref()
            .map_err(|cause| other(endpoint, format!("cannot set up the HTTP client: {cause}")))
    }

    /// GET of bytes `offset..offset + length` of `digest` from `endpoint`.
    pub async fn get_range(
        &self,
        endpoint: &Endpoint,
        digest: &str,
        offset: u64,
        length: u64,
    ) -> Result<BlobResponse, Failure> {
        let last = offset + length.max(1) - 1;
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, header_value(&format!("bytes={offset}-{last}")));
        let response = self
            .get(endpoint, &format!("blobs/{digest}"), headers, None)
            .await?;
        if response.status() != StatusCode::PARTIAL_CONTENT {
            return Ok(BlobResponse {
                response,
                partial: false,
            });
        }
        let start = range_start(response.headers());
        if start != Some(offset) {
            return Err(other(
                endpoint,
                format!(
                    "blob {digest}: asked for bytes from {offset}, the registry sent a range from {}",
                    start.map_or_else(|| "an unknown offset".to_string(), |s| s.to_string())
                ),
            ));
        }
        Ok(BlobResponse {
            response,
            partial: true,
        })
    }

    /// GET of the manifest `tag_or_digest` from `endpoint`: the body (at most
    /// [`MAX_MANIFEST_BYTES`]) and the `Docker-Content-Digest` the registry gave.
    pub async fn get_manifest(
        &self,
        endpoint: &Endpoint,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, Option<String>), Failure> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, header_value(&MANIFEST_MEDIA_TYPES.join(", ")));
        let mut response = self
            .get(
                endpoint,
                &format!("manifests/{tag_or_digest}"),
                headers,
                Some(self.limits.manifest),
            )
            .await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string());
        match bounded::read_body(&mut response, MAX_MANIFEST_BYTES).await {
            Ok(body) => Ok((body, digest)),
            Err(BodyError::TooLarge(limit)) => Err(other(
                endpoint,
                format!(
                    "manifest {tag_or_digest} is larger than {}",
                    bounded::size(limit)
                ),
            )),
            Err(BodyError::Transport(e)) => Err(Failure::Transient(one_line(&e), None)),
        }
    }

    /// GET of `/v2/<repository>/<path>` with the endpoint's credentials (renewed once on
    /// 401), within `time` when given; any answer but 2xx becomes a [`Failure`], transient
    /// ones with the wait the registry asked for.
    async fn get(
        &self,
        endpoint: &Endpoint,
        path: &str,
        headers: HeaderMap,
        time: Option<Duration>,
    ) -> Result<reqwest::Response, Failure> {
        let host = endpoint.reference.resolve_registry();
        let scheme = self.scheme(host);
        // A mirror is told which registry the repository belongs to, as oci-client does.
        let namespace = endpoint
            .reference
            .namespace()
            .map(|ns| format!("?ns={ns}"))
            .unwrap_or_default();
        let url = format!(
            "{scheme}://{host}/v2/{}/{path}{namespace}",
            endpoint.reference.repository()
        );
        let mut renewed = false;
        loop {
            let authorization = self.authorization(endpoint, renewed).await?;
            let mut request = self.http(endpoint)?.get(&url).headers(headers.clone());
            if let Some(time) = time {
                request = request.timeout(time);
            }
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| Failure::Transient(one_line(&e), None))?;
            match response.status() {
                s if s.is_success() => return Ok(response),
                StatusCode::UNAUTHORIZED if !renewed => renewed = true,
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(Failure::Fatal(PullError::Unauthorized {
                        reference: endpoint.reference.whole(),
                        registry: endpoint.host.clone(),
                    }))
                }
                StatusCode::NOT_FOUND => {
                    return Err(Failure::Fatal(PullError::NotFound {
                        reference: endpoint.reference.whole(),
                        registry: endpoint.host.clone(),
                    }))
                }
                s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                    let wait = retry_after(response.headers(), SystemTime::now());
                    return Err(Failure::Transient(format!("HTTP {}", s.as_u16()), wait));
                }
                s => {
                    let code = s.as_u16();
                    let text = bounded::body_excerpt(response).await;
                    return Err(other(endpoint, format!("{path}: HTTP {code}: {text}")));
                }
            }
        }
    }

    /// `http` for the registries reached over plain HTTP, else `https`.
    fn scheme(&self, host: &str) -> &'static str {
        if self.plain_http.iter().any(|h| h == host) {
            "http"
        } else {
            "https"
        }
    }

    /// The `Authorization` header for `endpoint`: a bearer token when the registry issues
    /// tokens, the configured basic credentials otherwise.
    async fn authorization(
        &self,
        endpoint: &Endpoint,
        renew: bool,
    ) -> Result<Option<HeaderValue>, Failure> {
        // Tokens are scoped to one repository on one registry.
        let host = endpoint.reference.resolve_registry();
        let scope = format!("{host}/{}", endpoint.reference.repository());
        let mut cache = self.authorization.lock().await;
        if !renew {
            if let Some(value) = cache.get(&scope) {
                return Ok(value.clone());
            }
        }
        let client = self.http(endpoint)?;
        let value =
            super::token::authorization(client, self.scheme(host), endpoint, self.limits.token)
                .await?
                .map(|v| {
                    let mut header = HeaderValue::from_str(&v).map_err(|_| {
                        Failure::Fatal(PullError::Unauthorized {
                            reference: endpoint.reference.whole(),
                            registry: endpoint.host.clone(),
                        })
                    })?;
                    header.set_sensitive(true);
                    Ok(header)
                })
                .transpose()?;
        cache.insert(scope, value.clone());
        Ok(value)
    }
}

/// The next piece of a response body; a connection lost meanwhile is worth a retry.
pub(crate) async fn next_chunk(response: &mut reqwest::Response) -> Result<Option<Bytes>, Failure> {
    response
        .chunk()
        .await
        .map_err(|e| Failure::Transient(one_line(&e), None))
}

fn other(endpoint: &Endpoint, cause: String) -> Failure {
    Failure::Fatal(PullError::Other {
        reference: endpoint.reference.whole(),
        registry: endpoint.host.clone(),
        cause,
    })
}

/// A header value from text this module composed (always visible ASCII).
fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn range_start(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// How long `Retry-After` asks to wait (delta seconds or an HTTP date), at most
/// [`RETRY_AFTER_CAP`].
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(RETRY_AFTER_CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: reqwest::header::HeaderName, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(name, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn retry_after_takes_seconds_and_dates_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(RETRY_AFTER, "7"), now),
            Some(Duration::from_secs(7))
        );
        let in_ninety = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            retry_after(&headers(RETRY_AFTER, &in_ninety), now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(
            retry_after(&headers(RETRY_AFTER, &past), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after(&headers(RETRY_AFTER, "86400"), now),
            Some(RETRY_AFTER_CAP)
        );
        assert_eq!(retry_after(&headers(RETRY_AFTER, "soon"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn reads_where_a_partial_answer_starts() {
        assert_eq!(
            range_start(&headers(CONTENT_RANGE, "bytes 100-199/1000")),
            Some(100)
        );
        assert_eq!(range_start(&headers(CONTENT_RANGE, "bytes */1000")), None);
        assert_eq!(range_start(&HeaderMap::new()), None);
    }
}
