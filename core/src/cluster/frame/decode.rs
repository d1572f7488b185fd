//! The decoders: [`decode_inner`] for one inner frame and the streaming [`FrameDecoder`].

use super::compress::Decompressor;
use super::{
    Capabilities, Field, FrameError, HEADER_LEN, HELLO_FIXED_LEN, LENGTH_PREFIX_LEN, MAGIC,
    MAX_DECOMPRESSED, MAX_FRAME_SIZE, MAX_INSTANCE_ID_LEN, MAX_PEER_LIST, MsgType,
    PRESENCE_FIXED_LEN, PeerFrame, PresenceAction, RecoveryTrailer, TRAILER_LEN, flags,
};
use crate::recovery::Epoch;

/// The most bytes a [`FrameDecoder`] holds: one maximal frame with its length prefix.
pub const DECODER_CAPACITY: usize = LENGTH_PREFIX_LEN + MAX_FRAME_SIZE;

/// Decodes one inner frame (the `N` bytes after the length prefix).
///
/// Unknown types come back as [`PeerFrame::Unknown`] without further checks (their layout is
/// not ours to judge). Uses a fresh zstd context; [`FrameDecoder`] keeps one per link.
pub fn decode_inner(inner: &[u8]) -> Result<PeerFrame, FrameError> {
    decode_with(inner, &mut Decompressor::default())
}

/// A streaming decoder for one peer's byte stream.
///
/// Feed it with [`FrameDecoder::push`], drain it with [`Iterator::next`] until `None`, repeat.
/// Unknown types are skipped and counted ([`FrameDecoder::unknown_skipped`]). After a
/// [`FrameError::BadLength`] the stream's framing is lost: the decoder yields nothing more and
/// `push` discards its input ([`FrameDecoder::is_failed`]).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// Received bytes; `buf[start..]` are not consumed yet.
    buf: Vec<u8>,
    start: usize,
    failed: bool,
    unknown_skipped: u64,
    decompressor: Decompressor,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        FrameDecoder::default()
    }

    /// Takes as many bytes of `data` as fit (the decoder holds at most [`DECODER_CAPACITY`])
    /// and returns how many it took. When that is fewer than `data.len()`, drain the decoder
    /// and push the rest: a full decoder always holds a complete frame (or a bad length).
    /// A failed decoder takes (and discards) everything.
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.failed {
            return data.len();
        }
        let take = data.len().min(DECODER_CAPACITY - self.buffered());
        if take == 0 {
            return 0;
        }
        if self.buf.len() + take > self.buf.capacity() && self.start > 0 {
            // Reuse the consumed prefix before growing.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let needed = self.buf.len() + take;
        if needed > self.buf.capacity() {
            // Geometric growth, but never past the capacity bound (plain `extend` could double
            // past it).
            let target = needed
                .max(self.buf.capacity().saturating_mul(2))
                .min(DECODER_CAPACITY);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(&data[..take]);
        take
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Unknown-type frames skipped so far (the `unknown_message_types` metric).
    pub fn unknown_skipped(&self) -> u64 {
        self.unknown_skipped
    }

    /// True once a bad length prefix was seen: the stream cannot be decoded any further.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The length of the next complete frame in the buffer (prefix excluded), `Ok(None)` if
    /// it is not complete yet.
    fn next_len(&self) -> Result<Option<usize>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(prefix) = pending.first_chunk::<LENGTH_PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        let n = usize::try_from(len).unwrap_or(usize::MAX);
        if n == 0 || n > MAX_FRAME_SIZE {
            return Err(FrameError::BadLength { len });
        }
        Ok((pending.len() >= LENGTH_PREFIX_LEN + n).then_some(n))
    }
}

impl Iterator for FrameDecoder {
    type Item = Result<PeerFrame, FrameError>;

    /// The next complete frame, `None` until more bytes are pushed.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            let n = match self.next_len() {
                Ok(Some(n)) => n,
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    self.buf = Vec::new();
                    self.start = 0;
                    return Some(Err(e));
                }
            };
            let from = self.start + LENGTH_PREFIX_LEN;
            let result = decode_with(&self.buf[from..from + n], &mut self.decompressor);
            self.start = from + n;
            if self.start == self.buf.len() {
                self.buf.clear();
                self.start = 0;
            }
            match result {
                Ok(PeerFrame::Unknown { .. }) => self.unknown_skipped += 1,
                other => return Some(other),
            }
        }
    }
}

/// Reads little-endian integers from a byte slice; every read is bounds-checked by the caller.
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn text(bytes: &[u8], field: Field) -> Result<String, FrameError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| FrameError::BadUtf8 { field })
}

fn decode_with(inner: &[u8], dctx: &mut Decompressor) -> Result<PeerFrame, FrameError> {
    if inner.len() < HEADER_LEN {
        return Err(FrameError::TooShort { len: inner.len() });
    }
    let (type_byte, flag_bits) = (inner[0], inner[1]);
    let Some(kind) = MsgType::from_u8(type_byte) else {
        return Ok(PeerFrame::Unknown {
            msg_type: type_byte,
        });
    };
    if flag_bits & !kind.allowed_flags() != 0 {
        return Err(FrameError::BadFlags {
            msg_type: type_byte,
            flags: flag_bits,
        });
    }
    let topic_len = usize::from(u16_at(inner, 2));
    let payload_len = u32_at(inner, 4) as usize;
    let has_trailer = kind == MsgType::Msg && flag_bits & flags::MSG_TRAILER != 0;
    let declared = (HEADER_LEN + topic_len) as u64
        + payload_len as u64
        + if has_trailer { TRAILER_LEN as u64 } else { 0 };
    if declared != inner.len() as u64 {
        return Err(FrameError::LengthMismatch {
            declared,
            actual: inner.len(),
        });
    }
    let topic = &inner[HEADER_LEN..HEADER_LEN + topic_len];
    let payload = &inner[HEADER_LEN + topic_len..HEADER_LEN + topic_len + payload_len];
    let none = |field: Field, bytes: &[u8]| {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(FrameError::UnexpectedField {
                msg_type: type_byte,
                field,
            })
        }
    };
    match kind {
        MsgType::Msg => {
            let topic = text(topic, Field::Topic)?;
            let compressed = flag_bits & flags::MSG_COMPRESSED != 0;
            let payload = if compressed {
                let plain = dctx.decompress(payload, MAX_DECOMPRESSED)?;
                String::from_utf8(plain).map_err(|_| FrameError::BadUtf8 {
                    field: Field::Payload,
                })?
            } else {
                text(payload, Field::Payload)?
            };
            let trailer = has_trailer.then(|| {
                let t = &inner[inner.len() - TRAILER_LEN..];
                RecoveryTrailer {
                    epoch: Epoch(u32_at(t, 0)),
                    offset: u64_at(t, 4),
                }
            });
            Ok(PeerFrame::Msg {
                topic,
                payload,
                compressed,
                trailer,
            })
        }
        MsgType::Ping | MsgType::Pong | MsgType::Shutdown | MsgType::Drain => {
            none(Field::Topic, topic)?;
            none(Field::Payload, payload)?;
            Ok(match kind {
                MsgType::Ping => PeerFrame::Ping,
                MsgType::Pong => PeerFrame::Pong,
                MsgType::Shutdown => PeerFrame::Shutdown,
                _ => PeerFrame::Drain,
            })
        }
        MsgType::Hello => {
            none(Field::Topic, topic)?;
            decode_hello(payload)
        }
        MsgType::Sub | MsgType::Unsub => {
            none(Field::Payload, payload)?;
            let topic = text(topic, Field::Topic)?;
            Ok(if kind == MsgType::Sub {
                PeerFrame::Sub { topic }
            } else {
                PeerFrame::Unsub { topic }
            })
        }
        MsgType::Resync => {
            none(Field::Topic, topic)?;
            let list = std::str::from_utf8(payload).map_err(|_| FrameError::BadUtf8 {
                field: Field::Payload,
            })?;
            Ok(PeerFrame::Resync {
                topics: list
                    .split('\n')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                continuation: flag_bits & flags::RESYNC_CONTINUATION != 0,
            })
        }
        MsgType::PeerAnnounce => {
            none(Field::Payload, payload)?;
            Ok(PeerFrame::PeerAnnounce {
                addr: text(topic, Field::Topic)?,
            })
        }
        MsgType::PeerList => {
            none(Field::Topic, topic)?;
            decode_peer_list(payload)
        }
        MsgType::PresenceUpdate => {
            let topic = text(topic, Field::Topic)?;
            decode_presence(topic, payload)
        }
        MsgType::PresenceFull => {
            none(Field::Topic, topic)?;
            Ok(PeerFrame::PresenceFull {
                chunk: text(payload, Field::Payload)?,
            })
        }
    }
}

/// `"WSE\0"`, u16 version, u16 id length (≤ 256), id, u32 capabilities; bytes after the
/// capabilities are ignored (room for a later version's fields).
fn decode_hello(p: &[u8]) -> Result<PeerFrame, FrameError> {
    if p.len() < HELLO_FIXED_LEN {
        return Err(FrameError::Truncated {
            field: Field::HelloFixed,
        });
    }
    let found = [p[0], p[1], p[2], p[3]];
    if found != MAGIC {
        return Err(FrameError::BadMagic { found });
    }
    let version = u16_at(p, 4);
    let id_len = usize::from(u16_at(p, 6));
    if id_len > MAX_INSTANCE_ID_LEN {
        return Err(FrameError::InstanceIdTooLong { len: id_len });
    }
    if p.len() < HELLO_FIXED_LEN + id_len {
        return Err(FrameError::Truncated {
            field: Field::InstanceId,
        });
    }
    let instance_id = text(&p[8..8 + id_len], Field::InstanceId)?;
    let capabilities = Capabilities(u32_at(p, 8 + id_len));
    Ok(PeerFrame::Hello {
        version,
        instance_id,
        capabilities,
    })
}

/// u16 count, then `count` × (u16 length, address). At most [`MAX_PEER_LIST`] entries are
/// read; past them the payload is ignored. Up to them it must end exactly after the last one.
fn decode_peer_list(p: &[u8]) -> Result<PeerFrame, FrameError> {
    if p.len() < 2 {
        return Err(FrameError::Truncated {
            field: Field::PeerCount,
        });
    }
    let count = usize::from(u16_at(p, 0));
    let read = count.min(MAX_PEER_LIST);
    let mut addrs = Vec::with_capacity(read);
    let mut pos = 2usize;
    for _ in 0..read {
        let truncated = FrameError::Truncated {
            field: Field::Address,
        };
        if p.len() < pos + 2 {
            return Err(truncated);
        }
        let len = usize::from(u16_at(p, pos));
        pos += 2;
        let Some(addr) = p.get(pos..pos + len) else {
            return Err(truncated);
        };
        addrs.push(text(addr, Field::Address)?);
        pos += len;
    }
    if count <= MAX_PEER_LIST && pos != p.len() {
        return Err(FrameError::TrailingBytes {
            msg_type: MsgType::PeerList as u8,
            extra: p.len() - pos,
        });
    }
    Ok(PeerFrame::PeerList { addrs })
}

/// u8 action, u64 updated_at, u16 user id length, user id, data (the rest, UTF-8, may be empty).
fn decode_presence(topic: String, p: &[u8]) -> Result<PeerFrame, FrameError> {
    if p.len() < PRESENCE_FIXED_LEN {
        return Err(FrameError::Truncated {
            field: Field::PresenceFixed,
        });
    }
    let action =
        PresenceAction::from_u8(p[0]).ok_or(FrameError::BadPresenceAction { action: p[0] })?;
    let updated_at = u64_at(p, 1);
    let uid_len = usize::from(u16_at(p, 9));
    let Some(uid) = p.get(PRESENCE_FIXED_LEN..PRESENCE_FIXED_LEN + uid_len) else {
        return Err(FrameError::Truncated {
            field: Field::UserId,
        });
    };
    let user_id = text(uid, Field::UserId)?;
    let data = text(&p[PRESENCE_FIXED_LEN + uid_len..], Field::PresenceData)?;
    Ok(PeerFrame::PresenceUpdate {
        topic,
        action,
        updated_at,
        user_id,
        data,
    })
}
