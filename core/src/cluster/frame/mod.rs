//! The peer frame codec (UPSTREAM §10.2–§10.4), byte for byte.
//!
//! Owns the typed frame ([`PeerFrame`], 13 message types plus [`PeerFrame::Unknown`]), the
//! encoder ([`FrameEncoder`], [`PeerFrame::encode`], [`resync_frames`]), the one-frame decoder
//! ([`decode_inner`]) and the streaming decoder ([`FrameDecoder`]).
//!
//! ## Wire layout
//!
//! ```text
//! u32 BE  N                      outer length, 1 ≤ N ≤ 1 MiB (MAX_FRAME_SIZE)
//! ── inner frame, N bytes ───────────────────────────────────────────────
//! u8      type                   0x01 … 0x0D; anything else is skipped and counted
//! u8      flags                  MSG: bit0 zstd payload, bit1 recovery trailer;
//!                                RESYNC: bit0 continuation; every other type: 0
//! u16 LE  topic_len  T
//! u32 LE  payload_len P
//! T bytes topic (UTF-8)          also PeerAnnounce's address
//! P bytes payload
//! 12 bytes trailer               MSG with flag bit1 only, not counted in P:
//!                                u32 LE origin epoch + u64 LE origin offset
//! ```
//!
//! ## Invariants
//!
//! - The encoder never produces a frame the decoder refuses: it checks topic length (≤ 65,535),
//!   inner size (≤ 1 MiB), the uncompressed MSG payload (≤ 1 MiB, the receiver's decompression
//!   cap) and every type-specific bound, and returns an [`EncodeError`] instead of panicking or
//!   truncating. On error nothing is appended.
//! - `decode_inner(encode(f))` is `f`, up to [`PeerFrame::Msg`]'s `compressed` (true after
//!   decoding iff the wire payload was compressed) and the RESYNC/PeerList/HELLO leniencies below.
//! - The decoder is strict about structure: the header's lengths (plus the trailer) must add up
//!   to exactly `N`, flags outside the type's defined bits are refused, a type without a topic or
//!   payload must carry none. It is lenient only where the spec or forward compatibility asks:
//!   HELLO may carry bytes after the capabilities (a newer version's extension), a PeerList is
//!   read up to 256 entries (the rest ignored), and RESYNC drops empty lines.
//! - zstd decompression never allocates more than [`MAX_DECOMPRESSED`] bytes of output: a frame
//!   that declares (or turns out to produce) more is [`FrameError::DecompressedTooLarge`].
//! - [`FrameDecoder`] never holds more than [`DECODER_CAPACITY`] bytes (one maximal frame with
//!   its length prefix); `push` accepts only what fits.

mod compress;
mod decode;
mod encode;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decode::{DECODER_CAPACITY, FrameDecoder, decode_inner};
pub use encode::{FrameEncoder, resync_frames};

use std::fmt;
use std::ops::{BitAnd, BitOr};

use crate::recovery::Epoch;

/// Largest inner frame (`N`), and the cap on a decompressed MSG payload.
pub const MAX_FRAME_SIZE: usize = 1_048_576;
/// Largest decompressed MSG payload (UPSTREAM §10.5 step 7: output cap 1 MiB).
pub const MAX_DECOMPRESSED: usize = MAX_FRAME_SIZE;
/// Bytes of the outer length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;
/// Bytes of the inner header.
pub const HEADER_LEN: usize = 8;
/// Bytes of the MSG recovery trailer.
pub const TRAILER_LEN: usize = 12;
/// Longest topic (and PeerAnnounce address, and PeerList entry): the `u16` length field.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;
/// Longest HELLO instance id.
pub const MAX_INSTANCE_ID_LEN: usize = 256;
/// PeerList entries a receiver reads; the encoder refuses longer lists.
pub const MAX_PEER_LIST: usize = 256;
/// MSG payloads longer than this are compressed when [`PeerFrame::Msg`] asks for it.
pub const COMPRESSION_THRESHOLD: usize = 256;
/// The zstd level of MSG payloads (the original's).
pub const ZSTD_LEVEL: i32 = 1;
/// HELLO magic.
pub const MAGIC: [u8; 4] = *b"WSE\0";
/// The protocol version this node speaks and announces.
pub const PROTOCOL_VERSION: u16 = 1;
/// The lowest remote version a link accepts.
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// A RESYNC frame's payload limit: the whole inner frame stays within [`MAX_FRAME_SIZE`].
pub const MAX_RESYNC_PAYLOAD: usize = MAX_FRAME_SIZE - HEADER_LEN;

/// HELLO payload before the instance id: magic, u16 version, u16 id length; plus the u32
/// capabilities after it.
const HELLO_FIXED_LEN: usize = 4 + 2 + 2 + 4;
/// PresenceUpdate payload before the user id: u8 action, u64 updated_at, u16 user id length.
const PRESENCE_FIXED_LEN: usize = 1 + 8 + 2;

/// Flag bits, per type.
pub mod flags {
    /// MSG: the payload is zstd-compressed.
    pub const MSG_COMPRESSED: u8 = 0x01;
    /// MSG: a 12-byte recovery trailer follows the payload.
    pub const MSG_TRAILER: u8 = 0x02;
    /// RESYNC: this frame extends the previous one instead of replacing the peer's interest.
    pub const RESYNC_CONTINUATION: u8 = 0x01;
}

/// The message type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// 0x01, a published message.
    Msg = 0x01,
    /// 0x02, heartbeat.
    Ping = 0x02,
    /// 0x03, heartbeat reply.
    Pong = 0x03,
    /// 0x04, handshake.
    Hello = 0x04,
    /// 0x05, the peer is stopping.
    Shutdown = 0x05,
    /// 0x06, first local subscriber of a topic or pattern.
    Sub = 0x06,
    /// 0x07, last local subscriber gone.
    Unsub = 0x07,
    /// 0x08, the full interest set.
    Resync = 0x08,
    /// 0x09, this node's cluster address.
    PeerAnnounce = 0x09,
    /// 0x0A, known peer addresses.
    PeerList = 0x0A,
    /// 0x0B, one presence change.
    PresenceUpdate = 0x0B,
    /// 0x0C, a chunk of full presence state.
    PresenceFull = 0x0C,
    /// 0x0D, the peer is draining.
    Drain = 0x0D,
}

impl MsgType {
    /// The type for a byte, `None` for an unknown one.
    pub const fn from_u8(b: u8) -> Option<MsgType> {
        Some(match b {
            0x01 => MsgType::Msg,
            0x02 => MsgType::Ping,
            0x03 => MsgType::Pong,
            0x04 => MsgType::Hello,
            0x05 => MsgType::Shutdown,
            0x06 => MsgType::Sub,
            0x07 => MsgType::Unsub,
            0x08 => MsgType::Resync,
            0x09 => MsgType::PeerAnnounce,
            0x0A => MsgType::PeerList,
            0x0B => MsgType::PresenceUpdate,
            0x0C => MsgType::PresenceFull,
            0x0D => MsgType::Drain,
            _ => return None,
        })
    }

    /// The flag bits this type defines; any other bit set is [`FrameError::BadFlags`].
    pub const fn allowed_flags(self) -> u8 {
        match self {
            MsgType::Msg => flags::MSG_COMPRESSED | flags::MSG_TRAILER,
            MsgType::Resync => flags::RESYNC_CONTINUATION,
            _ => 0,
        }
    }
}

/// Capability bits exchanged in HELLO (UPSTREAM §10.5); the link uses their AND.
///
/// Unknown bits are kept as they are (a newer peer may set them) and vanish in the AND.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// No capability.
    pub const NONE: Capabilities = Capabilities(0);
    /// bit0: SUB/UNSUB/RESYNC interest routing.
    pub const INTEREST_ROUTING: Capabilities = Capabilities(1 << 0);
    /// bit1: zstd-compressed MSG payloads.
    pub const COMPRESSION: Capabilities = Capabilities(1 << 1);
    /// bit2: PresenceUpdate / PresenceFull.
    pub const PRESENCE: Capabilities = Capabilities(1 << 2);
    /// bit3: MSG recovery trailers (undocumented upstream).
    pub const RECOVERY: Capabilities = Capabilities(1 << 3);
    /// bit4 (ours, not the original's): presence as per-origin CRDT entries with hybrid
    /// logical clocks, in PresenceFull chunks (`cluster::presence_sync`). With only `PRESENCE`
    /// negotiated, the original's presence frames are not applied.
    pub const PRESENCE_SYNC: Capabilities = Capabilities(1 << 4);
    /// The four bits the original defines and advertises (`0x0F`).
    pub const ALL: Capabilities = Capabilities(0x0F);

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True if every bit of `other` is set in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The capabilities a link may use: the bitwise AND of both sides'.
    pub const fn negotiate(self, remote: Capabilities) -> Capabilities {
        Capabilities(self.0 & remote.0)
    }
}

impl BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl BitAnd for Capabilities {
    type Output = Capabilities;
    fn bitand(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 & rhs.0)
    }
}

/// The version a link speaks with a peer announcing `remote`: `min(ours, remote)`, refused
/// (`None`) below [`MIN_PROTOCOL_VERSION`] (a version-0 peer). Higher versions speak ours.
pub const fn negotiate_version(remote: u16) -> Option<u16> {
    let v = if remote < PROTOCOL_VERSION {
        remote
    } else {
        PROTOCOL_VERSION
    };
    if v >= MIN_PROTOCOL_VERSION {
        Some(v)
    } else {
        None
    }
}

/// The MSG recovery trailer: the message's identity in its origin's recovery ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecoveryTrailer {
    /// The origin ring's epoch.
    pub epoch: Epoch,
    /// The message's offset in that ring.
    pub offset: u64,
}

/// PresenceUpdate's action byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceAction {
    /// 0: a user joined a topic.
    Join,
    /// 1: a user left.
    Leave,
    /// 2: a user's data changed.
    Update,
}

impl PresenceAction {
    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        match self {
            PresenceAction::Join => 0,
            PresenceAction::Leave => 1,
            PresenceAction::Update => 2,
        }
    }

    /// The action for a wire byte, `None` for an undefined one.
    pub const fn from_u8(b: u8) -> Option<PresenceAction> {
        match b {
            0 => Some(PresenceAction::Join),
            1 => Some(PresenceAction::Leave),
            2 => Some(PresenceAction::Update),
            _ => None,
        }
    }
}

/// One peer frame, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerFrame {
    /// 0x01: a published message. `payload` is the application JSON text.
    ///
    /// Encoding: `compressed` asks for zstd; the payload is compressed only if it is longer than
    /// [`COMPRESSION_THRESHOLD`] bytes and zstd makes it shorter (flag bit0 set then). Decoding:
    /// `compressed` tells whether the wire payload was compressed; `payload` is always plain.
    Msg {
        /// The topic.
        topic: String,
        /// The message text (decompressed).
        payload: String,
        /// Compress (encoding) / was compressed (decoding).
        compressed: bool,
        /// The recovery trailer (flag bit1).
        trailer: Option<RecoveryTrailer>,
    },
    /// 0x02, header only.
    Ping,
    /// 0x03, header only.
    Pong,
    /// 0x04: `"WSE\0"`, u16 LE version, u16 LE id length, id, u32 LE capabilities.
    Hello {
        /// The sender's protocol version.
        version: u16,
        /// The sender's instance id (a UUIDv7 string upstream), ≤ 256 bytes.
        instance_id: String,
        /// The sender's capability bits.
        capabilities: Capabilities,
    },
    /// 0x05, header only.
    Shutdown,
    /// 0x06: a topic or glob pattern in the topic field.
    Sub {
        /// Topic or pattern.
        topic: String,
    },
    /// 0x07: a topic or pattern in the topic field.
    Unsub {
        /// Topic or pattern.
        topic: String,
    },
    /// 0x08: topics joined by `\n` in the payload. `continuation` (flag bit0) extends the set
    /// built by the previous RESYNC instead of replacing it.
    Resync {
        /// The topics and patterns (never empty strings, never containing `\n`).
        topics: Vec<String>,
        /// Flag bit0.
        continuation: bool,
    },
    /// 0x09: the sender's cluster address in the topic field.
    PeerAnnounce {
        /// `host:port` as announced.
        addr: String,
    },
    /// 0x0A: u16 LE count, then per entry u16 LE length + address bytes.
    PeerList {
        /// Known peer addresses (≤ 256).
        addrs: Vec<String>,
    },
    /// 0x0B: topic in the topic field; payload u8 action, u64 LE `updated_at`, u16 LE user id
    /// length, user id, presence data JSON (the rest, may be empty).
    PresenceUpdate {
        /// The topic.
        topic: String,
        /// Join, leave or update.
        action: PresenceAction,
        /// When the change was made at its origin (Unix milliseconds upstream).
        updated_at: u64,
        /// The user (JWT `sub`).
        user_id: String,
        /// The presence data as JSON text (may be empty).
        data: String,
    },
    /// 0x0C: one chunk of full presence state (JSON text), no topic.
    PresenceFull {
        /// The JSON chunk.
        chunk: String,
    },
    /// 0x0D, header only.
    Drain,
    /// A type this implementation does not know (header only when encoded). [`FrameDecoder`]
    /// skips and counts these; [`decode_inner`] returns them.
    Unknown {
        /// The type byte.
        msg_type: u8,
    },
}

impl PeerFrame {
    /// The type byte this frame is sent with.
    pub fn type_byte(&self) -> u8 {
        match self {
            PeerFrame::Msg { .. } => MsgType::Msg as u8,
            PeerFrame::Ping => MsgType::Ping as u8,
            PeerFrame::Pong => MsgType::Pong as u8,
            PeerFrame::Hello { .. } => MsgType::Hello as u8,
            PeerFrame::Shutdown => MsgType::Shutdown as u8,
            PeerFrame::Sub { .. } => MsgType::Sub as u8,
            PeerFrame::Unsub { .. } => MsgType::Unsub as u8,
            PeerFrame::Resync { .. } => MsgType::Resync as u8,
            PeerFrame::PeerAnnounce { .. } => MsgType::PeerAnnounce as u8,
            PeerFrame::PeerList { .. } => MsgType::PeerList as u8,
            PeerFrame::PresenceUpdate { .. } => MsgType::PresenceUpdate as u8,
            PeerFrame::PresenceFull { .. } => MsgType::PresenceFull as u8,
            PeerFrame::Drain => MsgType::Drain as u8,
            PeerFrame::Unknown { msg_type } => *msg_type,
        }
    }

    /// A HELLO for this node: [`PROTOCOL_VERSION`], the given id and capabilities.
    pub fn hello(instance_id: impl Into<String>, capabilities: Capabilities) -> PeerFrame {
        PeerFrame::Hello {
            version: PROTOCOL_VERSION,
            instance_id: instance_id.into(),
            capabilities,
        }
    }

    /// The frame with its length prefix, as one buffer (a fresh [`FrameEncoder`]; keep one per
    /// link to reuse its zstd context).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        FrameEncoder::new().encode(self, &mut out)?;
        Ok(out)
    }
}

/// Which part of a frame an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The topic field (also PeerAnnounce's address).
    Topic,
    /// The payload field as a whole.
    Payload,
    /// The 12-byte fixed part of a HELLO payload.
    HelloFixed,
    /// HELLO's instance id.
    InstanceId,
    /// PeerList's u16 count.
    PeerCount,
    /// A PeerList entry (its length or its bytes).
    Address,
    /// The 11-byte fixed part of a PresenceUpdate payload.
    PresenceFixed,
    /// PresenceUpdate's user id.
    UserId,
    /// PresenceUpdate's data.
    PresenceData,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Topic => "topic",
            Field::Payload => "payload",
            Field::HelloFixed => "HELLO fixed fields",
            Field::InstanceId => "instance id",
            Field::PeerCount => "peer count",
            Field::Address => "peer address",
            Field::PresenceFixed => "presence fixed fields",
            Field::UserId => "user id",
            Field::PresenceData => "presence data",
        })
    }
}

/// Why a received frame cannot be used. UPSTREAM §10.3: the link disconnects on any of these.
///
/// After [`FrameError::BadLength`] the stream has lost its framing and a [`FrameDecoder`]
/// yields nothing more; after any other error the bad frame has been consumed whole and the
/// decoder could go on (the link machine still disconnects).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The outer length is 0 or above [`MAX_FRAME_SIZE`].
    #[error("frame length {len} outside 1..=1048576")]
    BadLength {
        /// The length prefix.
        len: u32,
    },
    /// The inner frame is shorter than its 8-byte header.
    #[error("frame of {len} bytes is shorter than the 8-byte header")]
    TooShort {
        /// The inner length.
        len: usize,
    },
    /// Header (topic + payload + trailer) and outer length disagree.
    #[error("header declares {declared} bytes, frame has {actual}")]
    LengthMismatch {
        /// `8 + T + P (+ 12)`.
        declared: u64,
        /// `N`.
        actual: usize,
    },
    /// A flag bit the type does not define.
    #[error("flags {flags:#04x} not allowed on type {msg_type:#04x}")]
    BadFlags {
        /// The type byte.
        msg_type: u8,
        /// The flags byte.
        flags: u8,
    },
    /// A topic or payload on a type that carries none.
    #[error("type {msg_type:#04x} carries no {field}")]
    UnexpectedField {
        /// The type byte.
        msg_type: u8,
        /// The non-empty field.
        field: Field,
    },
    /// A text field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    BadUtf8 {
        /// The field.
        field: Field,
    },
    /// A length inside the payload runs past its end.
    #[error("{field} truncated")]
    Truncated {
        /// The field cut short.
        field: Field,
    },
    /// Bytes left in a payload after its last field.
    #[error("{extra} bytes after the last field of type {msg_type:#04x}")]
    TrailingBytes {
        /// The type byte.
        msg_type: u8,
        /// How many.
        extra: usize,
    },
    /// HELLO without the `WSE\0` magic.
    #[error("HELLO magic {found:02x?} is not \"WSE\\0\"")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// HELLO instance id longer than 256 bytes.
    #[error("HELLO instance id of {len} bytes (max 256)")]
    InstanceIdTooLong {
        /// The declared length.
        len: usize,
    },
    /// PresenceUpdate action other than 0, 1, 2.
    #[error("presence action {action} is not 0, 1 or 2")]
    BadPresenceAction {
        /// The byte.
        action: u8,
    },
    /// A compressed payload that would decompress past the cap.
    #[error("compressed payload inflates past {limit} bytes")]
    DecompressedTooLarge {
        /// The cap.
        limit: usize,
    },
    /// A compressed payload that is not valid zstd.
    #[error("compressed payload is not a valid zstd stream")]
    BadCompression,
}

/// Why a frame cannot be encoded. Nothing is written when this is returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A topic, address or user id longer than its u16 length field.
    #[error("{field} of {len} bytes exceeds 65535")]
    TooLong {
        /// Which field.
        field: Field,
        /// Its length.
        len: usize,
    },
    /// The inner frame would exceed [`MAX_FRAME_SIZE`].
    #[error("frame of {size} bytes exceeds 1048576")]
    FrameTooLarge {
        /// `8 + T + P (+ 12)`.
        size: usize,
    },
    /// A MSG payload above the receiver's decompression cap, compressed or not.
    #[error("MSG payload of {len} bytes exceeds the 1048576-byte decompression cap")]
    PayloadTooLarge {
        /// The payload length.
        len: usize,
    },
    /// A HELLO instance id longer than 256 bytes.
    #[error("instance id of {len} bytes exceeds 256")]
    InstanceIdTooLong {
        /// Its length.
        len: usize,
    },
    /// A PeerList longer than 256 entries (a receiver reads only 256).
    #[error("peer list of {len} entries exceeds 256")]
    TooManyPeers {
        /// The entry count.
        len: usize,
    },
    /// A RESYNC topic that is empty or contains `\n` (it would not survive the join).
    #[error("RESYNC topic {topic:?} is empty or contains a newline")]
    BadResyncTopic {
        /// The topic.
        topic: String,
    },
    /// `Unknown` with a known type byte.
    #[error("type {msg_type:#04x} is a known type, not Unknown")]
    NotUnknown {
        /// The type byte.
        msg_type: u8,
    },
}
