use proptest::prelude::*;

use super::*;

const LIMIT: usize = 1 << 16;

/// A client frame as a browser would send it: masked with `mask`.
fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    out
}

const M: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn decode_all(bytes: &[u8]) -> Result<Vec<Inbound>, FrameError> {
    let mut d = FrameDecoder::new(LIMIT);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = d.decode(&mut buf)? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn server_frames_are_unmasked_final_and_use_the_shortest_length_form() {
    for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
        let payload = vec![b'x'; len];
        let f = encode(Opcode::Binary, &payload);
        assert_eq!(f.len(), header_len + len, "len {len}");
        assert_eq!(f[0], 0x82, "FIN + binary");
        assert_eq!(f[1] & 0x80, 0, "server frames are not masked");
        let (h, n) = FrameHeader::parse(&mut Cursor::new(&f[..]))
            .unwrap()
            .unwrap();
        assert_eq!((h.opcode, n), (OpCode::Data(Data::Binary), len as u64));
        assert_eq!(&f[header_len..], &payload[..]);
    }
    assert_eq!(&encode(Opcode::Text, b"hi")[..], &[0x81, 2, b'h', b'i']);
}

#[test]
fn close_frames_carry_the_code_and_a_reason_cut_to_fit() {
    let f = encode_close(4408, "Idle timeout");
    assert_eq!(&f[..4], &[0x88, 14, 0x11, 0x38]);
    let long = encode_close(1000, &"é".repeat(100));
    assert!(long.len() <= 2 + 125);
    assert!(std::str::from_utf8(&long[4..]).is_ok());
}

#[test]
fn masked_client_messages_decode() {
    let mut bytes = client_frame(true, 1, b"hello", M);
    bytes.extend(client_frame(true, 2, &[0, 1, 2], M));
    bytes.extend(client_frame(true, 9, b"p", M));
    bytes.extend(client_frame(true, 10, b"", M));
    bytes.extend(client_frame(true, 8, &[0x03, 0xE8, b'b', b'y', b'e'], M));
    bytes.extend(client_frame(true, 8, &[], M));
    assert_eq!(
        decode_all(&bytes).unwrap(),
        vec![
            Inbound::Text("hello".into()),
            Inbound::Binary(Bytes::from_static(&[0, 1, 2])),
            Inbound::Ping(Bytes::from_static(b"p")),
            Inbound::Pong(Bytes::new()),
            Inbound::Close(Some((1000, "bye".into()))),
            Inbound::Close(None),
        ]
    );
}

#[test]
fn fragments_are_joined_and_control_frames_may_come_between_them() {
    let mut bytes = client_frame(false, 1, b"he", M);
    bytes.extend(client_frame(true, 9, b"!", M));
    bytes.extend(client_frame(false, 0, b"ll", M));
    bytes.extend(client_frame(true, 0, b"o", M));
    assert_eq!(
        decode_all(&bytes).unwrap(),
        vec![
            Inbound::Ping(Bytes::from_static(b"!")),
            Inbound::Text("hello".into())
        ]
    );
}

#[test]
fn an_incomplete_frame_consumes_nothing() {
    let whole = client_frame(true, 1, b"hello", M);
    let mut d = FrameDecoder::new(LIMIT);
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert_eq!(d.decode(&mut buf), Ok(None), "cut {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn rfc_violations_get_the_right_close_code() {
    let unmasked = {
        let mut f = client_frame(true, 1, b"x", M);
        f[1] &= 0x7F;
        f.drain(2..6);
        f
    };
    let cases: Vec<(&str, Vec<u8>, FrameError, u16)> = vec![
        ("unmasked", unmasked, FrameError::Unmasked, 1002),
        (
            "rsv1",
            {
                let mut f = client_frame(true, 1, b"x", M);
                f[0] |= 0x40;
                f
            },
            FrameError::ReservedBits,
            1002,
        ),
        (
            "reserved data opcode",
            client_frame(true, 3, b"x", M),
            FrameError::ReservedOpcode,
            1002,
        ),
        (
            "reserved control opcode",
            client_frame(true, 0xB, b"", M),
            FrameError::ReservedOpcode,
            1002,
        ),
        (
            "long ping",
            client_frame(true, 9, &[0; 126], M),
            FrameError::BadControlFrame,
            1002,
        ),
        (
            "fragmented ping",
            client_frame(false, 9, b"", M),
            FrameError::BadControlFrame,
            1002,
        ),
        (
            "lone continuation",
            client_frame(true, 0, b"x", M),
            FrameError::BadFragmentation,
            1002,
        ),
        (
            "new message inside a fragmented one",
            [
                client_frame(false, 1, b"a", M),
                client_frame(true, 2, b"b", M),
            ]
            .concat(),
            FrameError::BadFragmentation,
            1002,
        ),
        (
            "bad utf-8",
            client_frame(true, 1, &[0xFF, 0xFE], M),
            FrameError::InvalidUtf8,
            1007,
        ),
        (
            "utf-8 split across fragments is fine, invalid joined is not",
            [
                client_frame(false, 1, &[0xC3], M),
                client_frame(true, 0, &[0x28], M),
            ]
            .concat(),
            FrameError::InvalidUtf8,
            1007,
        ),
        (
            "one-byte close",
            client_frame(true, 8, &[3], M),
            FrameError::BadClose,
            1002,
        ),
        (
            "close 1005 is never sent",
            client_frame(true, 8, &[0x03, 0xED], M),
            FrameError::BadClose,
            1002,
        ),
        (
            "close reason not utf-8",
            client_frame(true, 8, &[0x03, 0xE8, 0xFF], M),
            FrameError::BadClose,
            1002,
        ),
    ];
    for (name, bytes, want, code) in cases {
        let got = decode_all(&bytes).expect_err(name);
        assert_eq!(got, want, "{name}");
        assert_eq!(got.close_code(), code, "{name}");
    }
    assert_eq!(
        decode_all(
            &[
                client_frame(false, 1, &[0xC3], M),
                client_frame(true, 0, &[0xA9], M)
            ]
            .concat()
        ),
        Ok(vec![Inbound::Text("é".into())])
    );
}

#[test]
fn an_oversize_message_is_refused_from_its_header_before_the_payload_arrives() {
    let mut d = FrameDecoder::new(1024);
    let frame = client_frame(true, 2, &vec![0; 1025], M);
    let mut buf = BytesMut::from(&frame[..8]); // header only
    assert_eq!(d.decode(&mut buf), Err(FrameError::TooBig { limit: 1024 }));
    // A declared 2^63-byte frame is refused without any attempt to reserve it.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
    huge.extend_from_slice(&M);
    assert_eq!(
        FrameDecoder::new(1024).decode(&mut BytesMut::from(&huge[..])),
        Err(FrameError::TooBig { limit: 1024 })
    );
}

#[test]
fn fragments_adding_up_past_the_limit_are_refused() {
    let bytes = [
        client_frame(false, 2, &[0; 600], M),
        client_frame(true, 0, &[0; 600], M),
    ]
    .concat();
    let mut d = FrameDecoder::new(1024);
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(d.decode(&mut buf), Err(FrameError::TooBig { limit: 1024 }));
    let exact = [
        client_frame(false, 2, &[0; 512], M),
        client_frame(true, 0, &[0; 512], M),
    ]
    .concat();
    let mut d = FrameDecoder::new(1024);
    assert!(
        matches!(d.decode(&mut BytesMut::from(&exact[..])), Ok(Some(Inbound::Binary(b))) if b.len() == 1024)
    );
}

#[derive(Clone, Debug)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        ".{0,300}".prop_map(Msg::Text),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Msg::Binary),
        proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Msg::Ping),
    ]
}

proptest! {
    /// Any messages, fragmented anywhere, delivered in any chunking, decode to themselves.
    #[test]
    fn messages_survive_any_fragmentation_and_chunking(
        msgs in proptest::collection::vec((msg(), 1usize..5, any::<[u8; 4]>()), 0..12),
        chunk in 1usize..64,
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for (m, pieces, mask) in &msgs {
            match m {
                Msg::Ping(p) => {
                    wire.extend(client_frame(true, 9, p, *mask));
                    want.push(Inbound::Ping(Bytes::from(p.clone())));
                }
                Msg::Text(_) | Msg::Binary(_) => {
                    let (op, body, expect) = match m {
                        Msg::Text(t) => (1, t.as_bytes().to_vec(), Inbound::Text(t.clone())),
                        Msg::Binary(b) => (2, b.clone(), Inbound::Binary(Bytes::from(b.clone()))),
                        Msg::Ping(_) => unreachable!("handled above"),
                    };
                    let step = body.len().div_ceil(*pieces).max(1);
                    let parts: Vec<&[u8]> = if body.is_empty() { vec![&[]] } else { body.chunks(step).collect() };
                    for (i, part) in parts.iter().enumerate() {
                        let op = if i == 0 { op } else { 0 };
                        wire.extend(client_frame(i + 1 == parts.len(), op, part, *mask));
                    }
                    want.push(expect);
                }
            }
        }
        let mut d = FrameDecoder::new(LIMIT);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(m) = d.decode(&mut buf).unwrap() {
                got.push(m);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut d = FrameDecoder::new(256);
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..64 {
            match d.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}

#[test]
fn the_payload_of_a_server_frame_is_recovered_for_every_length_form() {
    for len in [0usize, 1, 125, 126, 65_535, 65_536, 200_000] {
        let payload = vec![b'x'; len];
        let frame = encode(Opcode::Text, &payload);
        assert_eq!(
            server_frame_payload(&frame).as_deref(),
            Some(&payload[..]),
            "{len}"
        );
    }
    assert_eq!(server_frame_payload(&Bytes::from_static(&[0x81])), None);
    assert_eq!(
        server_frame_payload(&Bytes::from_static(&[0x81, 0x05, b'a'])),
        None
    );
}
