//! A deliberately dumb WebSocket client on a raw `TcpStream`: it writes whatever bytes a case
//! asks for (unmasked frames, reserved bits, lying lengths, garbage) and reads the server's
//! answer byte by byte, so every refusal can be checked on the wire.
//!
//! - [`client_frame`] encodes one client frame with full control over FIN, RSV, opcode and the
//!   mask (RFC 6455 §5.2); [`masked`] is the well-formed shorthand.
//! - [`RawWs`] performs the upgrade by hand and then reads server frames ([`ServerFrame`]),
//!   which must be unmasked; [`RawWs::close_code`] reads until the server's Close.
//! - [`http_exchange`] sends any request head and returns the whole response.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Continuation frame opcode.
pub(crate) const OP_CONT: u8 = 0x0;
/// Text data frame opcode.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary data frame opcode.
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close control opcode.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping control opcode.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong control opcode.
pub(crate) const OP_PONG: u8 = 0xA;

/// How long any single read of a server answer may take before the case fails.
pub(crate) const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The fixed mask of [`masked`]: any 4 bytes do; a non-zero one makes unmasking matter.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One client frame: `rsv` is the three RSV bits (0..=7), `len_override` lies about the
/// payload length in the header (the payload written is still `payload`).
pub(crate) fn client_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
    len_override: Option<u64>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(u8::from(fin) << 7 | (rsv & 7) << 4 | (opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = len_override.unwrap_or(payload.len() as u64);
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A well-formed, final, masked client frame.
pub(crate) fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(true, 0, opcode, payload, Some(MASK), None)
}

/// The upgrade request head, with `extra` header lines (each ending in `\r\n`).
pub(crate) fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /wse HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends `request` (any bytes) on a fresh connection and returns everything the server
/// answered before it closed (a reset after the answer ends the read like EOF).
pub(crate) async fn http_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(ANSWER_WAIT, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer (and no close) within {ANSWER_WAIT:?}"),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// A frame from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServerFrame {
    /// FIN bit.
    pub(crate) fin: bool,
    /// Opcode.
    pub(crate) opcode: u8,
    /// Payload.
    pub(crate) payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a Close frame (1005 when it carried none).
    pub(crate) fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE).then(|| match self.payload[..] {
            [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
            _ => 1005,
        })
    }

    /// The payload as JSON (text frames, or binary JSON).
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// A raw, upgraded WebSocket connection.
#[derive(Debug)]
pub(crate) struct RawWs {
    stream: TcpStream,
    /// Bytes read but not yet parsed.
    buf: Vec<u8>,
}

impl RawWs {
    /// Upgrades with the extra header lines `extra` and checks the `101`.
    pub(crate) async fn connect(addr: std::net::SocketAddr, extra: &str) -> RawWs {
        RawWs::connect_bytes(addr, extra.as_bytes()).await
    }

    /// [`RawWs::connect`] with header bytes that need not be UTF-8.
    pub(crate) async fn connect_bytes(addr: std::net::SocketAddr, extra: &[u8]) -> RawWs {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = upgrade_request("");
        let (head, blank) = request.split_at(request.len() - 2);
        let request = [head.as_bytes(), extra, blank.as_bytes()].concat();
        stream.write_all(&request).await.expect("request written");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            buf.reserve(1024);
            let n = tokio::time::timeout(ANSWER_WAIT, stream.read_buf(&mut buf))
                .await
                .expect("upgrade answered in time")
                .expect("upgrade read");
            assert!(n > 0, "closed during the upgrade");
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        buf.drain(..head_end);
        RawWs { stream, buf }
    }

    /// Writes `bytes` as they are. Errors are returned: a server that already closed may
    /// reset the connection under a flood.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next server frame; `None` on EOF or reset. Panics after [`ANSWER_WAIT`] of silence.
    pub(crate) async fn next_frame(&mut self) -> Option<ServerFrame> {
        match self.next_frame_within(ANSWER_WAIT).await {
            Some(frame) => frame,
            None => panic!("server silent for {ANSWER_WAIT:?}"),
        }
    }

    /// The next server frame if one arrives within `wait`: `None` when nothing came,
    /// `Some(None)` on EOF or reset.
    pub(crate) async fn next_frame_within(
        &mut self,
        wait: Duration,
    ) -> Option<Option<ServerFrame>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.parse_one() {
                return Some(Some(frame));
            }
            self.buf.reserve(16 * 1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(0) | Err(_)) => return Some(None),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
    }

    /// Reads frames until the server's Close, answers it, and returns its code together with
    /// the frames that came before it. `None` if the socket ended without a Close.
    pub(crate) async fn close_code_after(&mut self) -> (Option<u16>, Vec<ServerFrame>) {
        let mut before = Vec::new();
        while let Some(frame) = self.next_frame().await {
            if let Some(code) = frame.close_code() {
                // Complete the closing handshake (the server then ends at once).
                let _ = self.send(&masked(OP_CLOSE, &code.to_be_bytes())).await;
                return (Some(code), before);
            }
            before.push(frame);
        }
        (None, before)
    }

    /// [`RawWs::close_code_after`] without the frames.
    pub(crate) async fn close_code(&mut self) -> Option<u16> {
        self.close_code_after().await.0
    }

    /// Parses one whole frame off the front of the buffer.
    fn parse_one(&mut self) -> Option<ServerFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are never masked");
        assert_eq!(b[0] & 0x70, 0, "server frames carry no RSV bits");
        let (header, len) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (4, usize::from(u16::from_be_bytes([b[2], b[3]]))),
            127 if b.len() >= 10 => {
                let len = u64::from_be_bytes(b[2..10].try_into().expect("8 bytes"));
                (10, usize::try_from(len).expect("a sane server length"))
            }
            126 | 127 => return None,
            n => (2, usize::from(n)),
        };
        if b.len() < header + len {
            return None;
        }
        let frame = ServerFrame {
            fin: b[0] & 0x80 != 0,
            opcode: b[0] & 0x0f,
            payload: b[header..header + len].to_vec(),
        };
        self.buf.drain(..header + len);
        Some(frame)
    }
}
