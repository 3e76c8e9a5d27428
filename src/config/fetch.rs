//! Fetching an order document (node JSON, configdrive) over HTTP(S), with short timeouts
//! and a size limit per document.

use crate::bounded::{self, BodyError};
use anyhow::{bail, Context};
use std::time::Duration;

/// Time allowed to open the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the whole request, body included.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// True when `location` is an http(s) URL rather than a path.
pub fn is_url(location: &str) -> bool {
    // Only the start is looked at: the text may be a configdrive of megabytes.
    let start = location.trim_start();
    ["http://", "https://"].iter().any(|scheme| {
        start
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
}

/// The URL as it may be logged: no password, no query (signed URLs carry tokens there).
///
/// Text that is not a URL with a host (a mistyped order, which is exactly what ends up in an
/// error message) gets the same treatment by its shape: whatever precedes an `@` in the
/// authority is hidden, and so is a query.
pub fn display_url(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) if url.has_host() => {
            if url.password().is_some() {
                let _ = url.set_password(Some("redacted"));
            }
            if url.query().is_some() {
                url.set_query(Some("redacted"));
            }
            url.to_string()
        }
        _ => redact_unparsed(location),
    }
}

/// Hides the user information and query of something shaped like `[scheme://]user:pw@host/…?q`.
fn redact_unparsed(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(at) => text.split_at(at + 3),
        None => ("", text),
    };
    let (rest, query) = match rest.find('?') {
        Some(at) => (&rest[..at], "?redacted"),
        None => (rest, ""),
    };
    // The last `@` ends the user information even when a password holds a `/` or `@`.
    let rest = match rest.rfind('@') {
        Some(at) => format!("redacted{}", &rest[at..]),
        None => rest.to_string(),
    };
    format!("{scheme}{rest}{query}")
}

/// The server has no such document (HTTP 404): for a per-machine URL, "not this one".
#[derive(Debug)]
pub struct NotFound;

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("server answered 404 Not Found")
    }
}

impl std::error::Error for NotFound {}

/// The server could not be reached (yet): the network may still be coming up.
#[derive(Debug)]
struct Unreachable(String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Waits before the attempts after the first when the server cannot be reached: about 15 s
/// in all, for a network that is still coming up.
const UNREACHABLE_WAITS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];

/// GETs `url` and returns the body, at most `limit` bytes; `what` names the document in the
/// error. A server that cannot be reached is tried again a few times with growing waits.
///
/// Runs on its own thread with its own runtime so that it works whether or not the caller
/// is already inside a Tokio runtime.
pub fn fetch(url: &str, what: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let owned = url.to_string();
    let result = std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the HTTP client runtime")?;
                runtime.block_on(async {
                    let mut waits = UNREACHABLE_WAITS.iter();
                    loop {
                        match get(&owned, limit).await {
                            Err(err) if err.is::<Unreachable>() => match waits.next() {
                                Some(wait) => {
                                    tracing::info!("{err}; trying again in {wait:?}");
                                    tokio::time::sleep(*wait).await;
                                }
                                None => return Err(err),
                            },
                            other => return other,
                        }
                    }
                })
            })
            .join()
    });
    let body = match result {
        Ok(body) => body,
        Err(_) => bail!("the HTTP client thread failed"),
    };
    body.with_context(|| format!("fetching the {what} from {}", display_url(url)))
}

async fn get(url: &str, limit: u64) -> anyhow::Result<Vec<u8>> {
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .build()
        .context("building the HTTP client")?;
    // reqwest errors print the full URL; ours already names it safely.
    let mut response = client.get(url).send().await.map_err(|err| {
        if err.is_connect() {
            anyhow::Error::new(Unreachable(err.without_url().to_string()))
        } else {
            anyhow::anyhow!("{}", err.without_url())
        }
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(NotFound.into());
    }
    if !status.is_success() {
        bail!("server answered {status}");
    }
    match bounded::read_body(&mut response, limit).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge(limit)) => bail!("document larger than {}", bounded::size(limit)),
        Err(BodyError::Transport(err)) => bail!("{}", err.without_url()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves each `(path, status, body)` once per request on 127.0.0.1; returns the base URL.
    pub(crate) fn serve(routes: Vec<(&'static str, u16, Vec<u8>)>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (status, body) = routes
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map(|(_, s, b)| (*s, b.clone()))
                    .unwrap_or((404, b"not found".to_vec()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        base
    }

    #[test]
    fn fetches_a_document() {
        let base = serve(vec![("/node.json", 200, b"{\"uuid\":\"x\"}".to_vec())]);
        let body = fetch(&format!("{base}/node.json"), "node JSON", 100).unwrap();
        assert_eq!(body, b"{\"uuid\":\"x\"}");
        let err = fetch(&format!("{base}/node.json"), "node JSON", 11).unwrap_err();
        assert!(
            format!("{err:#}").ends_with("/node.json: document larger than 11 bytes"),
            "{err:#}"
        );
    }

    #[test]
    fn http_error_is_one_clear_error() {
        let base = serve(vec![]);
        let err = fetch(&format!("{base}/missing.json?sig=s3cr3t"), "node JSON", 100).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("fetching the node JSON from"), "{text}");
        assert!(text.contains("404"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn connection_refused_is_an_error() {
        // Bind then drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = fetch(&format!("http://127.0.0.1:{port}/n.json"), "node JSON", 100).unwrap_err();
        assert!(format!("{err:#}").contains("fetching the node JSON"));
    }

    #[test]
    fn urls_are_recognised_and_displayed_safely() {
        assert!(is_url("http://a/b") && is_url("HTTPS://a/b"));
        assert!(!is_url("/srv/node.json") && !is_url("file:///x"));
        assert_eq!(
            display_url("https://user:pw@host/p?temp_url_sig=abc"),
            "https://user:redacted@host/p?redacted"
        );
        // Not URLs with a host, as mistyped orders are: hidden by their shape.
        for (text, shown) in [
            ("http://user:pw@", "http://redacted@"),
            (
                "http://user:pw@host:99999/p",
                "http://redacted@host:99999/p",
            ),
            (
                "http://u:pa/ss@host/p?sig=x",
                "http://redacted@host/p?redacted",
            ),
            ("user:pw@proxy:3142", "redacted@proxy:3142"),
            ("proxy.lab:3142", "proxy.lab:3142"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(display_url(text), shown, "{text}");
        }
    }
}
