//! The hostile-client suite: the real server on loopback against clients that break every rule
//! (slowloris handshakes, oversized heads and frames, protocol violations, floods, bombs, bad
//! tokens, garbage), each case asserting three things:
//!
//! 1. the offender gets the documented answer — HTTP status before the upgrade, close code
//!    after it (CONTRACT §4, docs/runtime.md, docs/core.md);
//! 2. the server stays up: a fresh client still connects and is registered;
//! 3. a well-behaved subscriber ([`harness::Witness`]) receives every message of a broadcast
//!    sequence published during the attack, in order.
//!
//! Heavy cases also check that memory comes back: resident size (`VmRSS`, the `/proc/self/statm`
//! resident figure in bytes) after a case, or its peak (`VmHWM`) during one, stays within
//! [`MEMORY_SLACK`] of the figure before it.
//!
//! Cases that take seconds share tests. The cases that measure memory run one at a time (see
//! `harness::measuring_memory`) beside the light ones and the 10 s slowloris case: about 20 s.

#[path = "hostile/bombs.rs"]
mod bombs;
#[path = "hostile/harness.rs"]
mod harness;
#[path = "hostile/raw.rs"]
mod raw;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wse_core::ConnId;
use wse_runtime::server::{ServerEvent, UPGRADE_TIMEOUT};

use harness::{Feed, Harness, WAIT, Witness, tag_header};
use raw::{OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWs, client_frame, masked};

/// How far resident memory may rise over a heavy case. The figure is the whole test process:
/// the server, every client of the case, and the other tests of this file running in parallel
/// threads; the allocator keeps freed pages in its per-thread arenas rather than returning them
/// at once. None of that approaches 64 MiB here (a few MiB are typical), while every failure
/// this guards against is far larger: 1 500 leaked connections with their tasks and buffers, an
/// unbounded pong or broadcast queue behind a client that does not read (tens of MiB in these
/// cases), or a zlib bomb inflated in full (138 MiB per frame, four frames at once).
const MEMORY_SLACK: u64 = 64 << 20;

/// What the server's event queue may hold in bytes with the default `max_message_size`
/// (docs/runtime.md).
const INBOUND_QUEUE_BUDGET: u64 = wse_runtime::server::INBOUND_QUEUE_MIN_BYTES as u64;

/// The close code a peer's Close is echoed with (the server's normal close).
const NORMAL: u16 = 1000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// Prints a measured figure (shown with `--nocapture`): the numbers behind the bounds.
#[allow(
    clippy::print_stderr,
    reason = "the measurements are part of the suite's output"
)]
fn report(what: &str, before: u64, after: u64) {
    eprintln!(
        "[hostile] {what}: {:.1} MiB -> {:.1} MiB ({:+.1} MiB)",
        mib(before),
        mib(after),
        mib(after) - mib(before)
    );
}

/// The connection id a raw client was registered under.
async fn registered(h: &Harness, tag: &str) -> ConnId {
    h.conn_of(tag).await
}

/// Waits until the connection's `Disconnect` was emitted.
async fn gone(h: &Harness, id: ConnId) {
    h.wait_until(&format!("disconnect of {id}"), WAIT, |h| {
        h.with_events(|evs| evs.contains(&ServerEvent::Disconnect(id)))
    })
    .await;
}

/// Every data event (`Msg`, `Raw`, `Bin`) of one connection, in order.
fn data_events(h: &Harness, id: ConnId) -> Vec<ServerEvent> {
    h.with_events(|evs| {
        evs.iter()
            .filter(|e| match e {
                ServerEvent::Msg(c, _) | ServerEvent::Raw(c, _) | ServerEvent::Bin(c, _) => {
                    *c == id
                }
                _ => false,
            })
            .cloned()
            .collect()
    })
}

#[test]
fn the_hand_made_zlib_bomb_is_one_valid_stream_of_zeros() {
    let bomb = bombs::zlib_bomb(1000);
    let plain =
        wse_core::protocol::zlib_decompress_capped(&bomb, 1 << 20).expect("a valid zlib stream");
    assert_eq!(plain.len(), 1 + 1000 * bombs::BOMB_REPEAT_BYTES);
    assert!(plain.iter().all(|&b| b == 0));
    assert!(bomb.len() < plain.len() / 150, "ratio above 150:1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_handshakes_are_dropped_at_the_upgrade_timeout_and_block_nobody() {
    // 64 sockets (far below the 512 pending-handshake permits) dribble an endless header, one
    // byte every 250 ms: never complete, never over the head limit.
    const DRIBBLERS: usize = 64;
    let h = Harness::start(|_| {}).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(5));

    let mut dribblers = Vec::new();
    for _ in 0..DRIBBLERS {
        let started = tokio::time::Instant::now();
        let mut s = TcpStream::connect(h.addr()).await.expect("connect");
        s.write_all(b"GET /wse HTTP/1.1\r\nX-Slow: ")
            .await
            .expect("first bytes");
        dribblers.push(tokio::spawn(async move {
            let mut answer = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            let limit = UPGRADE_TIMEOUT + Duration::from_secs(4);
            loop {
                tokio::select! {
                    read = s.read_buf(&mut answer) => {
                        if matches!(read, Ok(0) | Err(_)) {
                            return (started.elapsed(), answer);
                        }
                    }
                    _ = tick.tick() => {
                        assert!(started.elapsed() < limit, "slowloris socket never dropped");
                        let _ = s.write_all(b"a").await;
                    }
                }
            }
        }));
    }
    // While they hold their handshakes: new clients get in, the witness keeps receiving.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.assert_still_serving("during-slowloris", None).await;
    let during = RawWs::connect(h.addr(), &tag_header("raw-during-slowloris")).await;
    drop(during);

    for d in dribblers {
        let (elapsed, answer) = d.await.expect("dribbler task");
        assert!(answer.is_empty(), "dropped without an answer: {answer:?}");
        // The timer starts at accept, after our connect began: never earlier than the timeout.
        assert!(
            elapsed >= UPGRADE_TIMEOUT,
            "dropped after {elapsed:?}, before the upgrade timeout"
        );
    }
    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-slowloris", None).await;
    h.wait_until("no connection left", WAIT, |h| {
        h.server.connection_count() == 0
    })
    .await;
    assert_eq!(
        h.connects(),
        4,
        "slowloris sockets never became connections"
    );
    h.server.stop().await;
}

#[tokio::test]
async fn hostile_request_heads_get_their_http_status() {
    let h = Harness::start(|_| {}).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));

    let upgrade = raw::upgrade_request("");
    let (upgrade_head, blank) = upgrade.split_at(upgrade.len() - 2);
    let big_headers: String = (0..400)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "a".repeat(40)))
        .collect();
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "head over 16 KiB",
            format!("{upgrade_head}{big_headers}{blank}").into_bytes(),
            "HTTP/1.1 431 ",
        ),
        (
            "one endless header line",
            format!("GET /wse HTTP/1.1\r\nX-Long: {}", "b".repeat(20 * 1024)).into_bytes(),
            "HTTP/1.1 431 ",
        ),
        (
            "more than 64 headers",
            format!("{upgrade_head}{many_headers}{blank}").into_bytes(),
            "HTTP/1.1 431 ",
        ),
        (
            "a TLS ClientHello on the plain port",
            vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, b'\r', b'\n',
                b'\r', b'\n',
            ],
            "HTTP/1.1 400 ",
        ),
        (
            "binary garbage",
            (0u8..=255).chain(*b"\r\n\r\n").collect(),
            "HTTP/1.1 400 ",
        ),
        (
            "a chunked body",
            b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "two different Content-Lengths",
            b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            "HTTP/1.1 400 ",
        ),
        (
            "not an upgrade",
            b"GET /wse HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            "HTTP/1.1 426 ",
        ),
        (
            "wrong WebSocket version",
            upgrade.replace("Version: 13", "Version: 8").into_bytes(),
            "HTTP/1.1 426 ",
        ),
    ];
    for (name, request, status) in &cases {
        let answer = raw::http_exchange(h.addr(), request).await;
        assert!(answer.starts_with(status), "{name}: {answer:?}");
    }
    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-heads", None).await;
    assert_eq!(h.connects(), 2, "no refused head became a connection");
    h.server.stop().await;
}

/// One frame-level case: the bytes sent after the upgrade and the close code they must earn.
struct FrameCase {
    name: &'static str,
    bytes: Vec<u8>,
    code: u16,
}

fn frame_cases(limit: usize) -> Vec<FrameCase> {
    let m = Some([1, 2, 3, 4]);
    let case = |name, bytes, code| FrameCase { name, bytes, code };
    let mut cases = vec![
        case(
            "unmasked text",
            client_frame(true, 0, OP_TEXT, b"{}", None, None),
            1002,
        ),
        case(
            "unmasked close",
            client_frame(true, 0, OP_CLOSE, &[3, 232], None, None),
            1002,
        ),
        case(
            "unmasked empty ping",
            client_frame(true, 0, OP_PING, b"", None, None),
            1002,
        ),
        case("ping over 125 bytes", masked(OP_PING, &[7; 126]), 1002),
        case(
            "fragmented ping",
            client_frame(false, 0, OP_PING, b"p", m, None),
            1002,
        ),
        case("continuation of nothing", masked(OP_CONT, b"x"), 1002),
        case(
            "new message inside a fragmented one",
            [
                client_frame(false, 0, OP_TEXT, b"a", m, None),
                masked(OP_TEXT, b"b"),
            ]
            .concat(),
            1002,
        ),
        case("one-byte close payload", masked(OP_CLOSE, &[3]), 1002),
        case(
            "close code 1005 on the wire",
            masked(OP_CLOSE, &1005u16.to_be_bytes()),
            1002,
        ),
        case(
            "close code 999",
            masked(OP_CLOSE, &999u16.to_be_bytes()),
            1002,
        ),
        case(
            "close code 5000",
            masked(OP_CLOSE, &5000u16.to_be_bytes()),
            1002,
        ),
        case(
            "close reason not UTF-8",
            masked(OP_CLOSE, &[3, 232, 0xff]),
            1002,
        ),
        case(
            "frame header over the limit (no payload sent)",
            client_frame(true, 0, OP_BINARY, b"", m, Some(limit as u64 + 1)),
            1009,
        ),
        case(
            "64-bit length with the top bit set",
            client_frame(true, 0, OP_BINARY, b"", m, Some(u64::MAX)),
            1009,
        ),
        case(
            "fragments adding up past the limit",
            (0..4)
                .map(|i| {
                    let op = if i == 0 { OP_BINARY } else { OP_CONT };
                    client_frame(i == 3, 0, op, &vec![b'z'; limit / 3], m, None)
                })
                .collect::<Vec<_>>()
                .concat(),
            1009,
        ),
        case(
            "an endless fragmented text, header of the fatal fragment only",
            [
                client_frame(false, 0, OP_TEXT, &vec![b'a'; limit / 2], m, None),
                client_frame(false, 0, OP_CONT, b"", m, Some(limit as u64)),
            ]
            .concat(),
            1009,
        ),
        case(
            "text not UTF-8",
            masked(OP_TEXT, &[b'{', 0xff, 0xfe, b'}']),
            1007,
        ),
        case(
            "text with a lone surrogate",
            masked(OP_TEXT, &[0xed, 0xa0, 0x80]),
            1007,
        ),
        case(
            "UTF-8 broken across fragments",
            [
                client_frame(false, 0, OP_TEXT, b"caf\xc3", m, None),
                masked(OP_CONT, b"("),
            ]
            .concat(),
            1007,
        ),
        case(
            "text cut inside a character",
            masked(OP_TEXT, b"caf\xc3"),
            1007,
        ),
        case(
            "garbage: ASCII",
            b"hello, this is not a frame\r\n".to_vec(),
            1002,
        ),
        case(
            "garbage: a second HTTP request",
            raw::upgrade_request("").into_bytes(),
            1002,
        ),
        case("garbage: zeros", vec![0; 64], 1002),
        case(
            "garbage: TLS record",
            vec![0x16, 0x03, 0x01, 0x00, 0x2f, 0x01],
            1002,
        ),
    ];
    for rsv in 1..=7 {
        cases.push(case(
            "RSV bits",
            client_frame(true, rsv, OP_TEXT, b"{}", m, None),
            1002,
        ));
    }
    for op in (0x3..=0x7).chain(0xb..=0xf) {
        cases.push(case(
            "reserved opcode",
            client_frame(true, 0, op, b"", m, None),
            1002,
        ));
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_violations_and_garbage_after_the_upgrade_close_with_their_codes() {
    const LIMIT: usize = 64 * 1024;
    let h = Harness::start(|c| c.max_message_size = LIMIT).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));

    for (i, case) in frame_cases(LIMIT).into_iter().enumerate() {
        let tag = format!("frame-case-{i}");
        let mut ws = RawWs::connect(h.addr(), &tag_header(&tag)).await;
        let id = registered(&h, &tag).await;
        let _ = ws.send(&case.bytes).await;
        let (code, before) = ws.close_code_after().await;
        assert_eq!(
            code,
            Some(case.code),
            "{} (#{i}), frames before: {before:?}",
            case.name
        );
        gone(&h, id).await;
        assert_eq!(data_events(&h, id), [], "{}: nothing delivered", case.name);
    }

    // Frames pipelined in the same write as the upgrade request are judged the same way.
    for (tail, code) in [
        (client_frame(true, 0, OP_TEXT, b"{}", None, None), 1002),
        (masked(OP_TEXT, b"pipelined"), NORMAL),
    ] {
        let mut s = TcpStream::connect(h.addr()).await.expect("connect");
        let head = raw::upgrade_request(&tag_header("pipelined"));
        let mut bytes = [head.as_bytes(), &tail].concat();
        if code == NORMAL {
            bytes.extend_from_slice(&masked(OP_CLOSE, &NORMAL.to_be_bytes()));
        }
        s.write_all(&bytes).await.expect("written");
        let mut answer = Vec::new();
        while tokio::time::timeout(WAIT, s.read_buf(&mut answer))
            .await
            .expect("answered")
            .is_ok_and(|n| n > 0)
        {}
        let end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a head")
            + 4;
        assert!(answer.starts_with(b"HTTP/1.1 101 "));
        let close = &answer[end..];
        assert_eq!(
            close[0],
            0x80 | OP_CLOSE,
            "only the close after the 101: {close:?}"
        );
        assert_eq!(u16::from_be_bytes([close[2], close[3]]), code);
    }
    // The event log is filled by a background consumer: the close can reach us before the
    // event reaches the log, so wait for it, then check it came exactly once.
    let pipelined = |h: &Harness| {
        h.with_events(|evs| {
            evs.iter()
                .filter(|e| matches!(e, ServerEvent::Raw(_, t) if t == "pipelined"))
                .count()
        })
    };
    h.wait_until("the pipelined message's event", WAIT, |h| pipelined(h) >= 1)
        .await;
    assert_eq!(
        pipelined(&h),
        1,
        "the valid pipelined message was delivered once"
    );

    // Controls: what a correct client may do is not refused.
    let mut ok = RawWs::connect(h.addr(), &tag_header("frame-controls")).await;
    let id = registered(&h, "frame-controls").await;
    let m = Some([9, 8, 7, 6]);
    let controls = [
        client_frame(false, 0, OP_TEXT, br#"{"t":"frag","#, m, None),
        masked(OP_PING, b"between fragments"),
        client_frame(true, 0, OP_CONT, br#""p":1}"#, m, None),
        client_frame(false, 0, OP_TEXT, b"caf\xc3", m, None),
        masked(OP_CONT, b"\xa9"),
        masked(OP_BINARY, &vec![0x42; LIMIT]),
        masked(OP_PONG, b"unsolicited pongs are fine"),
    ]
    .concat();
    ok.send(&controls).await.expect("controls sent");
    let pong = ok.next_frame().await.expect("the pong");
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (OP_PONG, &b"between fragments"[..])
    );
    h.wait_until("the controls delivered", WAIT, |h| {
        data_events(h, id).len() == 3
    })
    .await;
    assert_eq!(
        data_events(&h, id),
        [
            ServerEvent::Msg(id, json!({"t":"frag","p":1})),
            ServerEvent::Raw(id, "café".to_owned()),
            ServerEvent::Bin(id, vec![0x42; LIMIT].into()),
        ]
    );
    ok.send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
        .await
        .expect("close sent");
    assert_eq!(ok.close_code().await, Some(NORMAL));

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-frames", None).await;
    h.wait_until("no connection left", WAIT, |h| {
        h.server.connection_count() == 0
    })
    .await;
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_floods_are_answered_while_read_and_cut_off_at_the_budget_when_not() {
    let _alone = harness::measuring_memory().await;
    const BUDGET: usize = 128 * 1024;
    let h = Harness::start(|c| c.max_outbound_queue_bytes = BUDGET).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));
    let rss_before = harness::rss_bytes();
    harness::reset_peak_rss();

    // A flooder that reads: every ping answered with its own payload, in order. At most
    // WINDOW pongs are ever unread (WINDOW × 127 bytes < BUDGET), so none can be refused.
    const PINGS: usize = 20_000;
    const WINDOW: usize = 500;
    let ping = |n: usize| {
        let mut payload = format!("{n:>10}").into_bytes();
        payload.resize(125, b'.');
        masked(OP_PING, &payload)
    };
    let mut reader = RawWs::connect(h.addr(), &tag_header("ping-reader")).await;
    let (mut sent, mut answered) = (0, 0);
    while answered < PINGS {
        if sent < PINGS && sent - answered < WINDOW {
            let batch: Vec<u8> = (sent..(sent + 100).min(PINGS)).flat_map(ping).collect();
            reader.send(&batch).await.expect("pings sent");
            sent = (sent + 100).min(PINGS);
            continue;
        }
        let pong = reader.next_frame().await.expect("a pong");
        assert_eq!(pong.opcode, OP_PONG);
        assert_eq!(
            pong.payload[..10],
            format!("{answered:>10}").into_bytes()[..]
        );
        answered += 1;
    }
    reader
        .send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
        .await
        .expect("close");
    assert_eq!(reader.close_code().await, Some(NORMAL));

    // A flooder that never reads: its pongs pile up until the budget, then 1013.
    let drops_before = h.server.slow_consumer_drops();
    let mut sloth = RawWs::connect(h.addr(), &tag_header("ping-sloth")).await;
    let sloth_id = registered(&h, "ping-sloth").await;
    let mut sent = 0usize;
    while h.server.slow_consumer_drops() == drops_before {
        assert!(sent < 2_000_000, "{sent} unread pongs and still no 1013");
        let batch: Vec<u8> = (sent..sent + 1000).flat_map(ping).collect();
        if sloth.send(&batch).await.is_err() {
            break;
        }
        sent += 1000;
        tokio::task::yield_now().await;
    }
    let (code, before) = sloth.close_code_after().await;
    assert_eq!(code, Some(1013), "after {} pongs of {sent}", before.len());
    for (n, pong) in before.iter().enumerate() {
        assert_eq!(pong.opcode, OP_PONG);
        assert_eq!(
            pong.payload[..10],
            format!("{n:>10}").into_bytes()[..],
            "in order"
        );
    }
    assert!(
        before.len() < sent,
        "the server stopped answering at the budget"
    );
    gone(&h, sloth_id).await;
    let peak = harness::peak_rss_bytes();
    report(
        &format!("ping floods ({} pings unread)", sent),
        rss_before,
        peak,
    );
    assert!(
        peak < rss_before + MEMORY_SLACK,
        "peak RSS bounded by the budget"
    );

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-ping-floods", None).await;
    assert_eq!(
        h.server.slow_consumer_drops(),
        drops_before + 1,
        "only the sloth"
    );
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_flood_gets_rate_limited_then_4429_after_the_grace() {
    let _alone = harness::measuring_memory().await;
    const CAPACITY: f64 = 20.0;
    const REFILL: f64 = 10.0;
    const GRACE: Duration = Duration::from_millis(1500);
    let h = Harness::start(|c| {
        c.inbound_rate_capacity = CAPACITY;
        c.inbound_rate_refill = REFILL;
        c.inbound_rate_grace_ms = GRACE.as_millis() as u64;
    })
    .await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));
    let rss_before = harness::rss_bytes();

    // A client that bursts past the bucket once and backs off: refused, warned, not closed.
    let mut burst = RawWs::connect(h.addr(), &tag_header("burst")).await;
    let burst_id = registered(&h, "burst").await;
    let burst_batch: Vec<u8> = (0..30)
        .flat_map(|i| masked(OP_TEXT, format!(r#"{{"t":"burst","p":{i}}}"#).as_bytes()))
        .collect();
    burst.send(&burst_batch).await.expect("burst sent");

    let mut flooder = RawWs::connect(h.addr(), &tag_header("flooder")).await;
    let flooder_id = registered(&h, "flooder").await;
    let started = tokio::time::Instant::now();
    let (mut sent, mut warned, mut code) = (0usize, 0usize, None);
    while code.is_none() {
        assert!(
            started.elapsed() < GRACE * 8,
            "no 4429 after {sent} messages"
        );
        let batch: Vec<u8> = (sent..sent + 50)
            .flat_map(|i| masked(OP_TEXT, format!(r#"{{"t":"flood","p":{i}}}"#).as_bytes()))
            .collect();
        if flooder.send(&batch).await.is_ok() {
            sent += 50;
        }
        while let Some(frame) = flooder.next_frame_within(Duration::from_millis(5)).await {
            let frame = frame.expect("closed only with a Close frame");
            if let Some(c) = frame.close_code() {
                let _ = flooder.send(&masked(OP_CLOSE, &c.to_be_bytes())).await;
                code = Some(c);
                break;
            }
            let v = frame.json().expect("JSON");
            assert_eq!(v["p"]["code"], "RATE_LIMITED", "{v}");
            warned += 1;
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(code, Some(4429));
    assert!(warned >= 1, "a RATE_LIMITED error came before the close");
    assert!(
        warned <= elapsed.as_secs() as usize + 1,
        "at most one a second: {warned}"
    );
    assert!(
        elapsed >= GRACE,
        "closed after {elapsed:?}, inside the grace"
    );
    gone(&h, flooder_id).await;
    let accepted = data_events(&h, flooder_id).len();
    let allowed = CAPACITY + REFILL * (elapsed.as_secs_f64() + 1.0);
    assert!(
        (accepted as f64) <= allowed && accepted < sent,
        "{accepted} of {sent} flood messages passed; the bucket allows {allowed}"
    );

    // The burst client was refused (20 passed, one notice) and is still open after a pause.
    let first = burst.next_frame().await.expect("the notice");
    assert_eq!(first.json().expect("JSON")["p"]["code"], "RATE_LIMITED");
    assert_eq!(data_events(&h, burst_id).len(), CAPACITY as usize);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    burst
        .send(&masked(OP_TEXT, br#"{"t":"later"}"#))
        .await
        .expect("sent");
    h.wait_until("the burst client's later message", WAIT, |h| {
        data_events(h, burst_id).len() == CAPACITY as usize + 1
    })
    .await;
    assert!(
        h.server.connections().contains(&burst_id),
        "not closed for one burst"
    );

    let rss_after = harness::rss_bytes();
    report(
        &format!("inbound flood ({sent} messages)"),
        rss_before,
        rss_after,
    );
    assert!(rss_after < rss_before + MEMORY_SLACK);
    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-inbound-flood", None).await;
    h.server.stop().await;
}

/// One connect/close cycle of kind `i % 4`; returns whether it completed an upgrade.
async fn cycle(addr: std::net::SocketAddr, i: usize) -> bool {
    match i % 4 {
        0 => {
            // Graceful: Close from the client, echoed by the server.
            let mut ws = RawWs::connect(addr, "").await;
            ws.send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
                .await
                .expect("close");
            assert_eq!(ws.close_code().await, Some(NORMAL));
            true
        }
        1 => {
            // Abrupt: the socket vanishes right after the 101.
            drop(RawWs::connect(addr, "").await);
            true
        }
        2 => {
            // Abandoned handshake: half a head, then gone.
            let mut s = TcpStream::connect(addr).await.expect("connect");
            let _ = s.write_all(b"GET /wse HTTP/1.1\r\nUpgrade: web").await;
            false
        }
        _ => {
            // A well-behaved library client.
            let mut ws = harness::tungstenite_client(addr, "cycler", None).await;
            ws.close(None).await.expect("close");
            while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, ws.next()).await {}
            true
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connect_close_cycles_leave_no_connection_event_or_memory_behind() {
    let _alone = harness::measuring_memory().await;
    const CYCLES: usize = 2000;
    const WORKERS: usize = 16;
    let h = Harness::start(|_| {}).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));
    let (rss_before, fds_before) = (harness::rss_bytes(), harness::open_fds());

    let addr = h.addr();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            tokio::spawn(async move {
                let mut upgraded = 0;
                for i in (w..CYCLES).step_by(WORKERS) {
                    upgraded += usize::from(cycle(addr, i).await);
                }
                upgraded
            })
        })
        .collect();
    let mut upgraded = 0;
    for w in workers {
        upgraded += w.await.expect("worker");
    }
    assert_eq!(upgraded, CYCLES / 4 * 3);

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.wait_until("every connection gone", WAIT, |h| {
        h.server.connection_count() == 0
    })
    .await;
    h.wait_until("a disconnect for every connect", WAIT, |h| {
        h.disconnects() == h.connects()
    })
    .await;
    assert_eq!(
        h.connects(),
        upgraded + 1,
        "one connect per upgrade (+ the witness)"
    );
    let health = h.server.health_snapshot();
    assert_eq!(health["connections"], 0);
    assert_eq!(health["inbound_dropped"], 0);
    let metrics = h.server.prometheus_metrics();
    assert!(metrics.contains("\nwse_connections 0\n"), "{metrics}");
    let accepted = format!("\nwse_connections_accepted_total {}\n", upgraded + 1);
    assert!(metrics.contains(&accepted), "{metrics}");
    assert!(
        metrics.contains("\nwse_connections_rejected_total 0\n"),
        "{metrics}"
    );

    let (rss_after, fds_after) = (harness::rss_bytes(), harness::open_fds());
    report(
        &format!("{CYCLES} connect/close cycles"),
        rss_before,
        rss_after,
    );
    assert!(rss_after < rss_before + MEMORY_SLACK);
    // Other tests of this file hold sockets too (slowloris: 128); a leak here is ≥ 1 500.
    assert!(
        fds_after < fds_before + 512,
        "open fds {fds_before} -> {fds_after}"
    );
    h.assert_still_serving("after-cycles", None).await;
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_gets_1013_while_the_witness_gets_every_large_message() {
    let _alone = harness::measuring_memory().await;
    const BUDGET: usize = 256 * 1024;
    let h = Harness::start(|c| c.max_outbound_queue_bytes = BUDGET).await;
    let witness = Witness::join(&h, "big", None).await;
    let mut sloth = RawWs::connect(h.addr(), &tag_header("sloth")).await;
    let sloth_id = registered(&h, "sloth").await;
    h.server
        .subscribe_connection(sloth_id, &["big".to_owned()], None, None)
        .expect("subscribed");
    let rss_before = harness::rss_bytes();
    harness::reset_peak_rss();

    // 10 KB ticks as fast as the witness reads them, until the sloth is cut off.
    let feed = Feed::start(&h.server, "big", &witness, 10_000, Duration::ZERO);
    h.wait_until("the sloth cut off", Duration::from_secs(60), |h| {
        h.server.slow_consumer_drops() > 0
    })
    .await;
    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    let peak = harness::peak_rss_bytes();
    report(
        &format!("{published} × 10 KB past a sloth"),
        rss_before,
        peak,
    );
    assert!(peak < rss_before + MEMORY_SLACK);

    // The sloth finally reads: a prefix of the ticks, in order, then 1013.
    let (code, before) = sloth.close_code_after().await;
    assert_eq!(code, Some(1013));
    let ticks: Vec<Value> = before.iter().filter_map(raw::ServerFrame::json).collect();
    for (n, tick) in ticks.iter().enumerate() {
        assert_eq!(tick["p"]["n"], n, "in order");
    }
    assert!(ticks.len() < published, "cut off before the end");
    gone(&h, sloth_id).await;
    assert_eq!(
        h.server.slow_consumer_drops(),
        1,
        "the witness was never over budget"
    );
    h.assert_still_serving("after-sloth", None).await;
    h.server.stop().await;
}

/// A JWT with any header, payload and signature (no signing: a forgery).
fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        base64_url(&header.to_string()),
        base64_url(&claims.to_string())
    )
}

/// Unpadded base64url (RFC 4648 §5).
fn base64_url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn hs512_token(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(harness::SECRET),
    )
    .expect("HS512 token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_of_every_kind_get_4401_and_no_connect_event() {
    use harness::{SECRET, good_token, token_with, unix_now};
    let h = Harness::start(harness::jwt).await;
    let witness_token = good_token("witness");
    let witness = Witness::join(&h, "feed", Some(&witness_token)).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));

    let now = unix_now();
    let exp = now + 600;
    let good = good_token("mallory");
    let mut sig_parts = good.rsplitn(2, '.');
    let good_sig = sig_parts.next().expect("signature").to_owned();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let oversized = token_with(
        &json!({"sub": "mallory", "exp": exp, "pad": "p".repeat(9000)}),
        SECRET,
    );
    assert!(oversized.len() > 8192);
    let cookie = |t: &str| format!("Cookie: access_token={t}\r\n");
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    let required = "AUTH_REQUIRED";
    let failed = "AUTH_FAILED";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("no token at all", vec![], required),
        ("garbage", cookie("garbage").into(), failed),
        ("three garbage parts", cookie("a.b.c").into(), failed),
        (
            "wrong key",
            cookie(&token_with(
                &json!({"sub": "mallory", "exp": exp}),
                b"another-secret-that-is-also-32-bytes-long",
            ))
            .into(),
            failed,
        ),
        (
            "expired",
            cookie(&token_with(
                &json!({"sub": "mallory", "exp": now - 3600}),
                SECRET,
            ))
            .into(),
            failed,
        ),
        (
            "no exp",
            cookie(&token_with(&json!({"sub": "mallory"}), SECRET)).into(),
            failed,
        ),
        (
            "nbf in the future",
            cookie(&token_with(
                &json!({"sub": "mallory", "exp": exp, "nbf": now + 3600}),
                SECRET,
            ))
            .into(),
            failed,
        ),
        (
            "iat in the future",
            cookie(&token_with(
                &json!({"sub": "mallory", "exp": exp, "iat": now + 3600}),
                SECRET,
            ))
            .into(),
            failed,
        ),
        (
            "alg none",
            cookie(&forged(
                &json!({"alg": "none", "typ": "JWT"}),
                &json!({"sub": "mallory", "exp": exp}),
                "",
            ))
            .into(),
            failed,
        ),
        (
            "alg none with a valid signature",
            cookie(&forged(
                &json!({"alg": "none"}),
                &json!({"sub": "mallory", "exp": exp}),
                &good_sig,
            ))
            .into(),
            failed,
        ),
        (
            "alg HS512",
            cookie(&hs512_token(&json!({"sub": "mallory", "exp": exp}))).into(),
            failed,
        ),
        (
            "alg RS256 over an HMAC",
            cookie(&forged(
                &json!({"alg": "RS256"}),
                &json!({"sub": "mallory", "exp": exp}),
                &good_sig,
            ))
            .into(),
            failed,
        ),
        (
            "claims swapped under a valid signature",
            cookie(&forged(
                &hs256,
                &json!({"sub": "admin", "exp": exp}),
                &good_sig,
            ))
            .into(),
            failed,
        ),
        (
            "missing sub",
            cookie(&token_with(&json!({"exp": exp}), SECRET)).into(),
            failed,
        ),
        (
            "empty sub",
            cookie(&token_with(&json!({"sub": "", "exp": exp}), SECRET)).into(),
            failed,
        ),
        (
            "numeric sub",
            cookie(&token_with(&json!({"sub": 42, "exp": exp}), SECRET)).into(),
            failed,
        ),
        ("oversized token", cookie(&oversized).into(), failed),
        (
            "token in the wrong cookie",
            format!("Cookie: session={good}\r\n").into(),
            required,
        ),
        (
            "cookie value undefined",
            cookie("undefined").into(),
            required,
        ),
        (
            "Basic scheme",
            format!("Authorization: Basic {good}\r\n").into(),
            required,
        ),
        (
            "bearer without a token",
            b"Authorization: Bearer\r\n".to_vec(),
            required,
        ),
        (
            "bearer with a wrong key",
            bearer(&token_with(
                &json!({"sub": "mallory", "exp": exp}),
                b"another-secret-that-is-also-32-bytes-long",
            ))
            .into(),
            failed,
        ),
        (
            "bad cookie and bad bearer",
            [cookie("garbage"), bearer("a.b.c")].concat().into(),
            failed,
        ),
        (
            "expired cookie and garbage bearer",
            [
                cookie(&token_with(
                    &json!({"sub": "mallory", "exp": now - 3600}),
                    SECRET,
                )),
                bearer("x"),
            ]
            .concat()
            .into(),
            failed,
        ),
        (
            "non-UTF-8 bytes in both headers",
            b"Cookie: access_token=\xff\xfe\r\nAuthorization: Bearer \xff\xfe\r\n".to_vec(),
            required,
        ),
    ];
    let refused = cases.len();
    for (name, headers, code) in cases {
        let mut ws = RawWs::connect_bytes(h.addr(), &headers).await;
        let (close, before) = ws.close_code_after().await;
        assert_eq!(close, Some(4401), "{name}");
        let errors: Vec<Value> = before.iter().filter_map(raw::ServerFrame::json).collect();
        assert_eq!(
            errors.len(),
            1,
            "{name}: exactly one frame, the error: {before:?}"
        );
        assert_eq!(errors[0]["t"], "error", "{name}");
        assert_eq!(errors[0]["p"]["code"], code, "{name}: {}", errors[0]);
    }

    // Controls (CONTRACT D4): a bad cookie does not hide a good header, and a good cookie
    // wins over a bad header.
    let controls = [
        (
            "bearer-ok",
            [cookie("garbage"), bearer(&good_token("bearer-ok"))].concat(),
        ),
        (
            "cookie-ok",
            [cookie(&good_token("cookie-ok")), bearer("a.b.c")].concat(),
        ),
    ];
    for (user, headers) in controls {
        let mut ws = RawWs::connect(h.addr(), &headers).await;
        let ready = ws
            .next_frame()
            .await
            .expect("server_ready")
            .json()
            .expect("JSON");
        assert_eq!(ready["t"], "server_ready", "{user}");
        ws.send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
            .await
            .expect("close");
        assert_eq!(ws.close_code().await, Some(NORMAL));
    }

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-tokens", Some(&good_token("late")))
        .await;
    let mut users: Vec<String> = h.with_events(|evs| {
        assert!(
            !evs.iter().any(|e| matches!(e, ServerEvent::Connect(..))),
            "no unauthenticated connect on a JWT server"
        );
        evs.iter()
            .filter_map(|e| match e {
                ServerEvent::AuthConnect(_, user, _) => Some(user.clone()),
                _ => None,
            })
            .collect()
    });
    users.sort();
    assert_eq!(users, ["bearer-ok", "cookie-ok", "late", "witness"]);
    let metrics = h.server.prometheus_metrics();
    let failures = format!("\nwse_auth_failures_total {refused}\n");
    assert!(metrics.contains(&failures), "{metrics}");
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_bombs_are_capped_or_delivered_as_bin_without_large_allocation() {
    let _alone = harness::measuring_memory().await;
    const BOMBERS: usize = 4;
    let h = Harness::start(|_| {}).await; // max_message_size 1 MiB: the inflation cap too
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));

    // zlib: 910 KB on the wire (under the 1 MiB frame limit), 138 MiB inflated.
    let bomb = [b"C:".as_slice(), &bombs::zlib_bomb(560_000)].concat();
    assert!(bomb.len() < 1 << 20);
    let frame = masked(OP_BINARY, &bomb);
    let rss_before = harness::rss_bytes();
    harness::reset_peak_rss();
    let bombers: Vec<_> = (0..BOMBERS)
        .map(|i| {
            let (addr, frame) = (h.addr(), frame.clone());
            tokio::spawn(async move {
                let mut ws = RawWs::connect(addr, &tag_header(&format!("bomber-{i}"))).await;
                ws.send(&frame).await.expect("bomb sent");
                ws.close_code().await
            })
        })
        .collect();
    for b in bombers {
        assert_eq!(
            b.await.expect("bomber"),
            Some(1009),
            "capped: message too big"
        );
    }
    let peak = harness::peak_rss_bytes();
    report(
        &format!("{BOMBERS} zlib bombs (138 MiB each)"),
        rss_before,
        peak,
    );
    assert!(
        peak < rss_before + MEMORY_SLACK,
        "never inflated past the cap"
    );
    for i in 0..BOMBERS {
        let id = registered(&h, &format!("bomber-{i}")).await;
        gone(&h, id).await;
        assert_eq!(data_events(&h, id), []);
    }

    // msgpack: too deep, endlessly deep, lying lengths → `bin`; 64 deep is a message.
    let mut packer = RawWs::connect(h.addr(), &tag_header("packer")).await;
    let id = registered(&h, "packer").await;
    let m = |body: &[u8]| [b"M:".as_slice(), body].concat();
    let mut sixty_four = json!(null);
    for _ in 0..64 {
        sixty_four = json!([sixty_four]);
    }
    let as_bin: Vec<Vec<u8>> = vec![
        m(&bombs::msgpack_nest(65)),
        m(&bombs::msgpack_nest(1000 * 1000 - 3)),
        m(&[0xdd, 0xff, 0xff, 0xff, 0xff]), // array32 of 4 G elements, none sent
        m(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0]), // map32 of 4 G entries
        m(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']), // str32 of 4 GiB
        m(&[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]), // bin32 of 4 GiB
        m(&[0xc7, 0xff, 0x01]),             // ext8, truncated
        m(&[0x92, 0xc0]),                   // an array one element short
        [b"C:".as_slice(), b"\x78\x01garbage"].concat(), // corrupt zlib
    ];
    for payload in &as_bin {
        packer
            .send(&masked(OP_BINARY, payload))
            .await
            .expect("sent");
    }
    packer
        .send(&masked(OP_BINARY, &m(&bombs::msgpack_nest(64))))
        .await
        .expect("sent");
    h.wait_until("every binary delivered", WAIT, |h| {
        data_events(h, id).len() == as_bin.len() + 1
    })
    .await;
    let mut expected: Vec<ServerEvent> = as_bin
        .into_iter()
        .map(|b| ServerEvent::Bin(id, b.into()))
        .collect();
    expected.push(ServerEvent::Msg(id, sixty_four));
    assert_eq!(data_events(&h, id), expected);
    packer
        .send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
        .await
        .expect("close");
    assert_eq!(packer.close_code().await, Some(NORMAL));

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-bombs", None).await;
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_messages_nobody_consumes_are_held_back_by_tcp_bounded_in_bytes_and_never_lost() {
    let _alone = harness::measuring_memory().await;
    // The application is slow (nobody takes events) while one client sends 1 MiB messages —
    // well within max_message_size and the inbound rate limit. The event queue holds 131 072
    // events; it must not hold 131 072 MiB. Nor may it drop them: once its byte budget is
    // nearly used the server stops reading the socket (back-pressure), and resumes when the
    // application catches up.
    const MESSAGE: usize = 1 << 20; // the default max_message_size
    const MESSAGES: usize = 256;
    let h = Harness::start_unconsumed(|_| {}).await;
    let witness = Witness::join(&h, "feed", None).await;
    let feed = Feed::start(&h.server, "feed", &witness, 0, Duration::from_millis(2));
    let mut hoarder = RawWs::connect(h.addr(), &tag_header("hoarder")).await;
    let id = registered(&h, "hoarder").await;
    let rss_before = harness::rss_bytes();
    harness::reset_peak_rss();

    // An all-zero mask keeps the client cheap; the server unmasks all the same. The sends
    // block once TCP's buffers are full, so they run on their own task.
    let frame = client_frame(true, 0, OP_BINARY, &vec![0xab; MESSAGE], Some([0; 4]), None);
    let sender = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            hoarder.send(&frame).await.expect("sent");
        }
        hoarder
    });
    // Until the server stops reading: the received count holds still for a while.
    let received = || {
        let metrics = h.server.prometheus_metrics();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("wse_messages_received_total "))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let mut last = (usize::MAX, tokio::time::Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = received();
        if now != last.0 {
            last = (now, tokio::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    let peak = harness::peak_rss_bytes();
    report(
        &format!("{MESSAGES} MiB sent to an application that does not consume"),
        rss_before,
        peak,
    );
    assert!(
        last.0 < MESSAGES,
        "the server read everything ({}) instead of pushing back",
        last.0
    );
    assert!(last.0 >= 1, "nothing was read at all");
    assert_eq!(h.server.inbound_dropped(), 0, "back-pressure, not drops");
    assert!(
        peak < rss_before + INBOUND_QUEUE_BUDGET + MEMORY_SLACK,
        "the queue held more than its byte budget"
    );
    assert!(h.server.connections().contains(&id));

    // The application catches up: every message arrives, whole and once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut kept = 0usize;
    while kept < MESSAGES * MESSAGE {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {kept} bytes arrived"
        );
        h.pull().await;
        kept = data_events(&h, id)
            .iter()
            .map(|e| match e {
                ServerEvent::Bin(_, b) => b.len(),
                other => panic!("only binary from the hoarder: {other:?}"),
            })
            .sum();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(kept, MESSAGES * MESSAGE);
    assert_eq!(h.server.inbound_dropped(), 0);
    let mut hoarder = sender
        .await
        .expect("the sender finished once the server read on");
    hoarder
        .send(&masked(OP_CLOSE, &NORMAL.to_be_bytes()))
        .await
        .expect("close");
    assert_eq!(hoarder.close_code().await, Some(NORMAL));

    let published = feed.finish().await;
    assert_eq!(witness.finish().await, published);
    h.assert_still_serving("after-hoarder", None).await;
    h.server.stop().await;
}
