//! WebSocket framing after the upgrade (RFC 6455), for a server that keeps exactly one writer
//! per socket.
//!
//! tungstenite performs the HTTP upgrade; then the runtime takes the raw stream back and frames
//! itself, so that no library writes on its own behalf (the original server let tungstenite
//! answer Pings and Closes on the same socket its raw writer used, which can interleave frames:
//! UPSTREAM §13.3 #10). Header parsing and formatting are tungstenite's
//! ([`FrameHeader::parse`], [`FrameHeader::format`]); this module adds the server-side rules.
//!
//! - [`encode`] builds one unmasked server frame (header + payload in one buffer) — the unit a
//!   broadcast builds once and shares as [`Bytes`] with every recipient.
//! - [`FrameDecoder`] turns the bytes a client sent into whole [`Inbound`] messages: it unmasks,
//!   reassembles fragments, and refuses what RFC 6455 forbids with the close code to send
//!   ([`FrameError::close_code`]). Sizes are checked from the header, **before** the payload is
//!   buffered, so an oversize message costs nothing.
//!
//! Limits: one message (all fragments) ≤ `max_message_size`; control payloads ≤ 125 bytes.

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Close codes for framing errors.
pub mod close_code {
    /// A frame broke RFC 6455.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message is larger than `max_message_size`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
}

/// The largest control-frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// What a frame carries, on the way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close (payload: code + reason).
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn to_tungstenite(self) -> OpCode {
        match self {
            Opcode::Text => OpCode::Data(Data::Text),
            Opcode::Binary => OpCode::Data(Data::Binary),
            Opcode::Close => OpCode::Control(Control::Close),
            Opcode::Ping => OpCode::Control(Control::Ping),
            Opcode::Pong => OpCode::Control(Control::Pong),
        }
    }
}

/// One complete, unmasked, final server frame: header and payload in a single buffer.
pub fn encode(opcode: Opcode, payload: &[u8]) -> Bytes {
    let header = FrameHeader {
        opcode: opcode.to_tungstenite(),
        ..FrameHeader::default()
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    header
        .format(len, &mut out)
        .expect("invariant: formatting a header into a Vec cannot fail");
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The server frame for a core [`wse_core::protocol::Frame`].
pub fn encode_core(frame: &wse_core::protocol::Frame) -> Bytes {
    match frame {
        wse_core::protocol::Frame::Text(b) => encode(Opcode::Text, b),
        wse_core::protocol::Frame::Binary(b) => encode(Opcode::Binary, b),
    }
}

/// The payload of a frame made by [`encode`] (the same allocation, header skipped). `None`
/// for bytes that are not one complete unmasked server frame.
pub fn server_frame_payload(frame: &Bytes) -> Option<Bytes> {
    let second = *frame.get(1)?;
    if second & 0x80 != 0 {
        return None; // masked: not ours
    }
    let (header, len) = match second & 0x7f {
        126 => (
            4,
            usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?])),
        ),
        127 => {
            let bytes: [u8; 8] = frame.get(2..10)?.try_into().ok()?;
            (10, usize::try_from(u64::from_be_bytes(bytes)).ok()?)
        }
        n => (2, usize::from(n)),
    };
    (frame.len() == header + len).then(|| frame.slice(header..))
}

/// A Close frame with `code` and `reason` (the reason is cut to fit 125 bytes on a character
/// boundary).
pub fn encode_close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(Opcode::Close, &payload)
}

/// A whole message or control frame from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A text message (all fragments joined), valid UTF-8.
    Text(String),
    /// A binary message (all fragments joined).
    Binary(Bytes),
    /// A Ping; the payload must be echoed in a Pong.
    Ping(Bytes),
    /// A Pong.
    Pong(Bytes),
    /// A Close, with its code and reason when it carried them.
    Close(Option<(u16, String)>),
}

/// A frame the server must refuse; [`FrameError::close_code`] is what to close with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Client frames must be masked.
    #[error("unmasked client frame")]
    Unmasked,
    /// No extension was negotiated, so RSV bits must be clear.
    #[error("reserved bits set")]
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    #[error("reserved opcode")]
    ReservedOpcode,
    /// Control frames are final and at most 125 bytes.
    #[error("malformed control frame")]
    BadControlFrame,
    /// A continuation with nothing to continue, or a new message inside a fragmented one.
    #[error("unexpected continuation or interleaved data frame")]
    BadFragmentation,
    /// The message would exceed the limit.
    #[error("message larger than {limit} bytes")]
    TooBig {
        /// The limit in force.
        limit: usize,
    },
    /// A text message that is not UTF-8.
    #[error("text message is not UTF-8")]
    InvalidUtf8,
    /// A Close payload of one byte, a forbidden code, or a non-UTF-8 reason.
    #[error("malformed close payload")]
    BadClose,
}

impl FrameError {
    /// The close code to answer this error with.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooBig { .. } => close_code::MESSAGE_TOO_BIG,
            FrameError::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            _ => close_code::PROTOCOL_ERROR,
        }
    }
}

/// Reassembles client frames into [`Inbound`] messages. Feed it the connection's read buffer;
/// it consumes whole frames only.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message_size: usize,
    /// The message being reassembled from fragments: whether it is text, and its bytes so far.
    partial: Option<(bool, BytesMut)>,
}

impl FrameDecoder {
    /// A decoder that refuses messages larger than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        FrameDecoder {
            max_message_size,
            partial: None,
        }
    }

    /// The next whole message or control frame in `buf`, consuming its bytes; `Ok(None)` when
    /// `buf` holds no complete frame yet (nothing consumed). After an error the connection must
    /// be closed with [`FrameError::close_code`]; the decoder is not reusable.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, FrameError> {
        loop {
            let mut cursor = Cursor::new(&buf[..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(None),
                Err(_) => return Err(FrameError::ReservedOpcode),
            };
            let header_len = usize::try_from(cursor.position())
                .expect("invariant: a header is at most 14 bytes");
            let mask = header.mask.ok_or(FrameError::Unmasked)?;
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(FrameError::ReservedBits);
            }
            let len = self.check_length(&header, len)?;
            if buf.len() < header_len + len {
                // Reserve once for the whole frame so the reader can fill it without regrowing.
                buf.reserve(header_len + len - buf.len());
                return Ok(None);
            }
            buf.advance(header_len);
            let mut payload = buf.split_to(len);
            unmask(&mut payload, mask);
            if let Some(msg) = self.accept(&header, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// Validates the declared payload length against the frame kind and the message limit.
    fn check_length(&self, header: &FrameHeader, len: u64) -> Result<usize, FrameError> {
        let limit = self.max_message_size;
        let too_big = FrameError::TooBig { limit };
        let len = usize::try_from(len).map_err(|_| too_big.clone())?;
        match header.opcode {
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Err(FrameError::ReservedOpcode)
            }
            OpCode::Control(_) if !header.is_final || len > MAX_CONTROL_PAYLOAD => {
                Err(FrameError::BadControlFrame)
            }
            OpCode::Control(_) => Ok(len),
            OpCode::Data(_) => {
                let so_far = self.partial.as_ref().map_or(0, |(_, b)| b.len());
                if so_far.saturating_add(len) > limit {
                    Err(too_big)
                } else {
                    Ok(len)
                }
            }
        }
    }

    /// Applies one unmasked frame; returns a message when one is complete.
    fn accept(
        &mut self,
        header: &FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Inbound>, FrameError> {
        let data_is_text = match header.opcode {
            OpCode::Control(Control::Ping) => return Ok(Some(Inbound::Ping(payload.freeze()))),
            OpCode::Control(Control::Pong) => return Ok(Some(Inbound::Pong(payload.freeze()))),
            OpCode::Control(Control::Close) => return parse_close(&payload).map(Some),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(FrameError::ReservedOpcode);
            }
            OpCode::Data(Data::Continue) => None,
            OpCode::Data(Data::Text) => Some(true),
            OpCode::Data(Data::Binary) => Some(false),
        };
        let (is_text, body) = match (data_is_text, self.partial.take()) {
            (Some(is_text), None) => (is_text, payload),
            (None, Some((is_text, mut so_far))) => {
                so_far.unsplit(payload);
                (is_text, so_far)
            }
            (Some(_), Some(_)) | (None, None) => return Err(FrameError::BadFragmentation),
        };
        if !header.is_final {
            self.partial = Some((is_text, body));
            return Ok(None);
        }
        if is_text {
            String::from_utf8(body.to_vec())
                .map(|s| Some(Inbound::Text(s)))
                .map_err(|_| FrameError::InvalidUtf8)
        } else {
            Ok(Some(Inbound::Binary(body.freeze())))
        }
    }
}

fn parse_close(payload: &[u8]) -> Result<Inbound, FrameError> {
    match payload {
        [] => Ok(Inbound::Close(None)),
        [_] => Err(FrameError::BadClose),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            // RFC 6455 §7.4: codes a peer may send.
            let allowed = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadClose)?;
            if allowed {
                Ok(Inbound::Close(Some((code, reason.to_owned()))))
            } else {
                Err(FrameError::BadClose)
            }
        }
    }
}

/// XORs `buf` with the 4-byte client mask (RFC 6455 §5.3).
fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

#[cfg(test)]
#[path = "wsframe_tests.rs"]
mod tests;
