//! Round-trip property tests for every message type, streaming with random split points, and
//! arbitrary bytes through the decoder.

use proptest::prelude::*;

use super::encode::split_resync;
use super::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        ("[a-c\u{e9}\u{1F600}]{1,3}", 0usize..400).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn resync_topic() -> impl Strategy<Value = String> {
    "[^\n]{1,12}"
}

fn frame() -> impl Strategy<Value = PeerFrame> {
    let trailer = proptest::option::of((any::<u32>(), any::<u64>()).prop_map(|(e, offset)| {
        RecoveryTrailer {
            epoch: Epoch(e),
            offset,
        }
    }));
    let action = prop_oneof![
        Just(PresenceAction::Join),
        Just(PresenceAction::Leave),
        Just(PresenceAction::Update)
    ];
    prop_oneof![
        (text(), text(), any::<bool>(), trailer).prop_map(
            |(topic, payload, compressed, trailer)| {
                PeerFrame::Msg {
                    topic,
                    payload,
                    compressed,
                    trailer,
                }
            }
        ),
        Just(PeerFrame::Ping),
        Just(PeerFrame::Pong),
        (any::<u16>(), "\\PC{0,40}", any::<u32>()).prop_map(|(version, id, caps)| {
            PeerFrame::Hello {
                version,
                instance_id: id,
                capabilities: Capabilities(caps),
            }
        }),
        Just(PeerFrame::Shutdown),
        text().prop_map(|topic| PeerFrame::Sub { topic }),
        text().prop_map(|topic| PeerFrame::Unsub { topic }),
        (
            proptest::collection::vec(resync_topic(), 0..20),
            any::<bool>()
        )
            .prop_map(|(topics, continuation)| PeerFrame::Resync {
                topics,
                continuation
            }),
        text().prop_map(|addr| PeerFrame::PeerAnnounce { addr }),
        proptest::collection::vec("\\PC{0,21}", 0..12)
            .prop_map(|addrs| PeerFrame::PeerList { addrs }),
        (text(), action, any::<u64>(), "\\PC{0,16}", text()).prop_map(
            |(topic, action, updated_at, user_id, data)| PeerFrame::PresenceUpdate {
                topic,
                action,
                updated_at,
                user_id,
                data,
            }
        ),
        text().prop_map(|chunk| PeerFrame::PresenceFull { chunk }),
        Just(PeerFrame::Drain),
    ]
}

/// What decoding the encoding of `f` gives: `compressed` becomes what the wire says.
fn expected(f: &PeerFrame, wire: &[u8]) -> PeerFrame {
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

/// Pushes `bytes` into `d` in pieces cut at `cuts` (positions modulo the length), draining
/// after every push.
fn stream(
    d: &mut FrameDecoder,
    bytes: &[u8],
    cuts: &[usize],
) -> Vec<Result<PeerFrame, FrameError>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for p in points {
        while at < p {
            let n = d.push(&bytes[at..p]);
            at += n;
            assert!(d.buffered() <= DECODER_CAPACITY);
            out.extend(&mut *d);
            if d.is_failed() {
                return out;
            }
        }
    }
    out.extend(&mut *d);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every type: encoding never fails for in-bounds fields, the compressed flag follows the
    /// rule, and decoding gives the frame back.
    #[test]
    fn every_type_round_trips(f in frame()) {
        let bytes = f.encode().expect("in-bounds frame");
        prop_assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - LENGTH_PREFIX_LEN
        );
        prop_assert_eq!(bytes[4], f.type_byte());
        if let PeerFrame::Msg { payload, compressed, .. } = &f {
            let flagged = bytes[5] & flags::MSG_COMPRESSED != 0;
            prop_assert!(!flagged || (*compressed && payload.len() > COMPRESSION_THRESHOLD));
        }
        let want = expected(&f, &bytes);
        prop_assert_eq!(decode_inner(&bytes[4..]), Ok(want.clone()));
        // And re-encoding what was decoded gives the same bytes.
        prop_assert_eq!(want.encode(), Ok(bytes));
    }

    /// A stream of frames cut anywhere decodes to the same frames, unknown types skipped and
    /// counted.
    #[test]
    fn streams_decode_whatever_the_split(
        frames in proptest::collection::vec(frame(), 0..12),
        unknown in proptest::collection::vec((14u8.., 0usize..12), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut enc = FrameEncoder::new();
        let mut bytes = Vec::new();
        let mut want = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let at = bytes.len();
            enc.encode(f, &mut bytes).unwrap();
            want.push(Ok(expected(f, &bytes[at..])));
            if let Some((t, _)) = unknown.get(i) {
                PeerFrame::Unknown { msg_type: *t }.encode().map(|b| bytes.extend(b)).unwrap();
            }
        }
        let mut d = FrameDecoder::new();
        let got = stream(&mut d, &bytes, &cuts);
        prop_assert_eq!(got, want);
        prop_assert_eq!(d.unknown_skipped(), unknown.len().min(frames.len()) as u64);
        prop_assert_eq!(d.buffered(), 0);
    }

    /// Arbitrary bytes: no panic, the buffer bound holds, and every frame the decoder accepts
    /// re-encodes to something that decodes to the same frame.
    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_frames_are_stable(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut d = FrameDecoder::new();
        for f in stream(&mut d, &bytes, &cuts).into_iter().flatten() {
            let again = f.encode().expect("a decoded frame is encodable");
            let back = decode_inner(&again[4..]).unwrap();
            prop_assert_eq!(back, expected(&f, &again));
        }
    }

    /// Header-shaped noise (a plausible length prefix and type) reaches the type decoders.
    #[test]
    fn header_shaped_noise_never_panics(
        msg_type in 0u8..16, flag_bits in 0u8..4,
        topic in proptest::collection::vec(any::<u8>(), 0..20),
        payload in proptest::collection::vec(any::<u8>(), 0..40),
        tail in proptest::collection::vec(any::<u8>(), 0..14),
    ) {
        let mut inner = vec![msg_type, flag_bits];
        inner.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        inner.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        inner.extend_from_slice(&topic);
        inner.extend_from_slice(&payload);
        inner.extend_from_slice(&tail);
        if let Ok(f) = decode_inner(&inner) {
            if !matches!(f, PeerFrame::Unknown { .. }) {
                let again = f.encode().unwrap();
                prop_assert_eq!(decode_inner(&again[4..]), Ok(expected(&f, &again)));
            }
        }
    }

    /// RESYNC splitting keeps every topic, in order, with each payload under the limit and
    /// only the first frame replacing.
    #[test]
    fn resync_split_keeps_every_topic_under_the_limit(
        topics in proptest::collection::vec(resync_topic(), 0..60),
        slack in 0usize..40,
    ) {
        let limit = topics.iter().map(String::len).max().unwrap_or(0) + slack;
        let frames = split_resync(&topics, limit).unwrap();
        let mut seen = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let PeerFrame::Resync { topics: part, continuation } = f else {
                return Err(TestCaseError::fail("not a resync"));
            };
            prop_assert_eq!(*continuation, i > 0);
            prop_assert!(i == 0 || !part.is_empty());
            prop_assert!(part.join("\n").len() <= limit);
            seen.extend(part.iter().cloned());
        }
        prop_assert_eq!(seen, topics);
    }
}
