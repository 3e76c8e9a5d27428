//! Pulls through a small fault-injecting HTTP proxy in front of a local registry:
//! dropped connections, 5xx and 429 answers, corrupted blobs, and a registry that is down.

#[path = "support/peak.rs"]
mod peak;
#[path = "support/registry.rs"]
mod registry;

use ocimetal::oci::peek::{look_into, read_os_release, OsReleasePeek, PeekLimits};
use ocimetal::oci::{
    pull_into_sink, pull_when_ready, resolve, PullError, PullOptions, RequestTimeLimits,
    RetryPolicy,
};
use peak::MAX_RSS_KIB;
use registry::{noise, tar_layer, Entry, Flavour, Layer, Pusher, TestRegistry, UnpackSink};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to requests whose path contains the target string.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward the headers and half the body, then hang up; `times` times.
    DropMidBody { times: usize },
    /// Answer with this status instead of forwarding; `times` times.
    Status {
        code: u16,
        retry_after: Option<u32>,
        times: usize,
    },
    /// Forward with one body byte flipped (same length), every time.
    Corrupt,
    /// A token-authenticated registry (Docker Hub style): `/v2/` and every request without
    /// the current bearer token get 401 and a challenge naming `/token` on this proxy,
    /// which hands out `token-N`. Every `rotate_after` authorised requests the token
    /// changes, so a client holding the old one is refused once.
    BearerGate { rotate_after: usize },
    /// Answer with this status and a body of `bytes` bytes (one endless line after a short
    /// text with control characters), every time.
    Flood { code: u16, bytes: usize },
    /// A token-authenticated registry whose token endpoint answers with this status and a
    /// body of `bytes` bytes.
    TokenFlood { code: u16, bytes: usize },
    /// Answer 200 with one header line of `bytes` bytes, every time.
    HeaderFlood { bytes: usize },
    /// Answer with this status and the start of a body, then send nothing more while the
    /// connection stays open.
    Stall { code: u16 },
    /// Answer 200 announcing a 1 MiB body, then send it a byte every 100 ms: never silent
    /// long enough for a read timeout.
    Trickle,
    /// A token-authenticated registry whose token endpoint trickles as [`Fault::Trickle`].
    TokenTrickle,
}

impl Fault {
    /// Every matching request fails with 503.
    const ALWAYS_503: Fault = Fault::Status {
        code: 503,
        retry_after: None,
        times: usize::MAX,
    };
}

/// A request the proxy saw.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    authorization: Option<String>,
    status: Option<u16>,
    at: Instant,
}

struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr, target: String, fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicUsize::new(0));
        let task = {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let (seen, hits, target) =
                        (Arc::clone(&seen), Arc::clone(&hits), target.clone());
                    tokio::spawn(async move {
                        let _ = serve(conn, upstream, &target, fault, &seen, &hits).await;
                    });
                }
            })
        };
        Self { addr, seen, task }
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn seen(&self, target: &str) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.path.contains(target))
            .cloned()
            .collect()
    }
}

/// One request per connection: read the head, maybe fault, else forward with
/// `Connection: close` and relay the (maybe altered) response.
async fn serve(
    mut conn: TcpStream,
    upstream: SocketAddr,
    target: &str,
    fault: Fault,
    seen: &Mutex<Vec<Seen>>,
    hits: &AtomicUsize,
) -> std::io::Result<()> {
    let head = read_head(&mut conn).await?;
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with(name))
            .map(|h| h[name.len()..].trim().to_string())
    };
    let range = header("range:");
    let authorization = header("authorization:");
    let record = |status: Option<u16>| {
        seen.lock().unwrap().push(Seen {
            path: path.clone(),
            range: range.clone(),
            authorization: authorization.clone(),
            status,
            at: Instant::now(),
        });
    };

    if let Fault::TokenFlood { code, bytes } = fault {
        if path.starts_with("/token") {
            record(Some(code));
            return flood(conn, code, bytes).await;
        }
        record(Some(401));
        return challenge(conn).await;
    }
    if let Fault::TokenTrickle = fault {
        if path.starts_with("/token") {
            record(Some(200));
            return trickle(conn).await;
        }
        record(Some(401));
        return challenge(conn).await;
    }
    if let Fault::BearerGate { rotate_after } = fault {
        let served = hits.load(Ordering::SeqCst);
        let current = format!("token-{}", served / rotate_after);
        if path.starts_with("/token") {
            record(Some(200));
            let body = format!(r#"{{"token":"{current}"}}"#);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes()).await?;
            return conn.shutdown().await;
        }
        if path == "/v2/" || authorization.as_deref() != Some(&format!("Bearer {current}")) {
            record(Some(401));
            return challenge(conn).await;
        }
        hits.fetch_add(1, Ordering::SeqCst);
    }
    let hit = if path.contains(target) && !matches!(fault, Fault::BearerGate { .. }) {
        Some(hits.fetch_add(1, Ordering::SeqCst))
    } else {
        None
    };

    if let (Some(_), Fault::Flood { code, bytes }) = (hit, fault) {
        record(Some(code));
        return flood(conn, code, bytes).await;
    }
    if let (Some(_), Fault::Stall { code }) = (hit, fault) {
        record(Some(code));
        let head = format!(
            "HTTP/1.1 {code} Stall\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            1 << 20
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(FLOOD_HEAD).await?;
        // Until the client hangs up.
        let mut rest = Vec::new();
        return conn.read_to_end(&mut rest).await.map(|_| ());
    }
    if let (Some(_), Fault::Trickle) = (hit, fault) {
        record(Some(200));
        return trickle(conn).await;
    }
    if let (Some(_), Fault::HeaderFlood { bytes }) = (hit, fault) {
        record(Some(200));
        conn.write_all(b"HTTP/1.1 200 OK\r\nX-Flood: ").await?;
        return write_as(&mut conn, bytes).await;
    }
    if let (
        Some(n),
        Fault::Status {
            code,
            retry_after,
            times,
        },
    ) = (hit, fault)
    {
        if n < times {
            record(Some(code));
            let body = if code == 429 {
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#
            } else {
                "upstream trouble"
            };
            let retry = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 {code} Fault\r\n{retry}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes()).await?;
            return conn.shutdown().await;
        }
    }

    record(None);
    let mut request = format!("{request_line}\r\n");
    // The registry behind the proxy is open: the proxy is the one that checks tokens.
    for h in headers.iter().filter(|h| {
        let h = h.to_ascii_lowercase();
        !h.starts_with("connection:") && !h.starts_with("authorization:")
    }) {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await?;
    let split = find(&response, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(response.len());
    let is_get = request_line.starts_with("GET ");

    match (hit, fault) {
        (Some(n), Fault::DropMidBody { times }) if n < times && is_get => {
            let body_len = response.len() - split;
            conn.write_all(&response[..split + body_len / 2]).await?;
            // Hang up mid-body: the client sees fewer bytes than Content-Length.
            return Ok(());
        }
        (Some(_), Fault::Corrupt) if is_get && response.len() > split => {
            let middle = split + (response.len() - split) / 2;
            response[middle] ^= 0xff;
        }
        _ => {}
    }
    conn.write_all(&response).await?;
    conn.shutdown().await
}

/// 401 with a challenge naming `/token` on this proxy.
async fn challenge(mut conn: TcpStream) -> std::io::Result<()> {
    let me = conn.local_addr()?;
    let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}"#;
    let response = format!(
        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"gate\",scope=\"repository:test/faults:pull\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}

/// The start of every flood: text with a terminal escape and line breaks, which an error
/// line must not carry.
const FLOOD_HEAD: &[u8] = b"{\"token\":\"bad\x1b[2J request\r\nsecond line ";

/// Answers `code` with a `bytes`-byte body: [`FLOOD_HEAD`], then `A`s without end of line,
/// for as long as the client reads.
async fn flood(mut conn: TcpStream, code: u16, bytes: usize) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} Flood\r\nContent-Type: application/json\r\nContent-Length: {bytes}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(FLOOD_HEAD).await?;
    write_as(&mut conn, bytes - FLOOD_HEAD.len()).await
}

/// Answers 200 with a 1 MiB JSON body sent a byte every 100 ms, until the client hangs up.
async fn trickle(mut conn: TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n{";
    conn.write_all(head.as_bytes()).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.write_all(b" ").await?;
    }
}

/// Writes `bytes` `A`s, as long as the client reads, then hangs up.
async fn write_as(conn: &mut TcpStream, bytes: usize) -> std::io::Result<()> {
    let chunk = vec![b'A'; 1 << 16];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(&chunk[..n]).await?;
        left -= n;
    }
    conn.shutdown().await
}

async fn read_head(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while find(&head, b"\r\n\r\n").is_none() {
        if conn.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn fast_retries(hosts: Vec<String>) -> PullOptions {
    PullOptions {
        platform: "linux/amd64".parse().unwrap(),
        insecure_registries: hosts,
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
        },
        ..PullOptions::default()
    }
}

/// A registry holding `test/faults:1` with one big gzip layer and one plain layer.
async fn registry_with_image() -> (TestRegistry, Vec<Layer>) {
    let registry = TestRegistry::start();
    let big = noise(1_500_000, 7);
    let layers = vec![
        Layer::gzip(tar_layer(&[Entry::File("big", &big)])),
        Layer::plain(tar_layer(&[Entry::File("small", &noise(20_000, 8))])),
    ];
    Pusher::new(&registry.host())
        .push_image(
            &format!("{}/test/faults:1", registry.host()),
            &layers,
            ("linux", "amd64"),
            Flavour::Oci,
        )
        .await;
    (registry, layers)
}

/// The image's big gzip layer arrived intact under `root`.
fn assert_big_pulled(root: &tempfile::TempDir) {
    assert_eq!(
        std::fs::read(root.path().join("big")).unwrap(),
        noise(1_500_000, 7)
    );
}

/// The image's small plain layer arrived intact under `root`.
fn assert_small_pulled(root: &tempfile::TempDir) {
    assert_eq!(
        std::fs::read(root.path().join("small")).unwrap(),
        noise(20_000, 8)
    );
}

async fn pull_via(proxy: &Proxy, opts: &PullOptions) -> (anyhow::Result<()>, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/test/faults:1", proxy.host());
    let result = async {
        let resolved = resolve(&image, opts).await?;
        let sink = Box::new(UnpackSink {
            root: root.path().to_path_buf(),
        });
        pull_into_sink(&resolved, opts, sink).await.map(|_| ())
    }
    .await;
    (result, root)
}

#[tokio::test]
async fn a_dropped_connection_resumes_with_a_range_request() {
    let (registry, layers) = registry_with_image().await;
    let digest = layers[0].digest();
    let proxy = Proxy::start(
        registry.addr,
        digest.clone(),
        Fault::DropMidBody { times: 2 },
    )
    .await;
    let (result, root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
    result.unwrap();
    assert_big_pulled(&root);

    let requests = proxy.seen(&digest);
    assert_eq!(requests.len(), 3, "{requests:?}");
    let starts: Vec<u64> = requests
        .iter()
        .map(|s| {
            let range = s.range.as_deref().expect("ranged blob request");
            range
                .trim_start_matches("bytes=")
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(starts[0], 0);
    assert!(
        starts[1] > 0 && starts[2] > starts[1],
        "resumed at {starts:?}"
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried() {
    let (registry, layers) = registry_with_image().await;
    let opts_for = |proxy: &Proxy| fast_retries(vec![proxy.host()]);

    let manifests = Proxy::start(
        registry.addr,
        "/manifests/".into(),
        Fault::Status {
            code: 500,
            retry_after: None,
            times: 2,
        },
    )
    .await;
    let (result, root) = pull_via(&manifests, &opts_for(&manifests)).await;
    result.unwrap();
    assert_small_pulled(&root);
    assert!(manifests.seen("/manifests/").len() >= 3);

    let digest = layers[1].digest();
    let blobs = Proxy::start(
        registry.addr,
        digest.clone(),
        Fault::Status {
            code: 429,
            retry_after: Some(1),
            times: 2,
        },
    )
    .await;
    let (result, root) = pull_via(&blobs, &opts_for(&blobs)).await;
    result.unwrap();
    assert_small_pulled(&root);
    assert_eq!(blobs.seen(&digest).len(), 3);
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_one_line_unavailable() {
    let (registry, layers) = registry_with_image().await;
    let digest = layers[0].digest();
    let proxy = Proxy::start(registry.addr, digest.clone(), Fault::ALWAYS_503).await;
    let (result, _root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<PullError>(),
            Some(PullError::Unavailable { .. })
        ),
        "{err:#}"
    );
    let msg = format!("{err:#}");
    assert!(
        msg.contains("HTTP 503") && msg.contains("3 attempt") && !msg.contains('\n'),
        "{msg}"
    );
}

#[tokio::test]
async fn wrong_bytes_fail_with_the_digest_named() {
    let (registry, layers) = registry_with_image().await;
    for layer in &layers {
        let digest = layer.digest();
        let proxy = Proxy::start(registry.addr, digest.clone(), Fault::Corrupt).await;
        let (result, _root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
        let err = result.unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<PullError>(),
                Some(PullError::Verification { .. })
            ),
            "{}: {err:#}",
            layer.media_type
        );
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&digest) && msg.contains("digest mismatch"),
            "{msg}"
        );
    }
}

/// Resolves `test/faults:1` through `proxy` and looks for its os-release within `limits`.
async fn peek_via(proxy: &Proxy, limits: &PeekLimits) -> anyhow::Result<OsReleasePeek> {
    let opts = fast_retries(vec![proxy.host()]);
    let resolved = resolve(&format!("{}/test/faults:1", proxy.host()), &opts).await?;
    read_os_release(&resolved, limits).await
}

#[tokio::test]
async fn a_tampered_layer_fails_the_look_before_the_wipe() {
    let (registry, layers) = registry_with_image().await;
    // Untouched, the image's two layers are read and hold no os-release.
    let clean = Proxy::start(registry.addr, "none".into(), Fault::ALWAYS_503).await;
    assert_eq!(
        peek_via(&clean, &PeekLimits::default()).await.unwrap(),
        OsReleasePeek::Absent
    );
    for (at, layer) in layers.iter().enumerate() {
        let digest = layer.digest();
        let proxy = Proxy::start(registry.addr, digest.clone(), Fault::Corrupt).await;
        let err = peek_via(&proxy, &PeekLimits::default())
            .await
            .expect_err("a tampered layer");
        assert!(
            matches!(
                err.downcast_ref::<PullError>(),
                Some(PullError::Verification { .. })
            ),
            "{err:#}"
        );
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(&format!("layer {} of 2 ({digest}): ", at + 1))
                && msg.contains("digest mismatch")
                && !msg.contains('\n'),
            "{msg}"
        );
    }
}

/// The layers the look read to their verified end are applied from memory: the pull does not
/// ask the registry for them again, so that a registry serving them tampered by then changes
/// nothing; a keep limit below a layer's size keeps none of that layer.
#[tokio::test]
async fn layers_the_look_verified_are_not_downloaded_again() {
    let (registry, layers) = registry_with_image().await;
    let (big, small) = (layers[0].digest(), layers[1].digest());
    let clean = Proxy::start(registry.addr, "none".into(), Fault::ALWAYS_503).await;
    let opts = fast_retries(vec![clean.host()]);
    let image = format!("{}/test/faults:1", clean.host());
    let clean_image = resolve(&image, &opts).await.unwrap();
    let all = PeekLimits {
        keep: u64::MAX,
        ..PeekLimits::default()
    };
    let peek = look_into(&clean_image, &all).await.unwrap();
    assert_eq!(peek.os_release, OsReleasePeek::Absent);
    let kept: Vec<_> = peek.kept.iter().map(|b| b.digest().to_string()).collect();
    assert_eq!(kept, [small.clone(), big.clone()], "topmost first");

    let tampering = Proxy::start(registry.addr, big.clone(), Fault::Corrupt).await;
    let image = format!("{}/test/faults:1", tampering.host());
    let plain = fast_retries(vec![tampering.host()]);
    let reusing = PullOptions {
        verified_blobs: peek.kept,
        ..plain.clone()
    };
    let resolved = resolve(&image, &reusing).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let sink = Box::new(UnpackSink {
        root: root.path().to_path_buf(),
    });
    let report = pull_into_sink(&resolved, &reusing, sink).await.unwrap();
    assert_big_pulled(&root);
    assert_eq!(
        report.reused_bytes,
        (layers[0].blob.len() + layers[1].blob.len()) as u64
    );
    assert_eq!(report.downloaded_bytes, 0);
    assert!(
        tampering.seen(&big).is_empty(),
        "the big layer was asked for"
    );
    // The same pull without the kept layers meets the tampering.
    let (result, _root) = pull_via(&tampering, &plain).await;
    assert!(format!("{:#}", result.unwrap_err()).contains("digest mismatch"));

    let some = PeekLimits {
        keep: layers[0].blob.len() as u64 - 1,
        ..PeekLimits::default()
    };
    let peek = look_into(&clean_image, &some).await.unwrap();
    let kept: Vec<_> = peek.kept.iter().map(|b| b.digest().to_string()).collect();
    assert_eq!(kept, [small], "the big layer does not fit what is left");
}

#[tokio::test]
async fn a_registry_that_keeps_failing_a_layer_leaves_the_look_unknown() {
    let (registry, layers) = registry_with_image().await;
    let digest = layers[1].digest();
    let proxy = Proxy::start(registry.addr, digest.clone(), Fault::ALWAYS_503).await;
    let answer = peek_via(&proxy, &PeekLimits::default()).await.unwrap();
    let OsReleasePeek::Unknown(why) = &answer else {
        panic!("{answer:?}")
    };
    assert!(
        why.contains("HTTP 503") && why.contains("3 attempt"),
        "{why}"
    );
}

#[tokio::test]
async fn a_stalled_layer_leaves_the_look_unknown_at_its_time_limit() {
    let (registry, layers) = registry_with_image().await;
    let proxy = Proxy::start(
        registry.addr,
        layers[1].digest(),
        Fault::Stall { code: 200 },
    )
    .await;
    let limits = PeekLimits {
        time: Duration::from_secs(2),
        ..PeekLimits::default()
    };
    let started = Instant::now();
    let answer = peek_via(&proxy, &limits).await.unwrap();
    assert_eq!(
        answer,
        OsReleasePeek::Unknown("no answer within 2 s".into())
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_registry_that_is_down_is_one_line_unavailable() {
    let host = format!("127.0.0.1:{}", registry::free_port());
    let err = resolve(
        &format!("{host}/test/x:1"),
        &fast_retries(vec![host.clone()]),
    )
    .await
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        matches!(
            err.downcast_ref::<PullError>(),
            Some(PullError::Unavailable { .. })
        ),
        "{msg}"
    );
    assert!(
        msg.contains(&host) && msg.contains("refused") && !msg.contains('\n'),
        "{msg}"
    );
}

#[tokio::test]
async fn a_mirror_that_fails_a_blob_hands_it_to_the_origin() {
    let (registry, layers) = registry_with_image().await;
    let digest = layers[0].digest();
    // The mirror fronts the same registry but keeps failing the big blob.
    let mirror = Proxy::start(registry.addr, digest.clone(), Fault::ALWAYS_503).await;
    let origin = registry.host();
    let opts = PullOptions {
        mirrors: vec![ocimetal::config::RegistryMirror {
            registry: origin.clone(),
            endpoint: format!("http://{}", mirror.host()),
        }],
        ..fast_retries(vec![origin.clone()])
    };
    let root = tempfile::tempdir().unwrap();
    let resolved = resolve(&format!("{origin}/test/faults:1"), &opts)
        .await
        .unwrap();
    assert_eq!(
        resolved.source,
        mirror.host(),
        "resolved through the mirror"
    );
    let sink = Box::new(UnpackSink {
        root: root.path().to_path_buf(),
    });
    pull_into_sink(&resolved, &opts, sink).await.unwrap();
    assert_big_pulled(&root);
    assert_eq!(mirror.seen(&digest).len(), 3, "the mirror had its retries");
}

#[tokio::test]
async fn downloads_start_before_the_target_is_ready() {
    let (registry, layers) = registry_with_image().await;
    let proxy = Proxy::start(
        registry.addr,
        "/blobs/".into(),
        Fault::DropMidBody { times: 0 },
    )
    .await;
    let opts = fast_retries(vec![proxy.host()]);
    let resolved = resolve(&format!("{}/test/faults:1", proxy.host()), &opts)
        .await
        .unwrap();
    let (root_tx, root_rx) = std::sync::mpsc::channel();
    let pull = tokio::spawn({
        let opts = opts.clone();
        async move { pull_when_ready(&resolved, &opts, root_rx).await }
    });
    // Both layers are requested while the target does not exist yet.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while layers.iter().any(|l| proxy.seen(&l.digest()).is_empty()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no blob requests before the target was ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let root = tempfile::tempdir().unwrap();
    root_tx.send(root.path().to_path_buf()).unwrap();
    pull.await.unwrap().unwrap();
    assert_big_pulled(&root);
    assert_small_pulled(&root);
}

#[tokio::test]
async fn a_target_that_never_comes_ends_the_pull_with_an_error() {
    let (registry, _layers) = registry_with_image().await;
    let opts = fast_retries(vec![registry.host()]);
    let resolved = resolve(&format!("{}/test/faults:1", registry.host()), &opts)
        .await
        .unwrap();
    let (root_tx, root_rx) = std::sync::mpsc::channel::<std::path::PathBuf>();
    drop(root_tx);
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        pull_when_ready(&resolved, &opts, root_rx),
    )
    .await
    .expect("the pull ends")
    .unwrap_err();
    assert!(format!("{err:#}").contains("never made ready"), "{err:#}");
}

#[tokio::test]
async fn a_rate_limited_blob_waits_as_long_as_retry_after_says() {
    let (registry, layers) = registry_with_image().await;
    for (target, code) in [(layers[1].digest(), 429), ("/manifests/".to_string(), 503)] {
        let proxy = Proxy::start(
            registry.addr,
            target.clone(),
            Fault::Status {
                code,
                retry_after: Some(2),
                times: 1,
            },
        )
        .await;
        // The backoff alone would retry after 20 ms.
        let (result, root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
        result.unwrap();
        assert_small_pulled(&root);
        let requests = proxy.seen(&target);
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert_eq!(requests[0].status, Some(code));
        let waited = requests[1].at - requests[0].at;
        assert!(
            waited >= Duration::from_millis(1900),
            "{target}: HTTP {code} with Retry-After: 2 retried after {waited:?}"
        );
    }
}

#[tokio::test]
async fn a_token_registry_gets_bearer_tokens_and_a_fresh_one_when_it_expires() {
    let (registry, layers) = registry_with_image().await;
    // The manifest and the config use the first token; the layers find it expired.
    let proxy = Proxy::start(
        registry.addr,
        String::new(),
        Fault::BearerGate { rotate_after: 2 },
    )
    .await;
    let (result, root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
    result.unwrap();
    assert_big_pulled(&root);
    assert_small_pulled(&root);

    for layer in &layers {
        let requests = proxy.seen(&layer.digest());
        assert_eq!(
            requests.first().and_then(|r| r.status),
            Some(401),
            "{requests:?}"
        );
        let served = requests.last().unwrap();
        assert_eq!(served.status, None, "{requests:?}");
        assert_eq!(served.authorization.as_deref(), Some("Bearer token-1"));
    }
    assert!(proxy.seen("/token").len() >= 2);
}

#[tokio::test]
async fn a_tampered_manifest_fails_verification() {
    let (registry, _layers) = registry_with_image().await;
    let proxy = Proxy::start(registry.addr, "/manifests/".into(), Fault::Corrupt).await;
    let (result, _root) = pull_via(&proxy, &fast_retries(vec![proxy.host()])).await;
    let err = result.unwrap_err();
    let pull_error = err.downcast_ref::<PullError>().expect("a PullError");
    assert!(
        matches!(
            pull_error,
            PullError::Verification {
                what: "manifest",
                ..
            }
        ),
        "{err:#}"
    );
    assert!(err.to_string().contains("Docker-Content-Digest"), "{err:#}");
    assert!(!err.to_string().contains('\n'));
}

/// Runs `ocimetal pull` of `test/faults:1` through `proxy`.
async fn ocimetal_pull_via(proxy: &Proxy) -> peak::Run {
    let dest = tempfile::tempdir().unwrap();
    let mut measured = peak::measured(env!("CARGO_BIN_EXE_ocimetal"));
    measured
        .command()
        .arg("pull")
        .args(["--platform", "linux/amd64", "--insecure-registry"])
        .arg(proxy.host())
        .arg(format!("{}/test/faults:1", proxy.host()))
        .arg(dest.path().join("root"))
        .env("OCIMETAL_LOG", "off");
    tokio::task::spawn_blocking(move || measured.run())
        .await
        .unwrap()
}

/// One line of at most `max` characters, without the flood's control characters, that
/// quotes no more of the answer than its start.
fn assert_one_short_line(stderr: &str, max: usize) {
    assert_eq!(stderr.lines().count(), 1, "{stderr:.400}");
    assert!(
        stderr.chars().count() <= max,
        "{} characters: {stderr:.400}",
        stderr.len()
    );
    assert!(!stderr.contains('\x1b'), "{stderr:.400}");
    assert!(!stderr.contains(&"A".repeat(300)), "{stderr:.400}");
}

/// Big enough that reading it whole takes several times the allowed memory.
const FLOOD_BYTES: usize = 600 << 20;

#[tokio::test]
async fn a_huge_error_answer_is_one_short_line_in_bounded_memory() {
    let registry = TestRegistry::start();
    let proxy = Proxy::start(
        registry.addr,
        "/manifests/".into(),
        Fault::Flood {
            code: 400,
            bytes: FLOOD_BYTES,
        },
    )
    .await;
    let peak::Run {
        code,
        stderr,
        max_rss_kib: max_rss,
        took,
    } = ocimetal_pull_via(&proxy).await;
    eprintln!("HTTP 400 with 600 MiB: peak RSS {max_rss} KiB, {took:?}: {stderr}");
    assert_eq!(code, 1, "{stderr:.400}");
    assert!(
        stderr.contains(&proxy.host())
            && stderr.contains("HTTP 400: {\"token\":\"bad [2J request second line AAAA"),
        "{stderr:.400}"
    );
    assert_one_short_line(&stderr, 500);
    assert!(max_rss <= MAX_RSS_KIB, "peak RSS {max_rss} KiB");
}

#[tokio::test]
async fn a_huge_token_answer_is_refused_in_bounded_memory() {
    let registry = TestRegistry::start();
    for code in [200, 400] {
        let proxy = Proxy::start(
            registry.addr,
            String::new(),
            Fault::TokenFlood {
                code,
                bytes: FLOOD_BYTES,
            },
        )
        .await;
        let peak::Run {
            code: status,
            stderr,
            max_rss_kib: max_rss,
            took,
        } = ocimetal_pull_via(&proxy).await;
        eprintln!("token endpoint {code} with 600 MiB: peak RSS {max_rss} KiB, {took:?}: {stderr}");
        assert_eq!(status, 1, "{stderr:.400}");
        assert!(stderr.contains(&proxy.host()), "{stderr:.400}");
        let expected = if code == 200 {
            format!(
                "token endpoint http://{}/token: answer is larger than 1 MiB",
                proxy.host()
            )
        } else {
            format!(
                "token endpoint http://{}/token: HTTP {code}: {{\"token\":\"bad [2J request",
                proxy.host()
            )
        };
        assert!(stderr.contains(&expected), "{stderr:.400}");
        assert_one_short_line(&stderr, 500);
        assert!(
            max_rss <= MAX_RSS_KIB,
            "HTTP {code}: peak RSS {max_rss} KiB"
        );
        assert_eq!(proxy.seen("/token").len(), 1, "a refusal is not retried");
    }
}

/// Resolves the image through `proxy` with one second for each manifest and token request;
/// the error, and as one string. It must be one line naming the proxy, within ten seconds.
async fn resolve_with_one_second_limits(proxy: &Proxy) -> (anyhow::Error, String) {
    let opts = PullOptions {
        time_limits: RequestTimeLimits {
            manifest: Duration::from_secs(1),
            token: Duration::from_secs(1),
        },
        ..fast_retries(vec![proxy.host()])
    };
    let start = Instant::now();
    let err = resolve(&format!("{}/test/faults:1", proxy.host()), &opts)
        .await
        .unwrap_err();
    let (msg, took) = (format!("{err:#}"), start.elapsed());
    eprintln!("through a trickling proxy: {took:?}: {msg}");
    assert!(msg.contains(&proxy.host()) && !msg.contains('\n'), "{msg}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    (err, msg)
}

#[tokio::test]
async fn a_trickled_manifest_ends_at_its_time_limit() {
    let registry = TestRegistry::start();
    let proxy = Proxy::start(registry.addr, "/manifests/".into(), Fault::Trickle).await;
    let (err, msg) = resolve_with_one_second_limits(&proxy).await;
    assert!(
        matches!(
            err.downcast_ref::<PullError>(),
            Some(PullError::Unavailable { .. })
        ),
        "{msg}"
    );
    // Three attempts of one second each, and the short waits between them.
    assert_eq!(proxy.seen("/manifests/").len(), 3, "{msg}");
}

#[tokio::test]
async fn a_trickled_token_ends_at_its_time_limit() {
    let registry = TestRegistry::start();
    let proxy = Proxy::start(registry.addr, String::new(), Fault::TokenTrickle).await;
    let (_, msg) = resolve_with_one_second_limits(&proxy).await;
    let tokens = proxy.seen("/token").len();
    assert!((1..=3).contains(&tokens), "{tokens} token requests: {msg}");
}

#[tokio::test]
async fn an_endless_header_is_refused_in_bounded_memory() {
    let registry = TestRegistry::start();
    let proxy = Proxy::start(
        registry.addr,
        "/manifests/".into(),
        Fault::HeaderFlood { bytes: FLOOD_BYTES },
    )
    .await;
    let run = ocimetal_pull_via(&proxy).await;
    eprintln!(
        "a 600 MiB header: peak RSS {} KiB, {:?}: {}",
        run.max_rss_kib, run.took, run.stderr
    );
    assert_eq!(run.code, 1, "{:.400}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("registry {} unavailable", proxy.host()))
            && run.stderr.ends_with("message head is too large"),
        "{:.400}",
        run.stderr
    );
    assert_one_short_line(&run.stderr, 500);
    assert!(
        run.max_rss_kib <= MAX_RSS_KIB,
        "peak RSS {} KiB",
        run.max_rss_kib
    );
}

#[tokio::test]
async fn a_stalled_error_answer_is_quoted_after_ten_seconds() {
    let registry = TestRegistry::start();
    let proxy = Proxy::start(
        registry.addr,
        "/manifests/".into(),
        Fault::Stall { code: 400 },
    )
    .await;
    let run = ocimetal_pull_via(&proxy).await;
    eprintln!("a stalled 400: {:?}: {}", run.took, run.stderr);
    assert_eq!(run.code, 1, "{:.400}", run.stderr);
    assert!(
        run.stderr
            .ends_with("manifests/1: HTTP 400: {\"token\":\"bad [2J request second line"),
        "{:.400}",
        run.stderr
    );
    assert!(
        run.took >= Duration::from_secs(9) && run.took < Duration::from_secs(30),
        "{:?}",
        run.took
    );
}
