//! Fuzz target: classification of inbound binary frames (`wse_core::protocol::classify_binary`)
//! with its two bounded decoders, capped zlib (`C:`) and depth-checked msgpack (`M:`).
//!
//! Input layout: byte 0 chooses the connection format (bit 0: msgpack connection), the
//! decompression cap (bits 1–3, one of [`CAPS`]) and the mode (bits 4–5); the rest is:
//!
//! - mode 0 and 3, **raw**: the frame itself (so `E:`, `C:` and `M:` frames from the corpus are
//!   mutated byte by byte);
//! - mode 1, **zlib bomb**: `repeat: u16 LE`, `level: u8`, then a chunk; the frame is `C:` and
//!   the chunk repeated `repeat + 1` times (at most twice the cap, just over 1 MiB), compressed;
//! - mode 2, **depth bomb**: `depth: u16 LE`, `kind: u8`, then a leaf; the frame is `M:` and the
//!   leaf nested `depth` times in one-element arrays or maps.
//!
//! Invariants:
//!
//! - `E:` frames are handed over untouched; nothing else is ever `Encrypted`;
//! - `C:` frames: output never exceeds the cap (over it: `DecompressedTooLarge` with that
//!   cap); a frame is `Text` exactly when an independent streaming decoder (`flate2::bufread`)
//!   finds one complete zlib stream of valid UTF-8 within the cap and no trailing bytes, and
//!   the texts are equal; built bombs over the cap are always refused;
//! - msgpack: `Msg` exactly when `msgpack_to_json(body, 64)` succeeds; a decoded value is at
//!   most 64 deep and survives `json_to_msgpack` → `msgpack_to_json` unchanged; a built depth
//!   bomb deeper than 64 is `TooDeep` (never a stack overflow, whatever the depth);
//! - unprefixed frames on a JSON connection are `Bin`.

use std::io::Read;

use wse_core::protocol::msgpack::MAX_INBOUND_DEPTH;
use wse_core::protocol::{
    BinaryInbound, InboundError, MsgpackError, classify_binary, json_to_msgpack, msgpack_to_json,
    zlib_compress,
};
use wse_fuzz::json_depth;

/// Decompression caps the first byte chooses from: tiny ones so bombs are cheap to build, the
/// server's default (1 MiB) so the real configuration is covered.
const CAPS: [usize; 8] = [0, 1, 16, 100, 1024, 4096, 65_536, 1 << 20];

/// Largest plaintext a zlib-bomb input builds: just past the default cap, so both sides of
/// every cap occur.
const MAX_BOMB_BYTES: usize = (1 << 20) + 4096;

/// Deepest nesting a depth-bomb input builds: far beyond any recursion the decoder could afford.
const MAX_BOMB_DEPTH: usize = 100_000;

#[test]
fn inbound_binary() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let Some((&config, rest)) = bytes.split_first() else {
            return;
        };
        let msgpack_conn = config & 1 == 1;
        let cap = CAPS[usize::from((config >> 1) & 7)];
        match (config >> 4) & 3 {
            1 => zlib_bomb(rest, msgpack_conn, cap),
            2 => depth_bomb(rest, msgpack_conn, cap),
            _ => check_frame(rest, msgpack_conn, cap),
        }
    });
}

/// The invariants every frame must satisfy, whatever built it.
fn check_frame(frame: &[u8], msgpack_conn: bool, cap: usize) {
    let got = classify_binary(frame, msgpack_conn, cap);
    if let Some(record) = frame.strip_prefix(b"E:") {
        assert_eq!(got, Ok(BinaryInbound::Encrypted(record)));
        return;
    }
    assert!(
        !matches!(got, Ok(BinaryInbound::Encrypted(_))),
        "only E: frames are encrypted"
    );
    if let Some(compressed) = frame.strip_prefix(b"C:") {
        check_compressed(compressed, &got, cap);
        return;
    }
    let body = match frame.strip_prefix(b"M:") {
        Some(body) => body,
        None if msgpack_conn => frame,
        None => {
            assert_eq!(
                got,
                Ok(BinaryInbound::Bin),
                "unprefixed frame on a JSON connection"
            );
            return;
        }
    };
    match (msgpack_to_json(body, MAX_INBOUND_DEPTH), got) {
        (Ok(want), Ok(BinaryInbound::Msg(value))) => {
            assert_eq!(value, want);
            assert!(
                json_depth(&value) <= MAX_INBOUND_DEPTH,
                "decoded past the depth limit"
            );
            let again = msgpack_to_json(&json_to_msgpack(&value), MAX_INBOUND_DEPTH);
            assert_eq!(again.as_ref(), Ok(&value), "msgpack round trip");
        }
        (Err(_), Ok(BinaryInbound::Bin)) => {}
        (reference, got) => {
            panic!("msgpack body {body:02x?}: decoder {reference:?}, frame {got:?}")
        }
    }
}

/// `C:` frames against an independent streaming decoder.
fn check_compressed(compressed: &[u8], got: &Result<BinaryInbound<'_>, InboundError>, cap: usize) {
    let reference = reference_inflate(compressed, cap);
    match got {
        Ok(BinaryInbound::Text(text)) => {
            assert!(
                text.len() <= cap,
                "text of {} bytes past the cap {cap}",
                text.len()
            );
            assert_eq!(
                reference.as_deref(),
                Some(text.as_bytes()),
                "C: text differs"
            );
        }
        Err(InboundError::DecompressedTooLarge { limit }) => {
            assert_eq!(*limit, cap);
            assert!(
                reference.is_none(),
                "a complete stream within the cap was refused as too large"
            );
        }
        Ok(BinaryInbound::Bin) => assert!(
            reference
                .as_deref()
                .is_none_or(|plain| std::str::from_utf8(plain).is_err()),
            "a valid UTF-8 stream within the cap was delivered as bin"
        ),
        other => panic!("C: frame classified as {other:?}"),
    }
}

/// One complete zlib stream decoding to at most `cap` bytes with nothing after it, or `None`.
/// Reads at most `cap + 1` bytes of output, so a bomb costs the reference nothing either.
fn reference_inflate(compressed: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut decoder = flate2::bufread::ZlibDecoder::new(compressed);
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    (&mut decoder).take(limit).read_to_end(&mut out).ok()?;
    let trailing = !decoder.get_ref().is_empty();
    (out.len() <= cap && !trailing).then_some(out)
}

fn zlib_bomb(rest: &[u8], msgpack_conn: bool, cap: usize) {
    let [r0, r1, level, chunk @ ..] = rest else {
        return;
    };
    if chunk.is_empty() {
        return;
    }
    let repeat = usize::from(u16::from_le_bytes([*r0, *r1])) + 1;
    // Twice the cap is enough to cross it; building (and compressing) more only slows the
    // campaign down. `repeat` doubles its way up with memcpy: cheap even unoptimised.
    let most = MAX_BOMB_BYTES.min(cap.saturating_mul(2).max(64));
    let plain = chunk.repeat(repeat.min(most / chunk.len()).max(1));
    let frame = [
        b"C:".as_slice(),
        &zlib_compress(&plain, u32::from(*level % 10)),
    ]
    .concat();
    let got = classify_binary(&frame, msgpack_conn, cap);
    let want = if plain.len() > cap {
        Err(InboundError::DecompressedTooLarge { limit: cap })
    } else {
        Ok(String::from_utf8(plain.clone()).map_or(BinaryInbound::Bin, BinaryInbound::Text))
    };
    assert_eq!(got, want, "bomb of {} bytes, cap {cap}", plain.len());
    // The exact answer is checked above; the generic checks decompress twice more, which for
    // megabyte bombs would only slow the campaign down.
    if plain.len() <= 1 << 16 {
        check_frame(&frame, msgpack_conn, cap);
    }
}

fn depth_bomb(rest: &[u8], msgpack_conn: bool, cap: usize) {
    let [d0, d1, kind, leaf @ ..] = rest else {
        return;
    };
    let depth = usize::from(u16::from_le_bytes([*d0, *d1])).min(MAX_BOMB_DEPTH);
    // One level: a one-element array (fixarray, array16, array32) or a one-entry map (key 0).
    let level: &[u8] = match kind % 4 {
        0 => &[0x91],
        1 => &[0xdc, 0x00, 0x01],
        2 => &[0xdd, 0x00, 0x00, 0x00, 0x01],
        _ => &[0x81, 0x00],
    };
    // The leaf is a valid scalar (a positive fixint) unless the input asks for raw leaf bytes.
    let leaf = if leaf.is_empty() { &[0x2a][..] } else { leaf };
    let mut body = Vec::with_capacity(2 + depth * level.len() + leaf.len());
    body.extend_from_slice(b"M:");
    for _ in 0..depth {
        body.extend_from_slice(level);
    }
    body.extend_from_slice(leaf);
    let decoded = msgpack_to_json(&body[2..], MAX_INBOUND_DEPTH);
    let leaf_depth = msgpack_to_json(leaf, MAX_INBOUND_DEPTH).map_or(0, |v| json_depth(&v));
    if depth + leaf_depth > MAX_INBOUND_DEPTH {
        assert!(decoded.is_err(), "depth {depth} accepted: {decoded:?}");
        if msgpack_to_json(leaf, MAX_INBOUND_DEPTH).is_ok() {
            assert_eq!(
                decoded,
                Err(MsgpackError::TooDeep {
                    max_depth: MAX_INBOUND_DEPTH
                }),
                "a well-formed value {depth} deep must be refused as too deep"
            );
        }
    } else if let Ok(value) = &decoded {
        assert_eq!(json_depth(value), depth + leaf_depth);
    }
    check_frame(&body, msgpack_conn, cap);
}
