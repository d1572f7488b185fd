//! The encoder: [`FrameEncoder`] (one per link, it keeps a zstd context) and [`resync_frames`].

use std::borrow::Cow;

use super::compress::Compressor;
use super::{
    COMPRESSION_THRESHOLD, EncodeError, Field, HEADER_LEN, LENGTH_PREFIX_LEN, MAGIC,
    MAX_DECOMPRESSED, MAX_FRAME_SIZE, MAX_INSTANCE_ID_LEN, MAX_PEER_LIST, MAX_RESYNC_PAYLOAD,
    MAX_TOPIC_LEN, MsgType, PeerFrame, TRAILER_LEN, flags,
};

/// Encodes [`PeerFrame`]s with their length prefix. Holds a zstd context, created on the first
/// compressed MSG and reused after that.
#[derive(Debug, Default)]
pub struct FrameEncoder {
    compressor: Compressor,
}

/// A frame's fields, checked and ready to be written.
struct Parts<'a> {
    msg_type: u8,
    flags: u8,
    topic: &'a [u8],
    payload: Cow<'a, [u8]>,
    trailer: Option<[u8; TRAILER_LEN]>,
}

impl FrameEncoder {
    /// An encoder; no zstd context is created until one is needed.
    pub fn new() -> Self {
        FrameEncoder::default()
    }

    /// Appends `frame` (u32 BE length, then the inner frame) to `out` and returns the number of
    /// bytes appended. On error `out` is left as it was.
    pub fn encode(&mut self, frame: &PeerFrame, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let parts = self.parts(frame)?;
        let size = HEADER_LEN
            + parts.topic.len()
            + parts.payload.len()
            + parts.trailer.map_or(0, |t| t.len());
        if size > MAX_FRAME_SIZE {
            return Err(EncodeError::FrameTooLarge { size });
        }
        // Both fit: the topic was checked against u16, the payload is under MAX_FRAME_SIZE.
        let topic_len = u16::try_from(parts.topic.len())
            .map_err(|_| too_long(Field::Topic, parts.topic.len()))?;
        let payload_len =
            u32::try_from(parts.payload.len()).map_err(|_| EncodeError::FrameTooLarge { size })?;
        let size32 = u32::try_from(size).map_err(|_| EncodeError::FrameTooLarge { size })?;
        out.reserve(LENGTH_PREFIX_LEN + size);
        out.extend_from_slice(&size32.to_be_bytes());
        out.push(parts.msg_type);
        out.push(parts.flags);
        out.extend_from_slice(&topic_len.to_le_bytes());
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(parts.topic);
        out.extend_from_slice(&parts.payload);
        if let Some(trailer) = parts.trailer {
            out.extend_from_slice(&trailer);
        }
        Ok(LENGTH_PREFIX_LEN + size)
    }

    /// Checks `frame` and lays out its topic, payload and trailer.
    fn parts<'a>(&mut self, frame: &'a PeerFrame) -> Result<Parts<'a>, EncodeError> {
        let msg_type = frame.type_byte();
        let mut parts = Parts {
            msg_type,
            flags: 0,
            topic: &[],
            payload: Cow::Borrowed(&[]),
            trailer: None,
        };
        match frame {
            PeerFrame::Msg {
                topic,
                payload,
                compressed,
                trailer,
            } => {
                parts.topic = checked(Field::Topic, topic)?;
                if payload.len() > MAX_DECOMPRESSED {
                    return Err(EncodeError::PayloadTooLarge { len: payload.len() });
                }
                parts.payload = Cow::Borrowed(payload.as_bytes());
                if *compressed
                    && payload.len() > COMPRESSION_THRESHOLD
                    && let Some(z) = self.compressor.compress(payload.as_bytes())
                    && z.len() < payload.len()
                {
                    parts.payload = Cow::Owned(z);
                    parts.flags |= flags::MSG_COMPRESSED;
                }
                if let Some(t) = trailer {
                    parts.flags |= flags::MSG_TRAILER;
                    let mut bytes = [0u8; TRAILER_LEN];
                    bytes[..4].copy_from_slice(&t.epoch.as_u32().to_le_bytes());
                    bytes[4..].copy_from_slice(&t.offset.to_le_bytes());
                    parts.trailer = Some(bytes);
                }
            }
            PeerFrame::Ping | PeerFrame::Pong | PeerFrame::Shutdown | PeerFrame::Drain => {}
            PeerFrame::Hello {
                version,
                instance_id,
                capabilities,
            } => {
                let id = instance_id.as_bytes();
                if id.len() > MAX_INSTANCE_ID_LEN {
                    return Err(EncodeError::InstanceIdTooLong { len: id.len() });
                }
                let id_len =
                    u16::try_from(id.len()).map_err(|_| too_long(Field::InstanceId, id.len()))?;
                let mut p = Vec::with_capacity(12 + id.len());
                p.extend_from_slice(&MAGIC);
                p.extend_from_slice(&version.to_le_bytes());
                p.extend_from_slice(&id_len.to_le_bytes());
                p.extend_from_slice(id);
                p.extend_from_slice(&capabilities.bits().to_le_bytes());
                parts.payload = Cow::Owned(p);
            }
            PeerFrame::Sub { topic } | PeerFrame::Unsub { topic } => {
                parts.topic = checked(Field::Topic, topic)?;
            }
            PeerFrame::Resync {
                topics,
                continuation,
            } => {
                for t in topics {
                    check_resync_topic(t)?;
                }
                parts.payload = Cow::Owned(topics.join("\n").into_bytes());
                if *continuation {
                    parts.flags |= flags::RESYNC_CONTINUATION;
                }
            }
            PeerFrame::PeerAnnounce { addr } => {
                parts.topic = checked(Field::Topic, addr)?;
            }
            PeerFrame::PeerList { addrs } => {
                if addrs.len() > MAX_PEER_LIST {
                    return Err(EncodeError::TooManyPeers { len: addrs.len() });
                }
                let count = u16::try_from(addrs.len())
                    .map_err(|_| EncodeError::TooManyPeers { len: addrs.len() })?;
                let mut p =
                    Vec::with_capacity(2 + addrs.iter().map(|a| 2 + a.len()).sum::<usize>());
                p.extend_from_slice(&count.to_le_bytes());
                for a in addrs {
                    let a = checked(Field::Address, a)?;
                    p.extend_from_slice(&(a.len() as u16).to_le_bytes());
                    p.extend_from_slice(a);
                }
                parts.payload = Cow::Owned(p);
            }
            PeerFrame::PresenceUpdate {
                topic,
                action,
                updated_at,
                user_id,
                data,
            } => {
                parts.topic = checked(Field::Topic, topic)?;
                let uid = checked(Field::UserId, user_id)?;
                let mut p = Vec::with_capacity(11 + uid.len() + data.len());
                p.push(action.as_u8());
                p.extend_from_slice(&updated_at.to_le_bytes());
                p.extend_from_slice(&(uid.len() as u16).to_le_bytes());
                p.extend_from_slice(uid);
                p.extend_from_slice(data.as_bytes());
                parts.payload = Cow::Owned(p);
            }
            PeerFrame::PresenceFull { chunk } => {
                parts.payload = Cow::Borrowed(chunk.as_bytes());
            }
            PeerFrame::Unknown { msg_type } => {
                if MsgType::from_u8(*msg_type).is_some() {
                    return Err(EncodeError::NotUnknown {
                        msg_type: *msg_type,
                    });
                }
            }
        }
        Ok(parts)
    }
}

/// The RESYNC frames announcing `topics` (UPSTREAM §10.4): the topics in order, joined by `\n`,
/// split at topic boundaries so every frame stays within [`MAX_FRAME_SIZE`]. The first frame
/// replaces the peer's view of our interest (`continuation: false`), the others extend it. An
/// empty list gives one empty frame ("no interest").
///
/// Refuses empty topics and topics containing `\n` (they would not survive the join) and topics
/// longer than 65,535 bytes (they could not be subscribed with SUB either).
pub fn resync_frames<S: AsRef<str>>(topics: &[S]) -> Result<Vec<PeerFrame>, EncodeError> {
    split_resync(topics, MAX_RESYNC_PAYLOAD)
}

/// [`resync_frames`] with a payload limit; `limit` must be at least the longest topic.
pub(super) fn split_resync<S: AsRef<str>>(
    topics: &[S],
    limit: usize,
) -> Result<Vec<PeerFrame>, EncodeError> {
    let mut frames = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 0usize;
    for t in topics {
        let t = t.as_ref();
        check_resync_topic(t)?;
        let separator = usize::from(!current.is_empty());
        if !current.is_empty() && size + separator + t.len() > limit {
            frames.push(PeerFrame::Resync {
                topics: std::mem::take(&mut current),
                continuation: !frames.is_empty(),
            });
            size = 0;
        }
        size += usize::from(!current.is_empty()) + t.len();
        current.push(t.to_owned());
    }
    frames.push(PeerFrame::Resync {
        topics: current,
        continuation: !frames.is_empty(),
    });
    Ok(frames)
}

fn check_resync_topic(t: &str) -> Result<(), EncodeError> {
    if t.is_empty() || t.contains('\n') {
        return Err(EncodeError::BadResyncTopic {
            topic: t.to_owned(),
        });
    }
    checked(Field::Topic, t).map(|_| ())
}

/// `s` as bytes if its length fits the u16 length field.
fn checked(field: Field, s: &str) -> Result<&[u8], EncodeError> {
    if s.len() > MAX_TOPIC_LEN {
        return Err(too_long(field, s.len()));
    }
    Ok(s.as_bytes())
}

fn too_long(field: Field, len: usize) -> EncodeError {
    EncodeError::TooLong { field, len }
}
