//! Event reporting to a webhook, in the shape of curtin's and cloud-init's webhook reporter:
//! one JSON object per POST, `start` and `finish` per step and for the whole install.
//!
//! Delivery never blocks or fails the install: events go through a bounded queue to a thread
//! of their own, each retried with backoff; what cannot be delivered is logged and dropped.

use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Events waiting for delivery at most; more are dropped (and logged).
const QUEUE: usize = 256;
/// Attempts per event, with the backoff doubling from the first delay.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// `start` or `finish`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    Start,
    Finish,
}

/// How a step or the install ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    Success,
    Fail,
    Warn,
}

/// One reported event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `ocimetal` for the whole install, `ocimetal/<step>` for a step.
    pub name: String,
    pub event_type: EventType,
    /// Set on `finish` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Outcome>,
    pub description: String,
    pub origin: &'static str,
    /// Unix time in seconds.
    pub timestamp: f64,
    /// More fields: the deployment record, the error and the failing command's last lines.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Event {
    /// A `start` event.
    pub fn start(name: &str, description: impl Into<String>) -> Self {
        Self::new(name, EventType::Start, None, description.into())
    }

    /// A `finish` event with its result.
    pub fn finish(name: &str, result: Outcome, description: impl Into<String>) -> Self {
        Self::new(name, EventType::Finish, Some(result), description.into())
    }

    /// The same event with one more field.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    fn new(
        name: &str,
        event_type: EventType,
        result: Option<Outcome>,
        description: String,
    ) -> Self {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            name: name.to_string(),
            event_type,
            result,
            description,
            origin: "ocimetal",
            timestamp,
            extra: Map::new(),
        }
    }
}

/// Posts events to one URL from a thread of its own.
pub struct Reporter {
    queue: SyncSender<Vec<u8>>,
    /// Events queued and not yet delivered or given up.
    pending: Arc<(Mutex<usize>, Condvar)>,
    dropped: Mutex<bool>,
}

impl Reporter {
    /// Starts delivering to `url`; `authorization` is sent as the `Authorization` header and
    /// never logged.
    pub fn start(url: &str, authorization: Option<String>) -> anyhow::Result<Self> {
        let target = reqwest::Url::parse(url)?;
        let (queue, events) = sync_channel(QUEUE);
        let pending = Arc::new((Mutex::new(0), Condvar::new()));
        let worker = Worker {
            url: target,
            authorization,
            pending: pending.clone(),
        };
        std::thread::Builder::new()
            .name("ocimetal-report".into())
            .spawn(move || worker.run(events))?;
        Ok(Self {
            queue,
            pending,
            dropped: Mutex::new(false),
        })
    }

    /// Queues an event; never waits.
    pub fn send(&self, event: &Event) {
        let Ok(body) = serde_json::to_vec(event) else {
            return;
        };
        let (count, _) = &*self.pending;
        if let Ok(mut n) = count.lock() {
            *n += 1;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(body)
        {
            self.delivered();
            if let Ok(mut dropped) = self.dropped.lock() {
                if !std::mem::replace(&mut *dropped, true) {
                    tracing::warn!("report: the webhook is behind; dropping events");
                }
            }
        }
    }

    /// Waits until every queued event is delivered or given up, at most `timeout`; true when
    /// nothing is left.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (count, changed) = &*self.pending;
        let Ok(mut n) = count.lock() else {
            return false;
        };
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("report: {} events not delivered in time", *n);
                return false;
            }
            n = match changed.wait_timeout(n, left) {
                Ok((n, _)) => n,
                Err(_) => return false,
            };
        }
        true
    }

    fn delivered(&self) {
        mark_delivered(&self.pending);
    }
}

fn mark_delivered(pending: &(Mutex<usize>, Condvar)) {
    let (count, changed) = pending;
    if let Ok(mut n) = count.lock() {
        *n = n.saturating_sub(1);
        changed.notify_all();
    }
}

struct Worker {
    url: reqwest::Url,
    authorization: Option<String>,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl Worker {
    fn run(self, events: Receiver<Vec<u8>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => return tracing::warn!("report: cannot start ({err}); no events sent"),
        };
        let client = match reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(POST_TIMEOUT)
            .build()
        {
            Ok(client) => client,
            Err(err) => return tracing::warn!("report: cannot start ({err}); no events sent"),
        };
        while let Ok(body) = events.recv() {
            runtime.block_on(self.deliver(&client, body));
            mark_delivered(&self.pending);
        }
    }

    async fn deliver(&self, client: &reqwest::Client, body: Vec<u8>) {
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let mut request = client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(value) = &self.authorization {
                request = request.header(reqwest::header::AUTHORIZATION, value);
            }
            let problem = match request.send().await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => format!("answered {}", response.status()),
                Err(err) => err.without_url().to_string(),
            };
            if attempt == ATTEMPTS {
                tracing::warn!(
                    "report: {} {problem}; event dropped after {ATTEMPTS} attempts",
                    shown(&self.url)
                );
                return;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
}

/// The URL without credentials, for the log.
fn shown(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.to_string()
}

/// A webhook for tests.
#[cfg(test)]
pub mod test_webhook {
    use serde_json::Value;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// Accepts POSTs on 127.0.0.1, answering the first `fail_first` with 503; returns the URL
    /// and a receiver of (authorization header, body).
    pub fn receiver(fail_first: usize) -> (String, std::sync::mpsc::Receiver<(String, Value)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://user:pw@{}/events?token=x",
            listener.local_addr().unwrap()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut auth, mut line) = (0, String::new(), String::new());
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if lower.starts_with("authorization:") {
                        auth = line[14..].trim().to_string();
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let status = if n < fail_first { "503 Busy" } else { "200 OK" };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                if n >= fail_first {
                    let _ = tx.send((auth, serde_json::from_slice(&body).unwrap()));
                }
            }
        });
        (url, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::test_webhook::receiver;
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn events_arrive_in_order_with_their_fields_after_retries() {
        let (url, received) = receiver(2);
        let reporter = Reporter::start(&url, Some("Bearer sekret".into())).unwrap();
        reporter.send(&Event::start("ocimetal/wipe", "wipe /dev/sda"));
        reporter.send(
            &Event::finish("ocimetal", Outcome::Fail, "step wipe failed")
                .with("output_tail", serde_json::json!(["a", "b"])),
        );
        assert!(reporter.flush(Duration::from_secs(20)));
        let (auth, first) = received.recv().unwrap();
        assert_eq!(auth, "Bearer sekret");
        assert_eq!(first["name"], "ocimetal/wipe");
        assert_eq!(first["event_type"], "start");
        assert_eq!(first["origin"], "ocimetal");
        assert!(first.get("result").is_none());
        assert!(first["timestamp"].as_f64().unwrap() > 1.7e9);
        let (_, second) = received.recv().unwrap();
        assert_eq!(second["result"], "FAIL");
        assert_eq!(second["output_tail"][1], "b");
    }

    #[test]
    fn an_unreachable_webhook_costs_the_install_no_more_than_the_flush_allows() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let reporter = Reporter::start(&format!("http://127.0.0.1:{port}/"), None).unwrap();
        let start = Instant::now();
        for n in 0..(QUEUE + 10) {
            reporter.send(&Event::start(&format!("ocimetal/{n}"), ""));
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "sending never waits"
        );
        assert!(!reporter.flush(Duration::from_millis(300)));
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn the_logged_url_has_no_credentials() {
        let url = reqwest::Url::parse("https://u:p@hooks.example/x?sig=1").unwrap();
        assert_eq!(shown(&url), "https://hooks.example/x");
    }
}
