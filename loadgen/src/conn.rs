//! Opening authenticated WebSocket connections from several loopback source addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use wse_core::auth::encode_jwt;
use wse_core::config::JwtAlgorithm;

/// One client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect or bind failed.
    #[error("tcp: {0}")]
    Tcp(#[from] std::io::Error),
    /// The WebSocket upgrade failed.
    #[error("upgrade: {0}")]
    Upgrade(#[from] tokio_tungstenite::tungstenite::Error),
    /// The token could not be made.
    #[error("token: {0}")]
    Token(String),
    /// The server closed or went silent before `server_ready`.
    #[error("no server_ready: {0}")]
    NotReady(String),
}

/// Where and how to connect.
#[derive(Debug)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The WebSocket path (`/wse`).
    pub path: String,
    /// HS256 secret the server validates tokens with.
    pub secret: Vec<u8>,
    /// How long a handshake (TCP + upgrade + `server_ready`) may take.
    pub handshake_timeout: Duration,
    sources: Vec<Ipv4Addr>,
    next_source: AtomicUsize,
}

impl Target {
    /// A target reached from `sources` loopback addresses (127.0.0.1, 127.0.0.2, …), used in
    /// turn so more than one ephemeral port range is available.
    pub fn new(addr: SocketAddr, path: &str, secret: Vec<u8>, sources: usize) -> Self {
        let sources = (1..=sources.clamp(1, 250) as u8)
            .map(|i| Ipv4Addr::new(127, 0, 0, i))
            .collect();
        Target {
            addr,
            path: path.to_owned(),
            secret,
            handshake_timeout: Duration::from_secs(30),
            sources,
            next_source: AtomicUsize::new(0),
        }
    }

    /// A token for `sub`, valid for a day.
    pub fn token(&self, sub: &str) -> Result<String, ConnectError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = json!({"sub": sub, "iat": now, "exp": now + 86_400});
        let Value::Object(claims) = claims else {
            unreachable!("a json! object literal")
        };
        encode_jwt(&claims, &self.secret, JwtAlgorithm::Hs256, None)
            .map_err(|e| ConnectError::Token(e.to_string()))
    }

    /// Opens a connection as `sub` and waits for `server_ready`; returns it with the time
    /// from the TCP connect to `server_ready`.
    pub async fn connect(&self, sub: &str) -> Result<(Ws, Duration), ConnectError> {
        let token = self.token(sub)?;
        let started = Instant::now();
        let ws = tokio::time::timeout(self.handshake_timeout, self.open(&token))
            .await
            .map_err(|_| ConnectError::NotReady("handshake timed out".into()))??;
        Ok((ws, started.elapsed()))
    }

    async fn open(&self, token: &str) -> Result<Ws, ConnectError> {
        let source =
            self.sources[self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len()];
        let socket = TcpSocket::new_v4()?;
        if self.addr.ip().is_loopback() && source != Ipv4Addr::LOCALHOST {
            socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{}{}", self.addr, self.path).into_client_request()?;
        let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| ConnectError::Token(e.to_string()))?;
        request.headers_mut().insert("Authorization", bearer);
        // Small buffers: a load generator holds tens of thousands of these.
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("\"server_ready\"") => return Ok(ws),
                Some(Ok(Message::Close(c))) => {
                    return Err(ConnectError::NotReady(format!("closed: {c:?}")));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ConnectError::NotReady("stream ended".into())),
            }
        }
    }
}

/// Sends a bench control request and returns the answer's `p` (skipping other frames).
pub async fn control(
    ws: &mut Ws,
    t: &str,
    p: Value,
    answer: &str,
    timeout: Duration,
) -> Result<Map<String, Value>, ConnectError> {
    let request = json!({"t": t, "p": p}).to_string();
    ws.send(Message::Text(Utf8Bytes::from(request))).await?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&text)
                        && m.get("t").and_then(Value::as_str) == Some(answer)
                    {
                        if let Some(Value::Object(p)) = m.remove("p") {
                            return Ok(p);
                        }
                        return Ok(Map::new());
                    }
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(ConnectError::NotReady(format!("control closed: {c:?}")));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ConnectError::NotReady("control stream ended".into())),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ConnectError::NotReady(format!("no {answer} within {timeout:?}")))?
}

/// Raises this process's open-file limit as far as allowed (the hard limit, or above it with
/// the privilege to); returns the new soft limit.
pub fn raise_file_limit(wanted: u64) -> u64 {
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    if soft >= wanted {
        return soft;
    }
    // Above the hard limit needs CAP_SYS_RESOURCE; try it, then settle for the hard limit.
    if rlimit::Resource::NOFILE
        .set(wanted, wanted.max(hard))
        .is_ok()
    {
        return wanted;
    }
    let _ = rlimit::Resource::NOFILE.set(hard, hard);
    rlimit::Resource::NOFILE
        .get()
        .map(|(s, _)| s)
        .unwrap_or(soft)
}

/// Microseconds since the Unix epoch (the fan-out payload's timestamp clock).
pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
