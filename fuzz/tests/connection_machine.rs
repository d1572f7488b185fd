//! Fuzz target: operation sequences against the per-connection machine
//! (`wse_core::conn::Connection`), driven the way the runtime drives it.
//!
//! Setup: accepted without JWT, or with JWT validated against a fixed HS256 test secret — a
//! valid token minted here with `encode_jwt` (in the cookie or the `Authorization` header; this
//! crate's only verifier is that test key), no token, an expired token, or fuzzed garbage. Small
//! limits (512-byte messages, a tight inbound and outbound bucket, 1 s ping, 3 s idle) so that
//! every limit is reached within a few dozen steps.
//!
//! Then arbitrary steps with non-decreasing time: text and binary frames (raw, protocol JSON,
//! `C:` bombs), WebSocket ping/pong, early timeouts, `send_event`, `send_frame`, server close,
//! peer close, transport loss. As a driver does, a due deadline is fired before each input.
//!
//! Invariants after every step:
//!
//! - the accept outputs are exactly those of the mode (`server_ready` then `AuthConnect`;
//!   `Connect`; or an `AUTH_REQUIRED`/`AUTH_FAILED` error then close 4401);
//! - outputs drain to `None`, at most a handful per input;
//! - after a `Close` no frame, event or second close; after `Terminate` (or a peer close or
//!   transport loss) nothing at all, and `poll_timeout` is `None`;
//! - every close code is one the machine documents;
//! - `poll_timeout` is never in the past after `handle_timeout(now)`, and an early
//!   `handle_timeout` changes nothing;
//! - an admitted data frame gives exactly what its classification says (fast-path answer or one
//!   event, a 1009 close for a decompression bomb), and only admitted frames give events;
//! - `send_event` queues exactly one binary frame of the reported length, only while open.

use std::sync::Arc;

use bolero::TypeGenerator;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde_json::{Map, Value, json};
use wse_core::auth::{TokenCandidates, encode_jwt, token_candidates};
use wse_core::config::{JwtAlgorithm, JwtSettings, ServerConfig};
use wse_core::conn::{
    ConnSettings, Connection, Event, Handshake, Output, SendEventOutcome, close_code,
};
use wse_core::protocol::{
    BinaryInbound, Frame, TextInbound, classify_binary, classify_text, zlib_compress,
};
use wse_core::{Instant, WallClock};
use wse_fuzz::TEST_SECRET;

const MAX_MESSAGE: usize = 512;
const START_WALL_MS: u64 = 1_764_000_000_000;
/// Most outputs one input may produce (a warning, a frame and a close at most).
const MAX_OUTPUTS_PER_STEP: usize = 4;

#[derive(Debug, TypeGenerator)]
struct Input {
    mode: Mode,
    msgpack: bool,
    ops: Vec<Op>,
}

#[derive(Debug, TypeGenerator)]
enum Mode {
    NoJwt,
    JwtValid {
        in_cookie: bool,
    },
    /// Refused handshakes, one third of the runs.
    Rejected(Rejected),
}

#[derive(Debug, TypeGenerator)]
enum Rejected {
    Missing,
    Expired,
    Garbage(Vec<u8>),
}

#[derive(Debug, TypeGenerator)]
enum Op {
    /// Let time pass, in steps of 20 ms (up to 5.1 s: idle timeout 3 s, close grace 5 s).
    Advance(u8),
    /// That many small chat messages at the same instant (reaches the inbound rate limit).
    Burst(u8),
    /// That many small messages `gap` × 5 ms apart: sustained abuse (reaches the 4429 close).
    Abuse {
        n: u8,
        gap: u8,
    },
    Text(Vec<u8>),
    /// A protocol message: 0 `client_hello`, 1 `ping`, 2 `pong`, 3 a chat message, 4 aliases.
    Protocol {
        kind: u8,
        n: u32,
    },
    Binary(Vec<u8>),
    /// A `C:` frame of `chunk` repeated `repeat + 1` times (a bomb past 512 bytes).
    Compressed {
        chunk: Vec<u8>,
        repeat: u16,
    },
    Big(u16),
    WsPing,
    WsPong,
    Timeout,
    SendEvent {
        id: Option<u8>,
        compress: bool,
    },
    SendFrame,
    Close(u16),
    PeerClose,
    TransportClosed,
}

/// What the output stream has shown so far.
#[derive(Debug, Default)]
struct Seen {
    closed: bool,
    terminated: bool,
    gone: bool,
}

/// The shared settings of every connection: small limits, JWT on or off.
fn settings(with_jwt: bool) -> Arc<ConnSettings> {
    let config = ServerConfig {
        jwt: with_jwt.then(|| JwtSettings {
            secret: TEST_SECRET.to_vec(),
            ..Default::default()
        }),
        max_message_size: MAX_MESSAGE,
        ping_interval_secs: 1,
        idle_timeout_secs: 3,
        inbound_rate_capacity: 8.0,
        inbound_rate_refill: 2.0,
        inbound_rate_grace_ms: 400,
        rate_limit_capacity: 5.0,
        rate_limit_refill: 2.0,
        send_dedup_window: 4,
        ..Default::default()
    };
    Arc::new(ConnSettings::from_config(&config).expect("valid fuzz config"))
}

fn token(exp_secs: u64) -> String {
    let claims: Map<String, Value> = json!({"sub": "fuzz-user", "exp": exp_secs})
        .as_object()
        .cloned()
        .unwrap_or_default();
    encode_jwt(&claims, TEST_SECRET, JwtAlgorithm::Hs256, None).expect("HS256 minting")
}

#[test]
fn connection_machine() {
    let (jwt, plain) = (settings(true), settings(false));
    bolero::check!()
        .with_type::<Input>()
        .for_each(|input| run(input, &jwt, &plain));
}

fn run(input: &Input, jwt: &Arc<ConnSettings>, plain: &Arc<ConnSettings>) {
    let mut now = Instant::from_secs(10);
    let mut wall_ms = START_WALL_MS;
    let wall_secs = START_WALL_MS / 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (cookie, authorization) = match &input.mode {
        Mode::JwtValid { in_cookie: true } => (
            Some(format!("access_token={}", token(wall_secs + 3600))),
            None,
        ),
        Mode::JwtValid { in_cookie: false } => {
            (None, Some(format!("Bearer {}", token(wall_secs + 3600))))
        }
        Mode::Rejected(Rejected::Expired) => {
            (None, Some(format!("Bearer {}", token(wall_secs - 3600))))
        }
        Mode::Rejected(Rejected::Garbage(b)) => (
            Some(format!("access_token={}", String::from_utf8_lossy(b))),
            None,
        ),
        Mode::NoJwt | Mode::Rejected(Rejected::Missing) => (None, None),
    };
    let handshake = Handshake {
        cookie: cookie.as_deref().map(str::as_bytes),
        authorization: authorization.as_deref().map(str::as_bytes),
        origin: None,
        query: input.msgpack.then_some("format=msgpack"),
    };
    let settings = if matches!(input.mode, Mode::NoJwt) {
        plain
    } else {
        jwt
    };
    let mut conn = Connection::accept(
        Arc::clone(settings),
        &handshake,
        now,
        WallClock::from_unix_millis(wall_ms),
        &mut rng,
    );
    let first = drain(&mut conn);
    check_accept(&input.mode, &handshake, &first, &conn);
    let mut seen = Seen::default();
    observe(&mut seen, &first);

    for op in &input.ops {
        if let Op::Advance(tens) = op {
            let ms = u64::from(*tens) * 20;
            now = now + std::time::Duration::from_millis(ms);
            wall_ms += ms;
        }
        let wall = WallClock::from_unix_millis(wall_ms);
        fire_due(&mut conn, &mut seen, now, wall);
        let before = conn.stats();
        let was_open = conn.is_open();
        let mut admitted_text = None;
        let mut admitted_binary = None;
        match op {
            Op::Advance(_) => {}
            Op::Text(b) => {
                let text = String::from_utf8_lossy(b).into_owned();
                conn.handle_text(now, wall, &text);
                admitted_text = Some(text);
            }
            Op::Protocol { kind, n } => {
                let text = match kind % 5 {
                    0 => json!({"t": "client_hello", "p": {"protocol_version": n % 3}}).to_string(),
                    1 => json!({"c": "WSE", "t": "ping", "p": {"timestamp": n}}).to_string(),
                    2 => json!({"t": "pong"}).to_string(),
                    3 => format!("WSE{}", json!({"t": "chat", "p": {"n": n}})),
                    _ => json!({"type": "chat", "payload": n}).to_string(),
                };
                conn.handle_text(now, wall, &text);
                admitted_text = Some(text);
            }
            Op::Binary(b) => {
                conn.handle_binary(now, wall, b);
                admitted_binary = Some(b.clone());
            }
            Op::Compressed { chunk, repeat } => {
                let copies = (usize::from(*repeat) + 1).min((1 << 16) / chunk.len().max(1));
                let plain = chunk.repeat(copies);
                let frame = [b"C:".as_slice(), &zlib_compress(&plain, 1)].concat();
                conn.handle_binary(now, wall, &frame);
                admitted_binary = Some(frame);
            }
            Op::Big(extra) => {
                let text = "x".repeat(MAX_MESSAGE + 1 + usize::from(*extra % 1024));
                conn.handle_text(now, wall, &text);
                let out = drain(&mut conn);
                if was_open {
                    assert_eq!(
                        close_of(&out),
                        Some(close_code::MESSAGE_TOO_BIG),
                        "oversize text: {out:?}"
                    );
                }
                observe(&mut seen, &out);
                check_state(&conn, &seen);
                continue;
            }
            Op::Burst(n) => {
                for _ in 0..n % 32 {
                    burst_message(&mut conn, &mut seen, now, wall);
                }
                continue;
            }
            Op::Abuse { n, gap } => {
                for _ in 0..n % 64 {
                    let ms = u64::from(*gap) * 5;
                    now = now + std::time::Duration::from_millis(ms);
                    wall_ms += ms;
                    let wall = WallClock::from_unix_millis(wall_ms);
                    fire_due(&mut conn, &mut seen, now, wall);
                    burst_message(&mut conn, &mut seen, now, wall);
                }
                continue;
            }
            Op::WsPing => conn.handle_ws_ping(now),
            Op::WsPong => conn.handle_ws_pong(now),
            Op::Timeout => {
                let deadline = conn.poll_timeout();
                conn.handle_timeout(now, wall);
                let out = drain(&mut conn);
                // Any due deadline was already fired above, so this call is early.
                assert!(out.is_empty(), "early handle_timeout produced {out:?}");
                assert_eq!(
                    conn.poll_timeout(),
                    deadline,
                    "early handle_timeout moved the deadline"
                );
            }
            Op::SendEvent { id, compress } => {
                let mut event = Map::new();
                event.insert("t".into(), json!("update"));
                event.insert("p".into(), json!({"x": "y".repeat(64)}));
                if let Some(id) = id {
                    event.insert("id".into(), json!(format!("m{}", id % 8)));
                }
                let threshold = if *compress { 16 } else { usize::MAX };
                let outcome = conn.send_event(now, wall, &event, threshold, 1, &mut rng);
                let out = drain(&mut conn);
                assert_eq!(
                    outcome == SendEventOutcome::NotOpen,
                    !was_open,
                    "send_event while open = {was_open}"
                );
                if let SendEventOutcome::Queued(len) = outcome {
                    match out.last() {
                        Some(Output::Frame(Frame::Binary(b))) => assert_eq!(b.len(), len),
                        other => panic!("queued event without its frame: {other:?}"),
                    }
                    assert!(
                        out[..out.len() - 1]
                            .iter()
                            .all(|o| matches!(o, Output::Frame(Frame::Text(_))))
                    );
                } else {
                    assert!(
                        out.iter()
                            .all(|o| matches!(o, Output::Frame(Frame::Text(_)))),
                        "{out:?}"
                    );
                }
                observe(&mut seen, &out);
                check_state(&conn, &seen);
                continue;
            }
            Op::SendFrame => {
                assert_eq!(conn.send_frame(Frame::text("hello")), was_open);
            }
            Op::Close(code) => conn.close(now, 3000 + code % 2000, "fuzz close"),
            Op::PeerClose => conn.handle_peer_close(now),
            Op::TransportClosed => conn.handle_transport_closed(now),
        }
        let out = drain(&mut conn);
        let admitted = conn.stats().messages_received > before.messages_received;
        if !admitted {
            assert!(
                out.iter().all(|o| !matches!(o, Output::Event(_))),
                "an event from a frame that was not admitted: {out:?}"
            );
        } else if let Some(text) = &admitted_text {
            check_text_outputs(text, None, &out);
        } else if let Some(data) = &admitted_binary {
            check_admitted_binary(data, input.msgpack, &out, &conn, before.undecryptable);
        }
        if matches!(op, Op::PeerClose | Op::TransportClosed) {
            assert!(out.is_empty() && conn.is_closed());
            seen.gone = true;
        }
        observe(&mut seen, &out);
        check_state(&conn, &seen);
    }
}

/// What the driver does before any input at `now`: fire a due deadline. Afterwards the next
/// deadline is in the future.
fn fire_due(conn: &mut Connection, seen: &mut Seen, now: Instant, wall: WallClock) {
    if conn.poll_timeout().is_some_and(|t| t <= now) {
        conn.handle_timeout(now, wall);
        let out = drain(conn);
        observe(seen, &out);
        check_state(conn, seen);
    }
    if let Some(t) = conn.poll_timeout() {
        assert!(t > now, "deadline {t:?} not after {now:?} once handled");
    }
}

/// One small message of a burst: admitted (one event) or refused by the inbound limit (nothing,
/// a `RATE_LIMITED` error, or the 4429 close once the grace is over).
fn burst_message(conn: &mut Connection, seen: &mut Seen, now: Instant, wall: WallClock) {
    let before = conn.stats();
    let was_open = conn.is_open();
    conn.handle_text(now, wall, r#"{"t":"chat"}"#);
    let out = drain(conn);
    let after = conn.stats();
    if !was_open {
        assert!(out.is_empty(), "{out:?}");
    } else if after.messages_received > before.messages_received {
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(out[0], Output::Event(Event::Msg(_))), "{out:?}");
    } else {
        assert_eq!(after.inbound_rate_limited, before.inbound_rate_limited + 1);
        match &out[..] {
            [] => {}
            [Output::Frame(Frame::Text(b))] => {
                assert!(
                    String::from_utf8_lossy(b).contains("RATE_LIMITED"),
                    "{out:?}"
                );
            }
            [Output::Close { code, .. }] => assert_eq!(*code, close_code::RATE_LIMITED),
            other => panic!("refused message gave {other:?}"),
        }
    }
    observe(seen, &out);
    check_state(conn, seen);
}

fn check_accept(mode: &Mode, handshake: &Handshake<'_>, out: &[Output], conn: &Connection) {
    let text = |o: &Output| match o {
        Output::Frame(Frame::Text(b)) => {
            String::from_utf8(b.to_vec()).expect("text frame is UTF-8")
        }
        other => panic!("expected a text frame, got {other:?}"),
    };
    match mode {
        Mode::NoJwt => assert_eq!(
            out,
            [Output::Event(Event::Connect {
                cookies: String::new()
            })]
        ),
        Mode::JwtValid { in_cookie } => {
            assert_eq!(out.len(), 2, "{out:?}");
            let ready: Value = serde_json::from_str(&text(&out[0])).expect("server_ready is JSON");
            assert_eq!(ready["t"], "server_ready");
            assert_eq!(ready["p"]["details"]["user_id"], "fuzz-user");
            let Output::Event(Event::AuthConnect { user_id, cookies }) = &out[1] else {
                panic!("expected AuthConnect, got {:?}", out[1]);
            };
            assert_eq!(user_id, "fuzz-user");
            assert_eq!(cookies.is_empty(), !in_cookie);
            assert!(conn.is_open());
        }
        Mode::Rejected(rejected) => {
            assert_eq!(out.len(), 2, "{out:?}");
            let error: Value = serde_json::from_str(&text(&out[0])).expect("error frame is JSON");
            // Garbage that leaves no usable cookie value (empty, `null`, ...) is no token at all.
            let no_token = match rejected {
                Rejected::Garbage(_) => {
                    token_candidates(handshake.cookie, handshake.authorization, "access_token")
                        == TokenCandidates::default()
                }
                Rejected::Missing => true,
                Rejected::Expired => false,
            };
            let want = if no_token {
                "AUTH_REQUIRED"
            } else {
                "AUTH_FAILED"
            };
            assert!(error.to_string().contains(want), "{error}");
            assert_eq!(close_of(out), Some(close_code::AUTH_FAILED));
            assert!(!conn.is_open());
        }
    }
}

/// What an admitted text gives: the fast-path answer (`server_hello`, `PONG`), nothing for a
/// `pong`, or one event. `original` is the binary frame a `C:` text came from (delivered as
/// `bin` when the text is not JSON).
fn check_text_outputs(text: &str, original: Option<&[u8]>, out: &[Output]) {
    let event = |e| vec![Output::Event(e)];
    match classify_text(text) {
        TextInbound::ClientHello(_) => {
            assert!(single_text_frame(out).contains("server_hello"), "{out:?}");
        }
        TextInbound::Ping { .. } => {
            assert!(single_text_frame(out).contains("\"PONG\""), "{out:?}");
        }
        TextInbound::Pong => assert!(out.is_empty(), "{out:?}"),
        TextInbound::Msg(v) => assert_eq!(out, event(Event::Msg(v))),
        TextInbound::Raw => match original {
            None => assert_eq!(out, event(Event::Raw(text.to_owned()))),
            Some(b) => assert_eq!(out, event(Event::Bin(bytes::Bytes::copy_from_slice(b)))),
        },
    }
}

fn check_admitted_binary(
    data: &[u8],
    msgpack: bool,
    out: &[Output],
    conn: &Connection,
    undecryptable: u64,
) {
    match classify_binary(data, msgpack, MAX_MESSAGE) {
        Ok(BinaryInbound::Encrypted(_)) => {
            assert!(out.is_empty(), "{out:?}");
            assert_eq!(conn.stats().undecryptable, undecryptable + 1);
        }
        Ok(BinaryInbound::Text(text)) => check_text_outputs(&text, Some(data), out),
        Ok(BinaryInbound::Msg(v)) => assert_eq!(out, [Output::Event(Event::Msg(v))]),
        Ok(BinaryInbound::Bin) => {
            assert_eq!(
                out,
                [Output::Event(Event::Bin(bytes::Bytes::copy_from_slice(
                    data
                )))]
            );
        }
        Err(_) => assert_eq!(
            close_of(out),
            Some(close_code::MESSAGE_TOO_BIG),
            "bomb: {out:?}"
        ),
    }
}

fn single_text_frame(out: &[Output]) -> String {
    match out {
        [Output::Frame(Frame::Text(b))] => String::from_utf8_lossy(b).into_owned(),
        other => panic!("expected one text frame, got {other:?}"),
    }
}

fn observe(seen: &mut Seen, out: &[Output]) {
    assert!(
        out.len() <= MAX_OUTPUTS_PER_STEP,
        "{} outputs in one step: {out:?}",
        out.len()
    );
    for o in out {
        assert!(
            !seen.terminated && !seen.gone,
            "output after the end of the connection: {o:?}"
        );
        match o {
            Output::Close { code, reason } => {
                assert!(!seen.closed, "a second close: {o:?}");
                assert!(reason.len() <= 123);
                let documented = [
                    close_code::MESSAGE_TOO_BIG,
                    close_code::AUTH_FAILED,
                    close_code::ORIGIN_FORBIDDEN,
                    close_code::IDLE_TIMEOUT,
                    close_code::RATE_LIMITED,
                ];
                assert!(
                    documented.contains(code) || (3000..5000).contains(code),
                    "close code {code}"
                );
                seen.closed = true;
            }
            Output::Terminate => {
                assert!(seen.closed, "terminate without a close first");
                seen.terminated = true;
            }
            Output::Frame(_) | Output::Event(_) => {
                assert!(!seen.closed, "{o:?} after the close");
            }
        }
    }
}

fn check_state(conn: &Connection, seen: &Seen) {
    if seen.closed || seen.gone {
        assert!(!conn.is_open(), "open after a close");
    }
    if seen.terminated || seen.gone {
        assert!(conn.is_closed() && conn.poll_timeout().is_none());
    }
    assert_eq!(conn.is_closed(), conn.poll_timeout().is_none());
}

fn close_of(out: &[Output]) -> Option<u16> {
    out.iter().find_map(|o| match o {
        Output::Close { code, .. } => Some(*code),
        _ => None,
    })
}

fn drain(conn: &mut Connection) -> Vec<Output> {
    std::iter::from_fn(|| conn.poll_output()).collect()
}
