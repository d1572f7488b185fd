//! Golden bytes built by hand from the tables of UPSTREAM §10.2–§10.4, and one test per
//! decoder error and encoder refusal.

use super::compress::{Decompressor, planned_capacity};
use super::encode::split_resync;
use super::*;

/// `u32 BE N` + `inner`.
fn framed(inner: &[u8]) -> Vec<u8> {
    let mut v = (inner.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(inner);
    v
}

/// The inner bytes of a frame from its header fields and body.
fn inner(msg_type: u8, flags: u8, topic: &[u8], payload: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type, flags];
    v.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(topic);
    v.extend_from_slice(payload);
    v.extend_from_slice(rest);
    v
}

fn decode_all(bytes: &[u8]) -> (Vec<Result<PeerFrame, FrameError>>, FrameDecoder) {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let n = d.push(rest);
        rest = &rest[n..];
        out.extend(&mut d);
        if rest.is_empty() || d.is_failed() {
            return (out, d);
        }
    }
}

fn decode_one(bytes: &[u8]) -> Result<PeerFrame, FrameError> {
    let (mut frames, _) = decode_all(bytes);
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames.remove(0)
}

fn golden(bytes: &[u8], frame: PeerFrame) {
    assert_eq!(frame.encode().as_deref(), Ok(bytes), "encoding {frame:?}");
    assert_eq!(decode_one(bytes), Ok(frame));
}

#[test]
fn golden_ping_pong_shutdown_drain() {
    golden(&[0, 0, 0, 8, 0x02, 0, 0, 0, 0, 0, 0, 0], PeerFrame::Ping);
    golden(&[0, 0, 0, 8, 0x03, 0, 0, 0, 0, 0, 0, 0], PeerFrame::Pong);
    golden(
        &[0, 0, 0, 8, 0x05, 0, 0, 0, 0, 0, 0, 0],
        PeerFrame::Shutdown,
    );
    golden(&[0, 0, 0, 8, 0x0D, 0, 0, 0, 0, 0, 0, 0], PeerFrame::Drain);
}

#[test]
fn golden_hello() {
    let mut b = vec![0, 0, 0, 26, 0x04, 0, 0, 0, 18, 0, 0, 0];
    b.extend_from_slice(b"WSE\0");
    b.extend_from_slice(&[1, 0, 6, 0]);
    b.extend_from_slice(b"node-a");
    b.extend_from_slice(&[0x0F, 0, 0, 0]);
    golden(&b, PeerFrame::hello("node-a", Capabilities::ALL));
}

#[test]
fn golden_msg_with_trailer() {
    let mut b = vec![0, 0, 0, 31, 0x01, 0x02, 4, 0, 7, 0, 0, 0];
    b.extend_from_slice(b"chat");
    b.extend_from_slice(br#"{"a":1}"#);
    b.extend_from_slice(&[0xcd, 0xab, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    golden(
        &b,
        PeerFrame::Msg {
            topic: "chat".into(),
            payload: r#"{"a":1}"#.into(),
            compressed: false,
            trailer: Some(RecoveryTrailer {
                epoch: Epoch(0xabcd),
                offset: 7,
            }),
        },
    );
}

#[test]
fn golden_sub_unsub_announce() {
    let mut b = vec![0, 0, 0, 11, 0x06, 0, 3, 0, 0, 0, 0, 0];
    b.extend_from_slice(b"a.*");
    golden(
        &b,
        PeerFrame::Sub {
            topic: "a.*".into(),
        },
    );
    b[4] = 0x07;
    golden(
        &b,
        PeerFrame::Unsub {
            topic: "a.*".into(),
        },
    );
    let mut b = vec![0, 0, 0, 21, 0x09, 0, 13, 0, 0, 0, 0, 0];
    b.extend_from_slice(b"10.0.0.1:9000");
    golden(
        &b,
        PeerFrame::PeerAnnounce {
            addr: "10.0.0.1:9000".into(),
        },
    );
}

#[test]
fn golden_resync_continuation_and_empty() {
    let mut b = vec![0, 0, 0, 11, 0x08, 0x01, 0, 0, 3, 0, 0, 0];
    b.extend_from_slice(b"a\nb");
    golden(
        &b,
        PeerFrame::Resync {
            topics: vec!["a".into(), "b".into()],
            continuation: true,
        },
    );
    golden(
        &[0, 0, 0, 8, 0x08, 0, 0, 0, 0, 0, 0, 0],
        PeerFrame::Resync {
            topics: vec![],
            continuation: false,
        },
    );
}

#[test]
fn golden_peer_list() {
    let mut b = vec![0, 0, 0, 25, 0x0A, 0, 0, 0, 17, 0, 0, 0, 1, 0, 13, 0];
    b.extend_from_slice(b"10.0.0.1:9000");
    golden(
        &b,
        PeerFrame::PeerList {
            addrs: vec!["10.0.0.1:9000".into()],
        },
    );
}

#[test]
fn golden_presence_update_and_full() {
    // 1_700_000_000_000 = 0x0000_018B_CFE5_6800.
    let mut b = vec![0, 0, 0, 29, 0x0B, 0, 4, 0, 17, 0, 0, 0];
    b.extend_from_slice(b"room");
    b.push(1);
    b.extend_from_slice(&[0x00, 0x68, 0xE5, 0xCF, 0x8B, 0x01, 0x00, 0x00]);
    b.extend_from_slice(&[2, 0]);
    b.extend_from_slice(b"u1");
    b.extend_from_slice(b"{\"\"}");
    golden(
        &b,
        PeerFrame::PresenceUpdate {
            topic: "room".into(),
            action: PresenceAction::Leave,
            updated_at: 1_700_000_000_000,
            user_id: "u1".into(),
            data: "{\"\"}".into(),
        },
    );
    let mut b = vec![0, 0, 0, 10, 0x0C, 0, 0, 0, 2, 0, 0, 0];
    b.extend_from_slice(b"{}");
    golden(&b, PeerFrame::PresenceFull { chunk: "{}".into() });
}

#[test]
fn golden_compressed_msg_is_a_zstd_frame_with_flag_bit0() {
    let payload = format!("{{\"text\":\"{}\"}}", "abc".repeat(200));
    let frame = PeerFrame::Msg {
        topic: "t".into(),
        payload: payload.clone(),
        compressed: true,
        trailer: None,
    };
    let bytes = frame.encode().unwrap();
    let z = zstd::bulk::compress(payload.as_bytes(), ZSTD_LEVEL).unwrap();
    assert_eq!(&bytes[12..13], b"t");
    assert_eq!(bytes[5], flags::MSG_COMPRESSED);
    assert_eq!(&bytes[8..12], &(z.len() as u32).to_le_bytes());
    assert_eq!(
        &bytes[13..],
        &z[..],
        "the original's zstd::bulk::compress(payload, 1)"
    );
    assert_eq!(decode_one(&bytes), Ok(frame));
}

#[test]
fn compression_only_above_the_threshold_and_only_when_it_helps() {
    let enc = |payload: String, compressed: bool| {
        PeerFrame::Msg {
            topic: String::new(),
            payload,
            compressed,
            trailer: None,
        }
        .encode()
        .unwrap()
    };
    assert_eq!(
        enc("a".repeat(256), true)[5],
        0,
        "256 bytes is not above 256"
    );
    assert_eq!(enc("a".repeat(257), true)[5], flags::MSG_COMPRESSED);
    assert_eq!(enc("a".repeat(5000), false)[5], 0, "not asked");
    // Noise: whether zstd helps decides, and at some lengths it does not.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut plain_seen = false;
    for len in [257, 260, 280, 300, 400, 1000] {
        let noise: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b' ' + (x % 95) as u8)
            })
            .collect();
        let helps = zstd::bulk::compress(noise.as_bytes(), ZSTD_LEVEL)
            .unwrap()
            .len()
            < len;
        let bytes = enc(noise.clone(), true);
        assert_eq!(bytes[5] == flags::MSG_COMPRESSED, helps, "len {len}");
        plain_seen |= !helps;
        assert_eq!(
            decode_one(&bytes),
            Ok(PeerFrame::Msg {
                topic: String::new(),
                payload: noise,
                compressed: helps,
                trailer: None,
            })
        );
    }
    assert!(plain_seen, "no noise zstd could not shrink");
}

#[test]
fn compressed_msg_with_trailer_round_trips() {
    let frame = PeerFrame::Msg {
        topic: "room:1".into(),
        payload: "x".repeat(10_000),
        compressed: true,
        trailer: Some(RecoveryTrailer {
            epoch: Epoch(u32::MAX),
            offset: u64::MAX,
        }),
    };
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes[5], flags::MSG_COMPRESSED | flags::MSG_TRAILER);
    assert!(bytes.len() < 200);
    assert_eq!(decode_one(&bytes), Ok(frame));
}

// ----- zstd bombs ----------------------------------------------------------------------------

fn compressed_msg(z: &[u8]) -> Vec<u8> {
    framed(&inner(1, flags::MSG_COMPRESSED, b"t", z, &[]))
}

fn zstd_without_content_size(data: &[u8]) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(1).unwrap();
    c.set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
        .unwrap();
    c.compress(data).unwrap()
}

#[test]
fn a_bomb_that_declares_its_size_is_refused_before_any_allocation() {
    let z = zstd::bulk::compress(&vec![b'a'; 64 << 20], 19).unwrap();
    assert!(z.len() < 8 << 10, "{}", z.len());
    assert_eq!(
        planned_capacity(&z, MAX_DECOMPRESSED),
        Err(FrameError::DecompressedTooLarge {
            limit: MAX_DECOMPRESSED
        })
    );
    assert_eq!(
        decode_one(&compressed_msg(&z)),
        Err(FrameError::DecompressedTooLarge {
            limit: MAX_DECOMPRESSED
        })
    );
}

#[test]
fn a_bomb_that_hides_its_size_stops_at_the_cap() {
    let z = zstd_without_content_size(&vec![b'a'; 4 << 20]);
    assert!(matches!(
        zstd::zstd_safe::get_frame_content_size(&z),
        Ok(None)
    ));
    assert_eq!(planned_capacity(&z, MAX_DECOMPRESSED), Ok(MAX_DECOMPRESSED));
    assert_eq!(
        decode_one(&compressed_msg(&z)),
        Err(FrameError::DecompressedTooLarge {
            limit: MAX_DECOMPRESSED
        })
    );
    // One byte over the cap, too.
    let z = zstd_without_content_size(&vec![b'a'; MAX_DECOMPRESSED + 1]);
    assert_eq!(
        Decompressor::default().decompress(&z, MAX_DECOMPRESSED),
        Err(FrameError::DecompressedTooLarge {
            limit: MAX_DECOMPRESSED
        })
    );
}

#[test]
fn exactly_the_cap_decompresses_with_or_without_a_recorded_size() {
    let plain = vec![b'b'; MAX_DECOMPRESSED];
    for z in [
        zstd::bulk::compress(&plain, 1).unwrap(),
        zstd_without_content_size(&plain),
    ] {
        let out = Decompressor::default()
            .decompress(&z, MAX_DECOMPRESSED)
            .unwrap();
        assert_eq!(out.len(), MAX_DECOMPRESSED);
        assert!(
            out.capacity() <= MAX_DECOMPRESSED + 64,
            "{}",
            out.capacity()
        );
    }
    // And as a frame: a 1 MiB payload only fits compressed.
    let frame = PeerFrame::Msg {
        topic: "t".into(),
        payload: "b".repeat(MAX_DECOMPRESSED),
        compressed: true,
        trailer: None,
    };
    assert_eq!(decode_one(&frame.encode().unwrap()), Ok(frame));
}

#[test]
fn corrupt_zstd_is_bad_compression() {
    let mut z = zstd::bulk::compress(&vec![b'c'; 1000], 1).unwrap();
    assert_eq!(
        decode_one(&compressed_msg(&z[..z.len() - 3])),
        Err(FrameError::BadCompression)
    );
    let n = z.len();
    z[n / 2] ^= 0xFF;
    z[n - 1] ^= 0xFF;
    assert!(matches!(
        decode_one(&compressed_msg(&z)),
        Err(FrameError::BadCompression)
    ));
    assert_eq!(
        decode_one(&compressed_msg(b"")),
        Err(FrameError::BadCompression)
    );
    assert_eq!(
        decode_one(&compressed_msg(b"not zstd at all")),
        Err(FrameError::BadCompression)
    );
}

#[test]
fn a_decompressed_payload_must_be_utf8() {
    let z = zstd::bulk::compress(&[0xFF; 300], 1).unwrap();
    assert_eq!(
        decode_one(&compressed_msg(&z)),
        Err(FrameError::BadUtf8 {
            field: Field::Payload
        })
    );
}

// ----- structural errors ---------------------------------------------------------------------

#[test]
fn bad_outer_lengths_end_the_stream() {
    for len in [0u32, MAX_FRAME_SIZE as u32 + 1, u32::MAX] {
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&framed(&inner(2, 0, b"", b"", b"")));
        let (frames, mut d) = decode_all(&bytes);
        assert_eq!(frames, vec![Err(FrameError::BadLength { len })]);
        assert!(d.is_failed());
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.push(&[0, 0, 0, 8]), 4, "a failed decoder discards");
        assert_eq!(d.next(), None);
    }
}

#[test]
fn a_maximal_frame_is_accepted() {
    let chunk = "z".repeat(MAX_FRAME_SIZE - HEADER_LEN);
    let frame = PeerFrame::PresenceFull { chunk };
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes.len(), DECODER_CAPACITY);
    assert_eq!(decode_one(&bytes), Ok(frame));
}

#[test]
fn short_and_mismatched_frames() {
    assert_eq!(
        decode_one(&framed(&[2, 0, 0])),
        Err(FrameError::TooShort { len: 3 })
    );
    // PING declaring a 1-byte payload it does not carry.
    assert_eq!(
        decode_one(&framed(&[2, 0, 0, 0, 1, 0, 0, 0])),
        Err(FrameError::LengthMismatch {
            declared: 9,
            actual: 8
        })
    );
    // A byte more than declared.
    assert_eq!(
        decode_one(&framed(&inner(6, 0, b"t", b"", b"!"))),
        Err(FrameError::LengthMismatch {
            declared: 9,
            actual: 10
        })
    );
    // MSG with the trailer flag but no trailer.
    assert_eq!(
        decode_one(&framed(&inner(1, flags::MSG_TRAILER, b"t", b"p", b""))),
        Err(FrameError::LengthMismatch {
            declared: 22,
            actual: 10
        })
    );
    // Huge declared lengths do not overflow.
    assert_eq!(
        decode_one(&framed(&[1, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])),
        Err(FrameError::LengthMismatch {
            declared: 8 + 65_535 + u64::from(u32::MAX) + 12,
            actual: 8
        })
    );
}

#[test]
fn flags_outside_the_types_bits_are_refused() {
    for (t, f) in [(2u8, 1u8), (1, 4), (1, 0x80), (8, 2), (4, 1), (0x0B, 1)] {
        assert_eq!(
            decode_one(&framed(&inner(t, f, b"", b"", b""))),
            Err(FrameError::BadFlags {
                msg_type: t,
                flags: f
            })
        );
    }
}

#[test]
fn fields_a_type_does_not_carry_are_refused() {
    let cases: [(u8, &[u8], &[u8], Field); 7] = [
        (2, b"t", b"", Field::Topic),
        (3, b"", b"p", Field::Payload),
        (5, b"t", b"", Field::Topic),
        (0x0D, b"", b"p", Field::Payload),
        (6, b"t", b"p", Field::Payload),
        (9, b"a", b"p", Field::Payload),
        (0x0C, b"t", b"{}", Field::Topic),
    ];
    for (t, topic, payload, field) in cases {
        assert_eq!(
            decode_one(&framed(&inner(t, 0, topic, payload, b""))),
            Err(FrameError::UnexpectedField { msg_type: t, field }),
            "type {t}"
        );
    }
}

#[test]
fn invalid_utf8_is_named_by_field() {
    let bad = b"\xC3\x28";
    let cases: [(Vec<u8>, Field); 6] = [
        (inner(1, 0, bad, b"p", b""), Field::Topic),
        (inner(1, 0, b"t", bad, b""), Field::Payload),
        (inner(6, 0, bad, b"", b""), Field::Topic),
        (inner(8, 0, b"", bad, b""), Field::Payload),
        (inner(9, 0, bad, b"", b""), Field::Topic),
        (inner(0x0C, 0, b"", bad, b""), Field::Payload),
    ];
    for (bytes, field) in cases {
        assert_eq!(
            decode_one(&framed(&bytes)),
            Err(FrameError::BadUtf8 { field })
        );
    }
}

fn hello_payload(magic: &[u8], id: &[u8], id_len: u16, tail: &[u8]) -> Vec<u8> {
    let mut p = magic.to_vec();
    p.extend_from_slice(&1u16.to_le_bytes());
    p.extend_from_slice(&id_len.to_le_bytes());
    p.extend_from_slice(id);
    p.extend_from_slice(tail);
    p
}

#[test]
fn bad_hellos() {
    let hello = |p: Vec<u8>| decode_one(&framed(&inner(4, 0, b"", &p, b"")));
    assert_eq!(
        hello(b"WSE\0\x01\x00\x00\x00\x0F\x00\x00".to_vec()),
        Err(FrameError::Truncated {
            field: Field::HelloFixed
        })
    );
    assert_eq!(
        hello(hello_payload(b"WSE\x01", b"id", 2, &[0; 4])),
        Err(FrameError::BadMagic { found: *b"WSE\x01" })
    );
    assert_eq!(
        hello(hello_payload(b"WSE\0", &[b'a'; 257], 257, &[0; 4])),
        Err(FrameError::InstanceIdTooLong { len: 257 })
    );
    assert_eq!(
        hello(hello_payload(b"WSE\0", b"abc", 5, &[0; 4])),
        Err(FrameError::Truncated {
            field: Field::InstanceId
        })
    );
    assert_eq!(
        hello(hello_payload(b"WSE\0", b"\xFF\xFE", 2, &[0; 4])),
        Err(FrameError::BadUtf8 {
            field: Field::InstanceId
        })
    );
    // 256 bytes is the limit, and bytes after the capabilities are a newer version's: ignored.
    let id = "i".repeat(256);
    assert_eq!(
        hello(hello_payload(
            b"WSE\0",
            id.as_bytes(),
            256,
            &[3, 0, 0, 0, 9, 9, 9]
        )),
        Ok(PeerFrame::Hello {
            version: 1,
            instance_id: id,
            capabilities: Capabilities::INTEREST_ROUTING | Capabilities::COMPRESSION,
        })
    );
}

#[test]
fn bad_peer_lists() {
    let list = |p: &[u8]| decode_one(&framed(&inner(0x0A, 0, b"", p, b"")));
    assert_eq!(
        list(b""),
        Err(FrameError::Truncated {
            field: Field::PeerCount
        })
    );
    assert_eq!(
        list(b"\x02\x00\x01\x00a\x05\x00ab"),
        Err(FrameError::Truncated {
            field: Field::Address
        })
    );
    assert_eq!(
        list(b"\x02\x00\x01\x00a\x01"),
        Err(FrameError::Truncated {
            field: Field::Address
        })
    );
    assert_eq!(
        list(b"\x01\x00\x01\x00\xFF"),
        Err(FrameError::BadUtf8 {
            field: Field::Address
        })
    );
    assert_eq!(
        list(b"\x01\x00\x01\x00ab"),
        Err(FrameError::TrailingBytes {
            msg_type: 0x0A,
            extra: 1
        })
    );
    assert_eq!(list(b"\x00\x00"), Ok(PeerFrame::PeerList { addrs: vec![] }));
}

#[test]
fn a_peer_list_is_read_up_to_256_entries() {
    let mut p = 300u16.to_le_bytes().to_vec();
    for i in 0..256 {
        let a = format!("10.0.{}.{}:1", i / 256, i % 256);
        p.extend_from_slice(&(a.len() as u16).to_le_bytes());
        p.extend_from_slice(a.as_bytes());
    }
    p.extend_from_slice(b"\xFF\xFF garbage past the 256th entry is not read");
    let Ok(PeerFrame::PeerList { addrs }) = decode_one(&framed(&inner(0x0A, 0, b"", &p, b"")))
    else {
        panic!("not a peer list");
    };
    assert_eq!(addrs.len(), 256);
    assert_eq!(addrs[255], "10.0.0.255:1");
}

#[test]
fn bad_presence_updates() {
    let upd = |p: &[u8]| decode_one(&framed(&inner(0x0B, 0, b"room", p, b"")));
    let fixed = |action: u8, uid_len: u16| {
        let mut p = vec![action];
        p.extend_from_slice(&7u64.to_le_bytes());
        p.extend_from_slice(&uid_len.to_le_bytes());
        p
    };
    assert_eq!(
        upd(&fixed(0, 0)[..10]),
        Err(FrameError::Truncated {
            field: Field::PresenceFixed
        })
    );
    assert_eq!(
        upd(&fixed(3, 0)),
        Err(FrameError::BadPresenceAction { action: 3 })
    );
    let mut p = fixed(0, 5);
    p.extend_from_slice(b"abc");
    assert_eq!(
        upd(&p),
        Err(FrameError::Truncated {
            field: Field::UserId
        })
    );
    let mut p = fixed(2, 1);
    p.extend_from_slice(b"u\xFF");
    assert_eq!(
        upd(&p),
        Err(FrameError::BadUtf8 {
            field: Field::PresenceData
        })
    );
    let mut p = fixed(2, 1);
    p.extend_from_slice(b"u");
    assert_eq!(
        upd(&p),
        Ok(PeerFrame::PresenceUpdate {
            topic: "room".into(),
            action: PresenceAction::Update,
            updated_at: 7,
            user_id: "u".into(),
            data: String::new(),
        })
    );
}

#[test]
fn resync_drops_empty_lines() {
    assert_eq!(
        decode_one(&framed(&inner(8, 0, b"", b"\na\n\nb\n", b""))),
        Ok(PeerFrame::Resync {
            topics: vec!["a".into(), "b".into()],
            continuation: false
        })
    );
}

#[test]
fn unknown_types_are_skipped_and_counted() {
    let mut bytes = PeerFrame::Ping.encode().unwrap();
    bytes.extend_from_slice(&framed(&inner(0x0E, 0xFF, b"\xFF", b"anything", b"")));
    bytes.extend_from_slice(&framed(&[0x00]));
    bytes.extend_from_slice(&framed(&inner(0xFF, 0, b"", b"", b"")));
    bytes.extend_from_slice(&PeerFrame::Pong.encode().unwrap());
    let (frames, d) = decode_all(&bytes);
    assert_eq!(
        frames,
        vec![
            Ok(PeerFrame::Ping),
            Err(FrameError::TooShort { len: 1 }),
            Ok(PeerFrame::Pong)
        ]
    );
    assert_eq!(d.unknown_skipped(), 2);
    assert_eq!(
        decode_inner(&inner(0x0E, 0, b"", b"", b"")),
        Ok(PeerFrame::Unknown { msg_type: 0x0E })
    );
    assert_eq!(
        PeerFrame::Unknown { msg_type: 0x0E }.encode(),
        Ok(framed(&inner(0x0E, 0, b"", b"", b"")))
    );
}

// ----- the streaming decoder -----------------------------------------------------------------

#[test]
fn the_decoder_takes_one_byte_at_a_time() {
    let frames = [
        PeerFrame::hello("x", Capabilities::ALL),
        PeerFrame::Sub { topic: "a".into() },
        PeerFrame::Drain,
    ];
    let mut bytes = Vec::new();
    let mut enc = FrameEncoder::new();
    for f in &frames {
        enc.encode(f, &mut bytes).unwrap();
    }
    let mut d = FrameDecoder::new();
    let mut got = Vec::new();
    for b in &bytes {
        assert_eq!(d.push(std::slice::from_ref(b)), 1);
        got.extend(&mut d);
    }
    assert_eq!(got, frames.map(Ok).to_vec());
    assert_eq!(d.buffered(), 0);
}

#[test]
fn the_decoder_never_holds_more_than_one_maximal_frame() {
    let mut one = PeerFrame::Ping.encode().unwrap();
    let big = PeerFrame::PresenceFull {
        chunk: "q".repeat(MAX_FRAME_SIZE - HEADER_LEN),
    }
    .encode()
    .unwrap();
    one.extend_from_slice(&big);
    let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * 3).collect();
    let mut d = FrameDecoder::new();
    let mut rest = &stream[..];
    let mut count = 0;
    while !rest.is_empty() {
        let n = d.push(rest);
        assert!(d.buffered() <= DECODER_CAPACITY);
        rest = &rest[n..];
        for f in &mut d {
            f.unwrap();
            count += 1;
        }
    }
    assert_eq!(count, 6);
    assert_eq!(d.buffered(), 0);
}

// ----- the encoder's refusals ----------------------------------------------------------------

#[test]
fn the_encoder_refuses_instead_of_truncating_and_writes_nothing() {
    let long = "t".repeat(MAX_TOPIC_LEN + 1);
    let msg = |topic: &str, payload: String, compressed| PeerFrame::Msg {
        topic: topic.into(),
        payload,
        compressed,
        trailer: None,
    };
    let cases = [
        (
            msg(&long, String::new(), false),
            EncodeError::TooLong {
                field: Field::Topic,
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        (
            msg("t", "p".repeat(MAX_FRAME_SIZE - 8), false),
            EncodeError::FrameTooLarge {
                size: MAX_FRAME_SIZE + 1,
            },
        ),
        (
            msg("", "p".repeat(MAX_DECOMPRESSED + 1), true),
            EncodeError::PayloadTooLarge {
                len: MAX_DECOMPRESSED + 1,
            },
        ),
        (
            PeerFrame::hello("i".repeat(257), Capabilities::ALL),
            EncodeError::InstanceIdTooLong { len: 257 },
        ),
        (
            PeerFrame::Sub {
                topic: long.clone(),
            },
            EncodeError::TooLong {
                field: Field::Topic,
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        (
            PeerFrame::PeerAnnounce { addr: long.clone() },
            EncodeError::TooLong {
                field: Field::Topic,
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        (
            PeerFrame::PeerList {
                addrs: vec!["a".into(); 257],
            },
            EncodeError::TooManyPeers { len: 257 },
        ),
        (
            PeerFrame::PeerList {
                addrs: vec![long.clone()],
            },
            EncodeError::TooLong {
                field: Field::Address,
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        (
            PeerFrame::PresenceUpdate {
                topic: "t".into(),
                action: PresenceAction::Join,
                updated_at: 0,
                user_id: long.clone(),
                data: String::new(),
            },
            EncodeError::TooLong {
                field: Field::UserId,
                len: MAX_TOPIC_LEN + 1,
            },
        ),
        (
            PeerFrame::PresenceFull {
                chunk: "c".repeat(MAX_FRAME_SIZE),
            },
            EncodeError::FrameTooLarge {
                size: MAX_FRAME_SIZE + 8,
            },
        ),
        (
            PeerFrame::Resync {
                topics: vec!["a\nb".into()],
                continuation: false,
            },
            EncodeError::BadResyncTopic {
                topic: "a\nb".into(),
            },
        ),
        (
            PeerFrame::Resync {
                topics: vec![String::new()],
                continuation: false,
            },
            EncodeError::BadResyncTopic {
                topic: String::new(),
            },
        ),
        (
            PeerFrame::Unknown { msg_type: 1 },
            EncodeError::NotUnknown { msg_type: 1 },
        ),
    ];
    let mut enc = FrameEncoder::new();
    for (frame, err) in cases {
        let mut out = vec![7u8];
        assert_eq!(enc.encode(&frame, &mut out), Err(err));
        assert_eq!(out, [7], "nothing appended");
    }
}

#[test]
fn a_payload_too_big_plain_may_fit_compressed() {
    let frame = PeerFrame::Msg {
        topic: "t".into(),
        payload: "p".repeat(MAX_FRAME_SIZE - 8),
        compressed: true,
        trailer: None,
    };
    assert_eq!(decode_one(&frame.encode().unwrap()), Ok(frame));
}

// ----- RESYNC splitting ----------------------------------------------------------------------

#[test]
fn resync_splits_at_topic_boundaries_under_the_limit() {
    let topics: Vec<String> = (0..20_000).map(|i| format!("{i:0>60}")).collect();
    let frames = resync_frames(&topics).unwrap();
    assert_eq!(frames.len(), 2);
    let mut seen = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let bytes = f.encode().unwrap();
        assert!(bytes.len() <= DECODER_CAPACITY);
        let PeerFrame::Resync {
            topics,
            continuation,
        } = decode_one(&bytes).unwrap()
        else {
            panic!("not a resync")
        };
        assert_eq!(continuation, i > 0);
        seen.extend(topics);
    }
    assert_eq!(seen, topics);
    // The first frame is as full as it can be: one more topic would not fit.
    let PeerFrame::Resync { topics: first, .. } = &frames[0] else {
        unreachable!()
    };
    assert!(first.len() * 61 - 1 <= MAX_RESYNC_PAYLOAD);
    assert!((first.len() + 1) * 61 - 1 > MAX_RESYNC_PAYLOAD);
}

#[test]
fn resync_of_nothing_is_one_empty_replacing_frame() {
    let none: [&str; 0] = [];
    assert_eq!(
        resync_frames(&none),
        Ok(vec![PeerFrame::Resync {
            topics: vec![],
            continuation: false
        }])
    );
    assert_eq!(
        split_resync(&["ab", "cd", "e"], 5),
        Ok(vec![
            PeerFrame::Resync {
                topics: vec!["ab".into(), "cd".into()],
                continuation: false
            },
            PeerFrame::Resync {
                topics: vec!["e".into()],
                continuation: true
            },
        ])
    );
    assert_eq!(
        resync_frames(&["ok", ""]),
        Err(EncodeError::BadResyncTopic {
            topic: String::new()
        })
    );
}

// ----- negotiation ---------------------------------------------------------------------------

#[test]
fn version_and_capability_negotiation() {
    assert_eq!(negotiate_version(0), None);
    assert_eq!(negotiate_version(1), Some(1));
    assert_eq!(negotiate_version(9), Some(1));
    let remote = Capabilities(0xF0 | Capabilities::PRESENCE.bits());
    let link = Capabilities::ALL.negotiate(remote);
    assert_eq!(link, Capabilities::PRESENCE);
    assert!(link.contains(Capabilities::PRESENCE));
    assert!(!link.contains(Capabilities::COMPRESSION));
    assert_eq!(Capabilities::ALL.bits(), 0x0F);
    assert_eq!(
        Capabilities::INTEREST_ROUTING
            | Capabilities::COMPRESSION
            | Capabilities::PRESENCE
            | Capabilities::RECOVERY,
        Capabilities::ALL
    );
}
