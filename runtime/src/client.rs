//! The Rust client: a thin tokio driver around `wse-core`'s client machine
//! ([`wse_core::client::Client`]), the way the server's connection tasks drive
//! [`wse_core::conn::Connection`].
//!
//! The driver owns the socket and the machine; the application talks to it through a
//! [`ClientHandle`] (commands in, the machine's [`Event`]s out). The network is generic: a
//! [`Dialer`] opens the byte stream ([`TcpDialer`] on real sockets, the simulator's turmoil
//! dialer in `wse-sim`), and tokio-tungstenite runs the WebSocket handshake over it.
//!
//! One task per client. Every wait is a `select!` over the socket, the command channel and
//! the machine's one deadline, `biased` so that a seeded simulation replays exactly. The event
//! channel is bounded ([`ClientOptions::event_capacity`]): an application that stops reading
//! events stops the driver, and with it the reading of the socket (back-pressure towards the
//! server, whose slow-consumer budget then decides), never unbounded memory here.

use std::future::Future;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use rand_core::{OsRng, RngCore, SeedableRng};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use wse_core::client::{Client, ClientConfig, Event, Output};
use wse_core::config::ConfigError;
use wse_core::{Instant, WallClock};

/// Opens the byte stream a client speaks WebSocket over.
pub trait Dialer: Send + Sync + 'static {
    /// The connected stream.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Connects (one attempt).
    fn dial(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

/// Plain TCP to `host:port`, with `TCP_NODELAY`.
#[derive(Clone, Debug)]
pub struct TcpDialer {
    addr: String,
}

impl TcpDialer {
    /// Dials `addr` (`host:port`) on every attempt (DNS resolved each time).
    pub fn new(addr: impl Into<String>) -> TcpDialer {
        TcpDialer { addr: addr.into() }
    }
}

impl Dialer for TcpDialer {
    type Stream = tokio::net::TcpStream;

    async fn dial(&self) -> io::Result<tokio::net::TcpStream> {
        let stream = tokio::net::TcpStream::connect(self.addr.as_str()).await?;
        // Best effort: small frames must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// How the driver connects; the protocol behaviour is the machine's [`ClientConfig`].
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The WebSocket URL (`ws://host:port/wse?...`); its host and path go into the handshake,
    /// the [`Dialer`] decides where the bytes go.
    pub url: String,
    /// A JWT sent as `Authorization: Bearer` and as the `access_token` cookie, as the
    /// published Python client does.
    pub token: Option<String>,
    /// Dial plus WebSocket handshake, per attempt.
    pub connect_timeout: Duration,
    /// Largest message accepted from the server (the Python client's 1 MiB).
    pub max_message_size: usize,
    /// Events buffered for the application before the driver waits for it.
    pub event_capacity: usize,
    /// Seeds the machine's randomness (ids, reconnect jitter); `None` draws it from the OS.
    pub seed: Option<u64>,
    /// The wall-clock time at start (message timestamps); `None` reads the system clock once.
    pub wall_origin: Option<WallClock>,
}

impl ClientOptions {
    /// Defaults for `url`: no token, 10 s connect timeout, 1 MiB messages, 1024 events.
    pub fn new(url: impl Into<String>) -> ClientOptions {
        ClientOptions {
            url: url.into(),
            token: None,
            connect_timeout: Duration::from_secs(10),
            max_message_size: 1 << 20,
            event_capacity: 1024,
            seed: None,
            wall_origin: None,
        }
    }
}

/// What the application asks of a running client.
#[derive(Debug)]
enum Command {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
    Send(String, Value),
    Close,
}

/// The application's side of a running client.
#[derive(Debug)]
pub struct ClientHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::Receiver<Event>,
    task: JoinHandle<()>,
}

impl ClientHandle {
    /// Subscribes to `topics` (sent once ready; remembered across reconnects).
    pub fn subscribe(&self, topics: Vec<String>) {
        let _ = self.commands.send(Command::Subscribe(topics));
    }

    /// Unsubscribes from `topics`.
    pub fn unsubscribe(&self, topics: Vec<String>) {
        let _ = self.commands.send(Command::Unsubscribe(topics));
    }

    /// Sends an application message (queued, bounded, while not connected).
    pub fn send(&self, event_type: impl Into<String>, payload: Value) {
        let _ = self
            .commands
            .send(Command::Send(event_type.into(), payload));
    }

    /// Closes with 1000 and ends the driver (no reconnect).
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }

    /// The next event, `None` once the driver has ended and every event was taken.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Waits for the driver to end (after [`ClientHandle::close`], a terminal close code, or
    /// exhausted reconnect attempts). Events not taken yet are dropped.
    pub async fn join(self) {
        drop(self.events);
        let _ = self.task.await;
    }
}

/// Starts a client on the current tokio runtime.
pub fn spawn<D: Dialer>(
    dialer: D,
    options: ClientOptions,
    config: ClientConfig,
) -> Result<ClientHandle, ConfigError> {
    let wall = options.wall_origin.unwrap_or_else(|| {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        WallClock::from_unix_micros(micros)
    });
    let seed = options.seed.unwrap_or_else(|| OsRng.next_u64());
    let mut machine = Client::new(config, wall, seed)?;
    // The E2E generator: 32 bytes from the OS, or derived from the seed (simulation).
    let mut crypto_seed = [0u8; 32];
    match options.seed {
        Some(s) => {
            rand_chacha::ChaCha20Rng::seed_from_u64(s ^ 0x5eed_c0de).fill_bytes(&mut crypto_seed)
        }
        None => OsRng.fill_bytes(&mut crypto_seed),
    }
    machine.set_crypto_seed(crypto_seed);
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(options.event_capacity.max(1));
    let driver = Driver {
        dialer,
        options,
        machine,
        origin: tokio::time::Instant::now(),
        ws: None,
        events: events_tx,
    };
    let task = tokio::spawn(driver.run(commands_rx));
    Ok(ClientHandle {
        commands,
        events,
        task,
    })
}

struct Driver<D: Dialer> {
    dialer: D,
    options: ClientOptions,
    machine: Client,
    origin: tokio::time::Instant,
    ws: Option<WebSocketStream<D::Stream>>,
    events: mpsc::Sender<Event>,
}

/// What the select loop woke up for.
enum Wake {
    Command(Option<Command>),
    Socket(Option<Result<Message, tungstenite::Error>>),
    Timer,
}

impl<D: Dialer> Driver<D> {
    fn now(&self) -> Instant {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        Instant::from_micros(micros)
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let now = self.now();
        self.machine.start(now);
        let mut commands_open = true;
        loop {
            if !self.flush().await {
                return;
            }
            if self.machine.state().is_terminal() {
                return;
            }
            let deadline = self
                .machine
                .poll_timeout()
                .map(|at| self.origin + Duration::from_micros(at.as_micros()));
            let wake = {
                let socket = async {
                    match self.ws.as_mut() {
                        Some(ws) => ws.next().await,
                        None => std::future::pending().await,
                    }
                };
                let timer = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    cmd = commands.recv(), if commands_open => Wake::Command(cmd),
                    msg = socket => Wake::Socket(msg),
                    () = timer => Wake::Timer,
                }
            };
            let now = self.now();
            match wake {
                Wake::Command(Some(cmd)) => self.command(now, cmd),
                Wake::Command(None) => {
                    // Every handle is gone: nobody can read events any more.
                    commands_open = false;
                    self.machine.close(now);
                }
                Wake::Socket(Some(Ok(msg))) => self.message(now, msg),
                Wake::Socket(Some(Err(_)) | None) => {
                    self.ws = None;
                    self.machine.handle_closed(now, None);
                }
                Wake::Timer => self.machine.handle_timeout(now),
            }
        }
    }

    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Subscribe(topics) => self.machine.subscribe(now, &topics),
            Command::Unsubscribe(topics) => self.machine.unsubscribe(now, &topics),
            Command::Send(t, p) => {
                // A full offline queue drops its oldest entry and counts it (the machine's
                // documented bound); there is no caller to hand the error to.
                let _ = self.machine.send(now, &t, p);
            }
            Command::Close => self.machine.close(now),
        }
    }

    fn message(&mut self, now: Instant, msg: Message) {
        match msg {
            Message::Text(text) => self.machine.handle_text(now, text.as_str()),
            Message::Binary(data) => self.machine.handle_binary(now, &data),
            Message::Close(frame) => {
                self.ws = None;
                let code = frame.map_or(1005, |f| u16::from(f.code));
                self.machine.handle_closed(now, Some(code));
            }
            // tungstenite answers pings itself; pongs and raw frames mean nothing here.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    /// Carries out every pending output. `false` when the application is gone.
    async fn flush(&mut self) -> bool {
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Connect => self.connect().await,
                Output::SendText(text) => self.send(Message::text(text)).await,
                Output::SendBinary(frame) => self.send(Message::binary(frame)).await,
                Output::Close { code, reason } => {
                    if let Some(mut ws) = self.ws.take() {
                        let frame = CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.into(),
                        };
                        // Bounded: a peer that never answers the close must not hold us.
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(Some(frame)))
                            .await;
                    }
                }
                Output::Event(event) => {
                    if self.events.send(event).await.is_err() {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Writes one message; a failed write is the connection's end.
    async fn send(&mut self, msg: Message) {
        let sent = match self.ws.as_mut() {
            Some(ws) => ws.send(msg).await.is_ok(),
            None => true, // the machine learns of the loss from handle_closed
        };
        if !sent {
            self.ws = None;
            let now = self.now();
            self.machine.handle_closed(now, None);
        }
    }

    async fn connect(&mut self) {
        self.ws = None;
        let attempt = tokio::time::timeout(
            self.options.connect_timeout,
            handshake(&self.dialer, &self.options),
        )
        .await;
        let now = self.now();
        match attempt {
            Ok(Ok(ws)) => {
                self.ws = Some(ws);
                self.machine.handle_connected(now);
            }
            Ok(Err(_)) | Err(_) => self.machine.handle_connect_failed(now),
        }
    }
}

/// Dials and runs the WebSocket handshake (a free function: the driver's socket is not `Sync`
/// and must not be borrowed across the await).
async fn handshake<D: Dialer>(
    dialer: &D,
    options: &ClientOptions,
) -> Result<WebSocketStream<D::Stream>, tungstenite::Error> {
    let stream = dialer.dial().await.map_err(tungstenite::Error::Io)?;
    let mut request = options.url.as_str().into_client_request()?;
    if let Some(token) = &options.token {
        let headers = request.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert("authorization", v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("access_token={token}")) {
            headers.insert("cookie", v);
        }
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_message_size));
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(ws)
}
