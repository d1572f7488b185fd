//! Fuzz target: the WebSocket frame decoder every client byte goes through
//! (`wse_runtime::wsframe::FrameDecoder`).
//!
//! Input layout: byte 0 picks the message limit (bits 0–2, one of [`LIMITS`]) and the mode
//! (bit 3); byte 1 seeds the split points; the rest is either the raw client stream (mode 0) or
//! a compact description of frames (mode 1: per frame a header byte `FIN|RSV|opcode`, a flags
//! byte `masked, length form`, a length byte and that many payload bytes), rendered masked or
//! not, with the minimal, a longer or an untruthful length form.
//!
//! Invariants:
//!
//! - **split-invariance** (differential): the stream cut at any points and fed chunk by chunk
//!   gives exactly the messages and the error it gives in one piece, and leaves the same number
//!   of unconsumed bytes;
//! - every data message is at most the limit, every control payload at most 125 bytes, a
//!   `TooBig` error names the configured limit;
//! - frames described as plain, legal client frames (masked, final, minimal length, text
//!   valid UTF-8, within the limit) decode to exactly their payloads.

use bytes::BytesMut;
use wse_runtime::wsframe::{FrameDecoder, FrameError, Inbound, MAX_CONTROL_PAYLOAD};

const LIMITS: [usize; 8] = [0, 1, 10, 125, 126, 300, 1024, 1 << 20];

/// What decoding a stream produced: messages in order, then the error if one stopped it, and
/// the bytes left unconsumed when none did.
#[derive(Debug, PartialEq)]
struct Decoded {
    messages: Vec<Inbound>,
    error: Option<FrameError>,
    left_over: usize,
}

#[test]
fn ws_frame_decoder() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let [config, seed, rest @ ..] = bytes else {
            return;
        };
        let limit = LIMITS[usize::from(config & 7)];
        let (stream, expected) = if config & 8 == 0 {
            (rest.to_vec(), None)
        } else {
            render_frames(rest, limit)
        };
        let whole = decode(&[&stream], limit);
        let cuts = cut_points(*seed, stream.len());
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([stream.len()]) {
            chunks.push(&stream[start..cut]);
            start = cut;
        }
        let split = decode(&chunks, limit);
        assert_eq!(
            split,
            whole,
            "split at {:?}",
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        );
        for m in &whole.messages {
            match m {
                Inbound::Text(t) => assert!(t.len() <= limit, "text past the limit"),
                Inbound::Binary(b) => assert!(b.len() <= limit, "binary past the limit"),
                Inbound::Ping(p) | Inbound::Pong(p) => assert!(p.len() <= MAX_CONTROL_PAYLOAD),
                Inbound::Close(reason) => {
                    assert!(
                        reason
                            .as_ref()
                            .is_none_or(|(_, r)| r.len() <= MAX_CONTROL_PAYLOAD - 2)
                    );
                }
            }
        }
        if let Some(FrameError::TooBig { limit: named }) = &whole.error {
            assert_eq!(*named, limit);
        }
        if let Some(expected) = expected {
            assert_eq!(whole.messages, expected, "legal frames decoded differently");
            assert_eq!((whole.error, whole.left_over), (None, 0));
        }
    });
}

/// Feeds `chunks` one after the other, decoding everything available after each.
fn decode(chunks: &[&[u8]], limit: usize) -> Decoded {
    let mut decoder = FrameDecoder::new(limit);
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => {
                    return Decoded {
                        messages,
                        error: Some(e),
                        left_over: 0,
                    };
                }
            }
        }
    }
    Decoded {
        messages,
        error: None,
        left_over: buf.len(),
    }
}

/// Sorted cut points in `0..=len` from a one-byte seed: 255 cuts at every byte, otherwise up to
/// seven pseudo-random cuts.
fn cut_points(seed: u8, len: usize) -> Vec<usize> {
    if seed == 255 {
        return (1..len).collect();
    }
    let mut state = u32::from(seed).wrapping_mul(0x9e37_79b9) | 1;
    let mut cuts: Vec<usize> = (0..seed % 8)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % (len + 1)
        })
        .collect();
    cuts.sort_unstable();
    cuts
}

/// Renders the compact frame description; also returns the messages it must decode to when
/// every frame is a plain, legal client frame.
fn render_frames(mut spec: &[u8], limit: usize) -> (Vec<u8>, Option<Vec<Inbound>>) {
    let mut out = Vec::new();
    let mut expected = Some(Vec::new());
    while let [head, flags, len, rest @ ..] = spec {
        let take = usize::from(*len).min(rest.len());
        let (payload, tail) = rest.split_at(take);
        spec = tail;
        let masked = flags & 3 != 0;
        let form = (flags >> 2) & 3;
        let mask = [*head, *flags, 0x5a, *len];
        out.push(*head);
        let mask_bit = if masked { 0x80 } else { 0 };
        // The declared length: truthful, or (form 3) one more than what follows.
        let declared = payload.len() as u64 + u64::from(form == 3);
        match form {
            1 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(declared as u16).to_be_bytes());
            }
            2 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&declared.to_be_bytes());
            }
            _ if declared < 126 => out.push(mask_bit | declared as u8),
            _ => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(declared as u16).to_be_bytes());
            }
        }
        if masked {
            out.extend_from_slice(&mask);
        }
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| if masked { b ^ mask[i & 3] } else { *b }),
        );
        let plain = head & 0x80 != 0
            && head & 0x70 == 0
            && masked
            && (form == 0 || (form == 1 && declared >= 126));
        let message = match head & 0x0f {
            1 if payload.len() <= limit => {
                String::from_utf8(payload.to_vec()).ok().map(Inbound::Text)
            }
            2 if payload.len() <= limit => Some(Inbound::Binary(payload.to_vec().into())),
            9 if payload.len() <= MAX_CONTROL_PAYLOAD => {
                Some(Inbound::Ping(payload.to_vec().into()))
            }
            10 if payload.len() <= MAX_CONTROL_PAYLOAD => {
                Some(Inbound::Pong(payload.to_vec().into()))
            }
            _ => None,
        };
        match (plain, message, &mut expected) {
            (true, Some(m), Some(list)) => list.push(m),
            _ => expected = None,
        }
    }
    if !spec.is_empty() {
        expected = None;
    }
    (out, expected)
}
