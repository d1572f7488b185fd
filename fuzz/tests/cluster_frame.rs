//! Fuzz target: the cluster peer frame codec (`wse_core::cluster::frame`): the streaming
//! `FrameDecoder`, `decode_inner`, the encoder and capped zstd decompression.
//!
//! Input (see `wse_fuzz::split_mode`): **raw**, byte 0 seeds the chunk sizes the stream is pushed
//! in and the rest is a peer byte stream; or **structured**: either a list of frames (built from
//! small descriptions, then encoded, optionally with one byte flipped or the stream cut), or a
//! hand-built zstd bomb (RLE blocks, so megabytes of output from a few bytes) in a compressed MSG.
//!
//! Invariants:
//!
//! - whatever the chunking, the decoder yields exactly what a reference walk of the outer
//!   framing with `decode_inner` per frame gives, minus the unknown types, which it counts; after
//!   a `BadLength` it yields nothing more; it never holds more than `DECODER_CAPACITY` bytes and
//!   holds exactly the incomplete tail otherwise;
//! - every frame it accepts re-encodes, and that decodes to the same frame (the `compressed`
//!   flag being what the wire says);
//! - frames built within bounds encode, and an unmutated stream of them decodes to them;
//! - a compressed payload never yields more than `MAX_DECOMPRESSED` bytes: a bomb is
//!   `DecompressedTooLarge` (or `BadCompression` when its declared size lies), never a payload.

use bolero::TypeGenerator;
use wse_core::cluster::frame::{
    Capabilities, DECODER_CAPACITY, FrameDecoder, FrameEncoder, FrameError, MAX_DECOMPRESSED,
    MAX_FRAME_SIZE, PeerFrame, PresenceAction, RecoveryTrailer, decode_inner, flags,
};
use wse_core::recovery::Epoch;
use wse_fuzz::{Mode, name_from, split_mode, structured};

/// Chunk sizes the stream is pushed in, picked by the seed: single bytes, odd sizes, a socket
/// read, everything at once.
const CHUNKS: [usize; 6] = [1, 3, 7, 64, 65_536, usize::MAX];

/// Topic alphabet: ASCII, a glob character, a two-byte and a four-byte character.
const ALPHABET: &[&str] = &["a", "b", ":", "*", "é", "😀"];

#[derive(Debug, TypeGenerator)]
enum Input {
    Frames {
        frames: Vec<Spec>,
        seed: u8,
        flip: Option<(u32, u8)>,
        cut: Option<u32>,
    },
    Bomb(Bomb),
}

#[derive(Debug, TypeGenerator)]
enum Spec {
    Msg {
        topic: Vec<u8>,
        unit: Vec<u8>,
        repeat: u16,
        compressed: bool,
        trailer: Option<(u32, u64)>,
    },
    Ping,
    Pong,
    Hello {
        version: u16,
        id: Vec<u8>,
        caps: u32,
    },
    Shutdown,
    Sub(Vec<u8>),
    Unsub(Vec<u8>),
    Resync {
        topics: Vec<Vec<u8>>,
        continuation: bool,
    },
    Announce(Vec<u8>),
    PeerList(Vec<Vec<u8>>),
    Presence {
        topic: Vec<u8>,
        action: u8,
        at: u64,
        user: Vec<u8>,
        data: Vec<u8>,
    },
    Full {
        unit: Vec<u8>,
        repeat: u16,
    },
    Drain,
    Unknown(u8),
}

/// A zstd frame built by hand: `blocks` RLE blocks of `block` bytes each (so the output is
/// `blocks × block` bytes of `byte`), with or without a declared content size.
#[derive(Debug, TypeGenerator)]
struct Bomb {
    blocks: u8,
    block: u16,
    byte: u8,
    declared: Option<u32>,
}

#[test]
fn cluster_frame() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        Some((Mode::Raw, rest)) => {
            let Some((&seed, stream)) = rest.split_first() else {
                return;
            };
            check_stream(stream, seed);
        }
        Some((Mode::Structured, rest)) => match structured::<Input>(rest) {
            Some(Input::Frames {
                frames,
                seed,
                flip,
                cut,
            }) => check_frames(&frames, seed, flip, cut),
            Some(Input::Bomb(bomb)) => check_bomb(&bomb),
            None => {}
        },
        None => {}
    });
}

/// At most `max` characters over [`ALPHABET`] (each at most 4 bytes), so every built frame
/// stays within the encoder's bounds.
fn text_n(bytes: &[u8], max: usize) -> String {
    bytes
        .iter()
        .take(max)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
        .collect()
}

fn text(bytes: &[u8]) -> String {
    text_n(bytes, 1_000)
}

fn build(spec: &Spec) -> PeerFrame {
    match spec {
        Spec::Msg {
            topic,
            unit,
            repeat,
            compressed,
            trailer,
        } => PeerFrame::Msg {
            topic: text(topic),
            payload: text_n(unit, 16).repeat(usize::from(*repeat % 2048)),
            compressed: *compressed,
            trailer: trailer.map(|(e, offset)| RecoveryTrailer {
                epoch: Epoch(e),
                offset,
            }),
        },
        Spec::Ping => PeerFrame::Ping,
        Spec::Pong => PeerFrame::Pong,
        Spec::Hello { version, id, caps } => PeerFrame::Hello {
            version: *version,
            instance_id: name_from(&id[..id.len().min(256)], b"0123456789abcdef-"),
            capabilities: Capabilities(*caps),
        },
        Spec::Shutdown => PeerFrame::Shutdown,
        Spec::Sub(t) => PeerFrame::Sub { topic: text(t) },
        Spec::Unsub(t) => PeerFrame::Unsub { topic: text(t) },
        Spec::Resync {
            topics,
            continuation,
        } => PeerFrame::Resync {
            topics: topics
                .iter()
                .take(200)
                .map(|t| text(t))
                .filter(|t| !t.is_empty())
                .collect(),
            continuation: *continuation,
        },
        Spec::Announce(a) => PeerFrame::PeerAnnounce {
            addr: name_from(&a[..a.len().min(64)], b"0123456789.:"),
        },
        Spec::PeerList(addrs) => PeerFrame::PeerList {
            addrs: addrs
                .iter()
                .take(256)
                .map(|a| name_from(&a[..a.len().min(64)], b"0123456789.:"))
                .collect(),
        },
        Spec::Presence {
            topic,
            action,
            at,
            user,
            data,
        } => PeerFrame::PresenceUpdate {
            topic: text(topic),
            action: [
                PresenceAction::Join,
                PresenceAction::Leave,
                PresenceAction::Update,
            ][usize::from(*action % 3)],
            updated_at: *at,
            user_id: text(user),
            data: text(data),
        },
        Spec::Full { unit, repeat } => PeerFrame::PresenceFull {
            chunk: text_n(unit, 16).repeat(usize::from(*repeat % 4096)),
        },
        Spec::Drain => PeerFrame::Drain,
        Spec::Unknown(t) => PeerFrame::Unknown {
            msg_type: 0x0E + t % 0xF2,
        },
    }
}

/// What decoding the wire form of `f` gives: `compressed` is the wire's flag.
fn normalized(f: &PeerFrame, wire: &[u8]) -> PeerFrame {
    match f {
        PeerFrame::Msg {
            topic,
            payload,
            trailer,
            ..
        } => PeerFrame::Msg {
            topic: topic.clone(),
            payload: payload.clone(),
            compressed: wire[5] & flags::MSG_COMPRESSED != 0,
            trailer: *trailer,
        },
        other => other.clone(),
    }
}

fn check_frames(specs: &[Spec], seed: u8, flip: Option<(u32, u8)>, cut: Option<u32>) {
    let mut enc = FrameEncoder::new();
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for spec in specs {
        let frame = build(spec);
        let at = stream.len();
        let n = enc
            .encode(&frame, &mut stream)
            .unwrap_or_else(|e| panic!("{frame:?} is within bounds: {e}"));
        assert_eq!(n, stream.len() - at);
        if !matches!(frame, PeerFrame::Unknown { .. }) {
            want.push(Ok(normalized(&frame, &stream[at..])));
        }
    }
    let (flipped, cut_short) = (
        flip.filter(|(_, x)| *x != 0 && !stream.is_empty()),
        cut.filter(|c| (*c as usize) < stream.len()),
    );
    if let Some((at, x)) = flipped {
        let i = at as usize % stream.len();
        stream[i] ^= x;
    }
    if let Some(c) = cut_short {
        stream.truncate(c as usize);
    }
    let got = check_stream(&stream, seed);
    if flipped.is_none() && cut_short.is_none() {
        assert_eq!(got, want);
    }
}

/// Decodes `stream` pushed in chunks chosen by `seed`, checks it against the reference walk and
/// the re-encoding invariant, and returns what the decoder yielded.
fn check_stream(stream: &[u8], seed: u8) -> Vec<Result<PeerFrame, FrameError>> {
    let (want, unknown, tail) = reference(stream);
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    let mut rest = stream;
    let mut step = usize::from(seed);
    while !rest.is_empty() {
        let chunk = CHUNKS[step % CHUNKS.len()].min(rest.len());
        step = step.wrapping_mul(31).wrapping_add(7);
        let free = DECODER_CAPACITY - d.buffered();
        let took = d.push(&rest[..chunk]);
        if d.is_failed() {
            assert_eq!(took, chunk, "a failed decoder discards");
        } else {
            assert_eq!(took, chunk.min(free), "push takes what fits");
        }
        assert!(d.buffered() <= DECODER_CAPACITY);
        rest = &rest[took..];
        got.extend(&mut d);
    }
    assert_eq!(got, want, "streaming differs from the reference walk");
    assert_eq!(d.unknown_skipped(), unknown);
    if !d.is_failed() {
        assert_eq!(d.buffered(), tail, "holds exactly the incomplete tail");
    }
    for f in got.iter().flatten() {
        let again = f.encode().expect("an accepted frame re-encodes");
        assert_eq!(decode_inner(&again[4..]), Ok(normalized(f, &again)));
        if let PeerFrame::Msg { payload, .. } = f {
            assert!(payload.len() <= MAX_DECOMPRESSED);
        }
    }
    got
}

/// Walks the outer framing by hand and decodes each complete frame alone: the frames (unknown
/// types left out), the number of unknown ones, and the bytes of the incomplete tail.
fn reference(stream: &[u8]) -> (Vec<Result<PeerFrame, FrameError>>, u64, usize) {
    let (mut out, mut unknown, mut at) = (Vec::new(), 0u64, 0usize);
    while let Some(prefix) = stream.get(at..at + 4) {
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let n = len as usize;
        if n == 0 || n > MAX_FRAME_SIZE {
            out.push(Err(FrameError::BadLength { len }));
            return (out, unknown, 0);
        }
        let Some(inner) = stream.get(at + 4..at + 4 + n) else {
            break;
        };
        match decode_inner(inner) {
            Ok(PeerFrame::Unknown { .. }) => unknown += 1,
            r => out.push(r),
        }
        at += 4 + n;
    }
    (out, unknown, stream.len() - at)
}

/// A zstd frame of `blocks` RLE blocks (RFC 8878): magic, a header with a 1 MiB window and an
/// optional 4-byte content size, then 3-byte block headers each followed by the repeated byte.
fn zstd_rle(bomb: &Bomb) -> (Vec<u8>, usize) {
    let blocks = usize::from(bomb.blocks % 24) + 1;
    // Block_Maximum_Size is 128 KiB; the u16 covers up to 64 KiB, doubled.
    let block = (usize::from(bomb.block) * 2).clamp(1, 128 * 1024);
    let mut z = vec![0x28, 0xB5, 0x2F, 0xFD];
    match bomb.declared {
        Some(size) => {
            z.push(0b1000_0000); // FCS field 4 bytes, window descriptor present
            z.push(0x50); // window 2^(10+10) = 1 MiB
            z.extend_from_slice(&size.to_le_bytes());
        }
        None => {
            z.push(0); // no content size
            z.push(0x50);
        }
    }
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let header = last | (1 << 1) | ((block as u32) << 3); // RLE block
        z.extend_from_slice(&header.to_le_bytes()[..3]);
        z.push(bomb.byte);
    }
    (z, blocks * block)
}

fn check_bomb(bomb: &Bomb) {
    let (z, real) = zstd_rle(bomb);
    let mut inner = vec![0x01, flags::MSG_COMPRESSED, 1, 0];
    inner.extend_from_slice(&(z.len() as u32).to_le_bytes());
    inner.push(b't');
    inner.extend_from_slice(&z);
    let declared = bomb.declared.map(|d| d as usize);
    let consistent = declared.is_none_or(|d| d == real);
    let got = decode_inner(&inner);
    // Every bomb over the cap is refused, whatever it declares.
    if real > MAX_DECOMPRESSED || declared.is_some_and(|d| d > MAX_DECOMPRESSED) {
        assert!(
            got.is_err(),
            "{real} bytes (declared {declared:?}) accepted"
        );
    }
    match got {
        Ok(PeerFrame::Msg { payload, .. }) => {
            assert!(consistent && real <= MAX_DECOMPRESSED);
            assert_eq!(payload.len(), real);
            assert!(payload.bytes().all(|b| b == bomb.byte));
        }
        Err(FrameError::DecompressedTooLarge { limit }) => {
            assert_eq!(limit, MAX_DECOMPRESSED);
            assert!(
                declared.unwrap_or(real) > MAX_DECOMPRESSED
                    || (declared == Some(MAX_DECOMPRESSED) && real > MAX_DECOMPRESSED),
                "declared {declared:?}, real {real}"
            );
        }
        Err(FrameError::BadCompression) => {
            assert!(!consistent, "a valid frame of {real} bytes refused");
        }
        Err(FrameError::BadUtf8 { .. }) => {
            assert!(consistent && real <= MAX_DECOMPRESSED && bomb.byte >= 0x80);
        }
        other => panic!("unexpected {other:?}"),
    }
}
