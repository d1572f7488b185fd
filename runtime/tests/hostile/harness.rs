//! The server under attack and the well-behaved parties that must not notice the attack.
//!
//! - [`Harness`]: a real server on a loopback port with every event recorded (through
//!   `set_event_callback`), so a case can find a connection by the `hostile_tag` cookie it sent
//!   and assert which events did — or did not — happen.
//! - [`Witness`] + [`Feed`]: a well-behaved tokio-tungstenite client subscribed to a topic, and
//!   a publisher that broadcasts a numbered sequence to it for as long as the attack lasts. The
//!   witness fails the case unless it receives every message, in order, and then the end marker
//!   with the exact count.
//! - Process figures (`/proc/self/status`, `/proc/self/fd`): resident memory, its peak, open
//!   descriptors.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wse_core::ConnId;
use wse_core::auth::encode_jwt;
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_runtime::server::{Server, ServerEvent, ServerHandle};

/// The HS256 secret of the JWT cases.
pub(crate) const SECRET: &[u8] = b"hostile-suite-secret-of-at-least-32-bytes!";

/// Generous bound for anything that should happen "at once" on loopback.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Messages the feed may run ahead of its witness. Keeps the witness's queue far below any
/// outbound budget, so the only connection a budget can close is the attacker's.
const FEED_AHEAD: usize = 16;

/// A server with its events recorded.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) server: ServerHandle,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    /// Events are taken from the queue only when the harness looks for one ([`Harness::pull`])
    /// instead of by a callback: the application is slow, and the server's queue fills up.
    pulls: bool,
}

impl Harness {
    /// Starts a server on `127.0.0.1:0` with the defaults changed by `configure`.
    pub(crate) async fn start(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
        let mut config = ServerConfig {
            port: 0,
            ..Default::default()
        };
        configure(&mut config);
        let server = ServerHandle::start(&config).await.expect("server starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let installed = server
            .set_event_callback(move |e| sink.lock().expect("event log").push(e))
            .await;
        assert!(installed, "the event callback is the only consumer");
        Harness {
            server,
            events,
            pulls: false,
        }
    }

    /// [`Harness::start`] without a callback: events stay in the server's queue until
    /// [`Harness::pull`] (called by [`Harness::conn_of`]) takes them.
    pub(crate) async fn start_unconsumed(configure: impl FnOnce(&mut ServerConfig)) -> Harness {
        let mut config = ServerConfig {
            port: 0,
            ..Default::default()
        };
        configure(&mut config);
        let server = ServerHandle::start(&config).await.expect("server starts");
        Harness {
            server,
            events: Arc::new(Mutex::new(Vec::new())),
            pulls: true,
        }
    }

    /// Moves whatever the server queued into the log (only for [`Harness::start_unconsumed`]).
    pub(crate) async fn pull(&self) {
        if self.pulls {
            let batch = self
                .server
                .next_events(usize::MAX, Duration::from_millis(1))
                .await;
            self.events.lock().expect("event log").extend(batch);
        }
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Runs `f` over every event recorded so far.
    pub(crate) fn with_events<R>(&self, f: impl FnOnce(&[ServerEvent]) -> R) -> R {
        f(&self.events.lock().expect("event log"))
    }

    /// Waits (polling) until `cond` holds; panics naming `what` after `timeout`.
    pub(crate) async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Harness) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The id of the connection whose connect event carried the cookie `hostile_tag=<tag>`.
    pub(crate) async fn conn_of(&self, tag: &str) -> ConnId {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.pull().await;
            let found = self.with_events(|evs| evs.iter().find_map(|e| connect_with_tag(e, tag)));
            if let Some(id) = found {
                return id;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no connect event of {tag} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// How many connect events (plain or authenticated) were recorded.
    pub(crate) fn connects(&self) -> usize {
        self.with_events(|evs| {
            evs.iter()
                .filter(|e| matches!(e, ServerEvent::Connect(..) | ServerEvent::AuthConnect(..)))
                .count()
        })
    }

    /// How many disconnect events were recorded.
    pub(crate) fn disconnects(&self) -> usize {
        self.with_events(|evs| {
            evs.iter()
                .filter(|e| matches!(e, ServerEvent::Disconnect(_)))
                .count()
        })
    }

    /// A fresh well-behaved client can still connect, is registered, and leaves cleanly.
    /// `token`: sent as the `access_token` cookie (JWT servers).
    pub(crate) async fn assert_still_serving(&self, tag: &str, token: Option<&str>) {
        let mut ws = tungstenite_client(self.addr(), tag, token).await;
        let id = self.conn_of(tag).await;
        assert!(self.server.connections().contains(&id), "{tag} registered");
        ws.close(None).await.expect("close sent");
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, ws.next()).await {}
        self.wait_until(&format!("{tag} gone"), WAIT, |h| {
            !h.server.connections().contains(&id)
        })
        .await;
    }
}

/// The connection id of a connect event whose cookies carry `hostile_tag=<tag>`.
fn connect_with_tag(event: &ServerEvent, tag: &str) -> Option<ConnId> {
    let (id, cookies) = match event {
        ServerEvent::Connect(id, cookies) | ServerEvent::AuthConnect(id, _, cookies) => {
            (id, cookies)
        }
        _ => return None,
    };
    let wanted = format!("hostile_tag={tag}");
    cookies
        .split(';')
        .any(|c| c.trim() == wanted)
        .then_some(*id)
}

/// The `Cookie` header line a raw client sends to be found by [`Harness::conn_of`].
pub(crate) fn tag_header(tag: &str) -> String {
    format!("Cookie: hostile_tag={tag}\r\n")
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tokio-tungstenite client carrying the tag cookie (and a token cookie when given).
pub(crate) async fn tungstenite_client(addr: SocketAddr, tag: &str, token: Option<&str>) -> Ws {
    let mut req = format!("ws://{addr}/wse")
        .into_client_request()
        .expect("a valid url");
    let cookie = match token {
        Some(t) => format!("access_token={t}; hostile_tag={tag}"),
        None => format!("hostile_tag={tag}"),
    };
    req.headers_mut()
        .insert("Cookie", cookie.parse().expect("a valid header"));
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connected in time")
        .expect("upgraded");
    ws
}

/// JWT settings with [`SECRET`] (HS256).
pub(crate) fn jwt(config: &mut ServerConfig) {
    config.jwt = Some(JwtSettings {
        secret: SECRET.to_vec(),
        ..Default::default()
    });
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("a sane clock")
}

/// An HS256 token signed with `key` over `claims`.
pub(crate) fn token_with(claims: &Value, key: &[u8]) -> String {
    encode_jwt(
        claims.as_object().expect("claims object"),
        key,
        JwtAlgorithm::Hs256,
        None,
    )
    .expect("token minted")
}

/// A valid token for `sub`, ten minutes to live.
pub(crate) fn good_token(sub: &str) -> String {
    token_with(&json!({"sub": sub, "exp": unix_now() + 600}), SECRET)
}

/// A well-behaved subscriber that must receive the whole [`Feed`].
#[derive(Debug)]
pub(crate) struct Witness {
    reader: JoinHandle<usize>,
    progress: Arc<AtomicUsize>,
}

impl Witness {
    /// Connects (with `token` on JWT servers), subscribes to `topic` and starts reading.
    pub(crate) async fn join(h: &Harness, topic: &str, token: Option<&str>) -> Witness {
        let tag = format!("witness-{topic}");
        let ws = tungstenite_client(h.addr(), &tag, token).await;
        let id = h.conn_of(&tag).await;
        let added = h
            .server
            .subscribe_connection(id, &[topic.to_owned()], None, None)
            .expect("subscribed");
        assert_eq!(added, [topic.to_owned()]);
        let progress = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_feed(ws, Arc::clone(&progress)));
        Witness { reader, progress }
    }

    /// Ticks received so far (the feed paces itself on this).
    pub(crate) fn progress(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.progress)
    }

    /// Waits for the end marker; returns how many ticks arrived (all of them, in order, or the
    /// reader panicked and this fails the case).
    pub(crate) async fn finish(self) -> usize {
        tokio::time::timeout(Duration::from_secs(30), self.reader)
            .await
            .expect("the witness finished in time")
            .expect("the witness saw every message in order")
    }
}

/// The witness's reader: ticks `0, 1, 2, …` in order, then `end` with the count, then a clean
/// close. Anything else the server sends (`server_ready`, pings) is ignored.
async fn read_feed(mut ws: Ws, progress: Arc<AtomicUsize>) -> usize {
    let mut expected = 0usize;
    loop {
        let msg = match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(msg))) => msg,
            other => panic!("witness lost its feed after {expected} ticks: {other:?}"),
        };
        let v: Value = match &msg {
            Message::Text(t) => serde_json::from_str(t).expect("JSON text"),
            Message::Binary(b) => serde_json::from_slice(b).expect("JSON binary"),
            Message::Close(f) => panic!("witness closed by the server after {expected}: {f:?}"),
            _ => continue,
        };
        match v["t"].as_str() {
            Some("tick") => {
                assert_eq!(v["p"]["n"], expected, "ticks arrive in order, none missing");
                expected += 1;
                progress.store(expected, Ordering::Release);
            }
            Some("end") => {
                assert_eq!(v["p"]["count"], expected, "every tick arrived");
                break;
            }
            _ => {}
        }
    }
    ws.close(None).await.expect("close sent");
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, ws.next()).await {}
    expected
}

/// Publishes `tick` messages to a topic while an attack runs.
#[derive(Debug)]
pub(crate) struct Feed {
    stop: Arc<AtomicBool>,
    task: JoinHandle<usize>,
}

impl Feed {
    /// Publishes tick `n` (padded with `pad` bytes) every `interval` (zero: as fast as the
    /// witness reads), never more than `FEED_AHEAD` ticks ahead of `witness`.
    pub(crate) fn start(
        server: &Server,
        topic: &str,
        witness: &Witness,
        pad: usize,
        interval: Duration,
    ) -> Feed {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(publish_feed(
            server.clone(),
            topic.to_owned(),
            witness.progress(),
            Arc::clone(&stop),
            "x".repeat(pad),
            interval,
        ));
        Feed { stop, task }
    }

    /// Stops (after at least `FEED_MIN` ticks), publishes the end marker, and returns the tick
    /// count.
    pub(crate) async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Release);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the feed finished in time")
            .expect("the feed task ran")
    }
}

/// Ticks published before a stop request is honoured: every attack overlaps at least these.
const FEED_MIN: usize = 20;

async fn publish_feed(
    server: Server,
    topic: String,
    progress: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    pad: String,
    interval: Duration,
) -> usize {
    let mut n = 0usize;
    while n < FEED_MIN || !stop.load(Ordering::Acquire) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while n.saturating_sub(progress.load(Ordering::Acquire)) >= FEED_AHEAD {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the witness stalled at {} of {n}",
                progress.load(Ordering::Acquire)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.broadcast_local(
            &topic,
            &format!(r#"{{"t":"tick","p":{{"n":{n},"pad":"{pad}"}}}}"#),
        );
        n += 1;
        if interval.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(interval).await;
        }
    }
    server.broadcast_local(&topic, &format!(r#"{{"t":"end","p":{{"count":{n}}}}}"#));
    n
}

/// Held by every case that measures memory (or allocates a lot), so that no two of them run
/// at once: resident size is a figure of the whole process, and the test harness runs tests in
/// parallel threads. The light cases still run beside them.
static MEMORY_CASES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the memory-measuring cases before this one to finish; hold the guard to the end.
pub(crate) async fn measuring_memory() -> tokio::sync::MutexGuard<'static, ()> {
    MEMORY_CASES.lock().await
}

/// A figure from `/proc/self/status`, in bytes (`VmRSS`, `VmHWM`: reported in kB).
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in /proc/self/status"));
    let kb: u64 = line
        .trim_start_matches(key)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kb * 1024
}

/// Resident memory of this process (server, clients and harness alike).
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// Peak resident memory since the last [`reset_peak_rss`].
pub(crate) fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM")
}

/// Resets the peak to the current resident size (`/proc/self/clear_refs`, value 5).
pub(crate) fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs writable for our process");
}

/// Open file descriptors of this process.
pub(crate) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}
