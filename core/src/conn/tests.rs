use std::sync::Arc;

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use serde_json::json;

use super::*;
use crate::auth::encode_jwt;
use crate::config::{JwtAlgorithm, JwtSettings, ServerConfig};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const T0: Instant = Instant::from_secs(1_000);
const WALL: WallClock = WallClock::from_unix_millis(1_764_000_000_000);

fn settings(f: impl FnOnce(&mut ServerConfig)) -> Arc<ConnSettings> {
    let mut cfg = ServerConfig::default();
    f(&mut cfg);
    Arc::new(ConnSettings::from_config(&cfg).expect("valid test config"))
}

fn jwt_settings() -> Arc<ConnSettings> {
    settings(|c| {
        c.jwt = Some(JwtSettings {
            secret: SECRET.to_vec(),
            ..Default::default()
        })
    })
}

fn token(sub: &str, exp_secs: u64) -> String {
    let claims = json!({"sub": sub, "exp": exp_secs})
        .as_object()
        .unwrap()
        .clone();
    encode_jwt(&claims, SECRET, JwtAlgorithm::Hs256, None).unwrap()
}

fn valid_token() -> String {
    token("alice", WALL.unix_secs() + 3600)
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(42)
}

fn accept(s: Arc<ConnSettings>, hs: Handshake<'_>) -> Connection {
    Connection::accept(s, &hs, T0, WALL, &mut rng())
}

fn drain(c: &mut Connection) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn texts(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Frame(Frame::Text(b)) => Some(String::from_utf8(b.to_vec()).unwrap()),
            _ => None,
        })
        .collect()
}

fn open_plain() -> Connection {
    let mut c = accept(settings(|_| {}), Handshake::default());
    drain(&mut c);
    c
}

fn close_of(outputs: &[Output]) -> Option<u16> {
    outputs.iter().find_map(|o| match o {
        Output::Close { code, .. } => Some(*code),
        _ => None,
    })
}

#[test]
fn without_jwt_a_connection_gets_a_connect_event_with_raw_cookies_and_no_server_ready() {
    let hs = Handshake {
        cookie: Some(b"a=1; b=2"),
        ..Default::default()
    };
    let mut c = accept(settings(|_| {}), hs);
    let out = drain(&mut c);
    assert_eq!(
        out,
        vec![Output::Event(Event::Connect {
            cookies: "a=1; b=2".into()
        })]
    );
    assert!(c.is_open());
    assert!(c.user().is_none());
}

#[test]
fn with_jwt_server_ready_is_the_first_frame_then_auth_connect() {
    let t = valid_token();
    let cookie = format!("access_token={t}");
    let hs = Handshake {
        cookie: Some(cookie.as_bytes()),
        ..Default::default()
    };
    let mut c = accept(jwt_settings(), hs);
    let out = drain(&mut c);
    assert_eq!(out.len(), 2, "{out:?}");
    let ready = &texts(&out)[0];
    let v: Value = serde_json::from_str(ready).unwrap();
    assert_eq!(v["t"], "server_ready");
    assert_eq!(v["p"]["details"]["connection_id"], c.id().to_string());
    assert_eq!(v["p"]["details"]["user_id"], "alice");
    assert_eq!(v["p"]["details"]["features"]["recovery"], false);
    assert_eq!(
        out[1],
        Output::Event(Event::AuthConnect {
            user_id: "alice".into(),
            cookies: cookie.clone(),
        })
    );
    assert_eq!(c.user().map(AuthedUser::user_id), Some("alice"));
}

#[test]
fn a_missing_token_gets_auth_required_then_close_4401_and_nothing_after() {
    let mut c = accept(jwt_settings(), Handshake::default());
    let out = drain(&mut c);
    let t = texts(&out);
    assert_eq!(t.len(), 1);
    assert!(t[0].contains(r#""code":"AUTH_REQUIRED""#), "{}", t[0]);
    assert!(t[0].contains("No JWT cookie or Authorization header"));
    assert_eq!(close_of(&out), Some(close_code::AUTH_FAILED));
    assert!(!c.is_open());
    assert!(
        out.iter().all(|o| !matches!(o, Output::Event(_))),
        "no connect event"
    );
    c.handle_text(T0, WALL, r#"{"t":"hello"}"#);
    assert!(!c.send_frame(Frame::text("x")));
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn an_invalid_token_gets_auth_failed_then_close_4401() {
    let hs = Handshake {
        authorization: Some(b"Bearer not.a.jwt"),
        ..Default::default()
    };
    let mut c = accept(jwt_settings(), hs);
    let out = drain(&mut c);
    assert!(texts(&out)[0].contains(r#""code":"AUTH_FAILED""#));
    assert_eq!(close_of(&out), Some(close_code::AUTH_FAILED));
}

#[test]
fn an_expired_cookie_does_not_hide_a_valid_bearer_header() {
    let expired = token("mallory", WALL.unix_secs() - 3600);
    let cookie = format!("access_token={expired}");
    let bearer = format!("Bearer {}", valid_token());
    let hs = Handshake {
        cookie: Some(cookie.as_bytes()),
        authorization: Some(bearer.as_bytes()),
        ..Default::default()
    };
    let mut c = accept(jwt_settings(), hs);
    drain(&mut c);
    assert_eq!(c.user().map(AuthedUser::user_id), Some("alice"));
}

#[test]
fn an_unlisted_origin_gets_origin_forbidden_then_close_4403() {
    let s = settings(|c| c.allowed_origins = vec!["https://app.example.com".into()]);
    let mut bad = accept(
        s.clone(),
        Handshake {
            origin: Some(b"https://evil.test"),
            ..Default::default()
        },
    );
    let out = drain(&mut bad);
    assert!(texts(&out)[0].contains(r#""code":"ORIGIN_FORBIDDEN""#));
    assert_eq!(close_of(&out), Some(close_code::ORIGIN_FORBIDDEN));

    let mut good = accept(
        s,
        Handshake {
            origin: Some(b"https://app.example.com"),
            ..Default::default()
        },
    );
    let out = drain(&mut good);
    assert!(
        matches!(out[..], [Output::Event(Event::Connect { .. })]),
        "{out:?}"
    );
}

#[test]
fn client_hello_is_answered_with_server_hello_and_not_forwarded() {
    let mut c = open_plain();
    c.set_cluster_enabled(true);
    c.handle_text(
        T0,
        WALL,
        r#"{"c":"WSE","t":"client_hello","p":{"protocol_version":7}}"#,
    );
    let out = drain(&mut c);
    assert_eq!(out.len(), 1);
    let v: Value = serde_json::from_str(&texts(&out)[0]).unwrap();
    assert_eq!(v["t"], "server_hello");
    assert_eq!(v["p"]["connection_id"], c.id().to_string());
    assert_eq!(
        v["p"]["protocol_version"], 2,
        "capped at 2 like the original"
    );
    assert_eq!(v["p"]["features"]["cluster"], true);
    assert_eq!(v["p"]["features"]["encryption"], false);
    assert_eq!(v["p"]["ping_interval"], 25_000);
    assert_eq!(v["p"]["limits"]["max_message_size"], 1_048_576);
}

#[test]
fn client_ping_is_answered_with_the_compact_pong_and_client_pongs_are_dropped() {
    let mut c = open_plain();
    let client_ms = WALL.unix_millis() - 40;
    c.handle_text(
        T0,
        WALL,
        &format!(r#"{{"c":"WSE","t":"ping","p":{{"timestamp":{client_ms}}},"v":1}}"#),
    );
    let out = texts(&drain(&mut c));
    let want = format!(
        r#"{{"c":"WSE","t":"PONG","p":{{"client_timestamp":{client_ms},"server_timestamp":{},"latency":40}},"v":1}}"#,
        WALL.unix_millis()
    );
    assert_eq!(out, vec![want]);
    c.handle_text(T0, WALL, r#"{"c":"WSE","t":"PONG","p":{}}"#);
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn inbound_frames_become_msg_raw_and_bin_events() {
    let mut c = open_plain();
    c.handle_text(T0, WALL, r#"WSE{"type":"chat","payload":{"x":1}}"#);
    c.handle_text(T0, WALL, "plain words");
    c.handle_binary(T0, WALL, &[1, 2, 3]);
    let out = drain(&mut c);
    assert_eq!(
        out,
        vec![
            Output::Event(Event::Msg(json!({"t":"chat","p":{"x":1}}))),
            Output::Event(Event::Raw("plain words".into())),
            Output::Event(Event::Bin(Bytes::from_static(&[1, 2, 3]))),
        ]
    );
}

#[test]
fn compressed_inbound_json_gets_the_fast_path_too() {
    let mut c = open_plain();
    let mut frame = b"C:".to_vec();
    frame.extend(protocol::zlib_compress(
        br#"{"t":"ping","p":{"timestamp":5}}"#,
        6,
    ));
    c.handle_binary(T0, WALL, &frame);
    let out = texts(&drain(&mut c));
    assert_eq!(out.len(), 1);
    assert!(
        out[0].starts_with(r#"{"c":"WSE","t":"PONG","p":{"client_timestamp":5,"#),
        "{}",
        out[0]
    );
}

#[test]
fn a_decompression_bomb_closes_with_1009() {
    let mut c = accept(
        settings(|s| s.max_message_size = 64 << 10),
        Handshake::default(),
    );
    drain(&mut c);
    let mut frame = b"C:".to_vec();
    frame.extend(protocol::zlib_compress(&vec![b' '; 16 << 20], 9));
    assert!(
        frame.len() < 64 << 10,
        "the frame itself is within the limit"
    );
    c.handle_binary(T0, WALL, &frame);
    assert_eq!(close_of(&drain(&mut c)), Some(close_code::MESSAGE_TOO_BIG));
}

#[test]
fn an_oversized_message_closes_with_1009() {
    let mut c = accept(settings(|s| s.max_message_size = 16), Handshake::default());
    drain(&mut c);
    c.handle_text(T0, WALL, r#"{"t":"x","p":"0123456789"}"#);
    let out = drain(&mut c);
    assert_eq!(close_of(&out), Some(close_code::MESSAGE_TOO_BIG));
    assert!(out.iter().all(|o| !matches!(o, Output::Event(_))));
}

#[test]
fn the_server_pings_every_interval_and_closes_idle_connections_with_4408() {
    let mut c = open_plain();
    assert_eq!(c.poll_timeout(), Some(T0 + Duration::from_secs(25)));
    c.handle_timeout(T0 + Duration::from_secs(24), WALL);
    assert_eq!(drain(&mut c), vec![], "early timeout is harmless");
    let t1 = T0 + Duration::from_secs(25);
    c.handle_timeout(t1, WALL);
    c.handle_timeout(t1, WALL);
    let pings = texts(&drain(&mut c));
    assert_eq!(pings.len(), 1, "called twice, pinged once");
    assert!(pings[0].starts_with(r#"{"c":"WSE","t":"ping","p":{"server_time":""#));
    c.handle_timeout(T0 + Duration::from_secs(60), WALL);
    assert_eq!(close_of(&drain(&mut c)), Some(close_code::IDLE_TIMEOUT));
}

#[test]
fn any_inbound_frame_including_websocket_pings_defers_the_idle_close() {
    let mut c = open_plain();
    c.handle_ws_ping(T0 + Duration::from_secs(50));
    c.handle_timeout(T0 + Duration::from_secs(60), WALL);
    let out = drain(&mut c);
    assert_eq!(close_of(&out), None);
    c.handle_timeout(T0 + Duration::from_secs(110), WALL);
    assert_eq!(close_of(&drain(&mut c)), Some(close_code::IDLE_TIMEOUT));
}

#[test]
fn a_close_that_the_peer_never_completes_ends_in_terminate() {
    let mut c = open_plain();
    c.close(T0, close_code::NORMAL, "bye");
    assert_eq!(
        drain(&mut c),
        vec![Output::Close {
            code: close_code::NORMAL,
            reason: "bye".into()
        }]
    );
    c.close(T0, close_code::DRAIN, "again");
    assert_eq!(drain(&mut c), vec![], "closing twice sends one Close");
    let deadline = c.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + ConnSettings::DEFAULT_CLOSE_GRACE);
    c.handle_timeout(deadline, WALL);
    assert_eq!(drain(&mut c), vec![Output::Terminate]);
    assert!(c.is_closed());
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn inbound_flooding_is_dropped_with_one_error_a_second_then_closed_with_4429() {
    let s = settings(|c| {
        c.inbound_rate_capacity = 3.0;
        c.inbound_rate_refill = 1.0;
        c.inbound_rate_grace_ms = 2_000;
    });
    let mut c = accept(s, Handshake::default());
    drain(&mut c);
    for _ in 0..3 {
        c.handle_text(T0, WALL, r#"{"t":"m"}"#);
    }
    assert_eq!(drain(&mut c).len(), 3, "three events within capacity");
    for _ in 0..5 {
        c.handle_text(T0, WALL, r#"{"t":"m"}"#);
    }
    let out = texts(&drain(&mut c));
    assert_eq!(
        out,
        vec![protocol::rate_limited_error().to_owned()],
        "one error per second"
    );
    assert_eq!(c.stats().inbound_rate_limited, 5);
    // After 1 s one token is back: accepted even while the client floods.
    let t1 = T0 + Duration::from_secs(1);
    c.handle_text(t1, WALL, r#"{"t":"m"}"#);
    assert!(matches!(drain(&mut c)[..], [Output::Event(_)]));
    // Flooding on (10 messages every 100 ms) past the 2 s grace closes with 4429, even though
    // the refill lets one message a second through.
    let mut closed_at = None;
    for step in 1..=40u64 {
        let now = t1 + Duration::from_millis(100 * step);
        for _ in 0..10 {
            c.handle_text(now, WALL, r#"{"t":"m"}"#);
        }
        if close_of(&drain(&mut c)) == Some(close_code::RATE_LIMITED) {
            closed_at = Some(now);
            break;
        }
    }
    let closed_at = closed_at.expect("sustained abuse is closed");
    // The flood's first refusal (t1 + 100 ms) starts a new run: 1.1 s passed without one.
    let run_start = t1 + Duration::from_millis(100);
    assert!(
        closed_at - run_start >= Duration::from_secs(2),
        "not before the grace"
    );
    assert!(
        closed_at - run_start <= Duration::from_millis(2_100),
        "right after the grace"
    );
}

#[test]
fn a_client_that_backs_off_after_a_burst_is_not_closed() {
    let s = settings(|c| {
        c.inbound_rate_capacity = 2.0;
        c.inbound_rate_refill = 1.0;
        c.inbound_rate_grace_ms = 2_000;
    });
    let mut c = accept(s, Handshake::default());
    drain(&mut c);
    let mut now = T0;
    for _ in 0..5 {
        // A burst of 5 (3 refused), then 2 s of silence, repeated well past the grace.
        for _ in 0..5 {
            c.handle_text(now, WALL, r#"{"t":"m"}"#);
        }
        assert_eq!(close_of(&drain(&mut c)), None);
        now = now + Duration::from_secs(2);
    }
    assert!(c.is_open());
}

#[test]
fn zero_inbound_refill_disables_inbound_limiting() {
    let s = settings(|c| {
        c.inbound_rate_capacity = 0.0;
        c.inbound_rate_refill = 0.0;
    });
    let mut c = accept(s, Handshake::default());
    drain(&mut c);
    for _ in 0..1000 {
        c.handle_text(T0, WALL, r#"{"t":"m"}"#);
    }
    assert_eq!(drain(&mut c).len(), 1000);
}

fn event(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("test events are objects, got {other}"),
    }
}

#[test]
fn send_event_frames_binary_json_with_an_envelope() {
    let mut c = open_plain();
    let out = c.send_event(
        T0,
        WALL,
        &event(json!({"t":"order","p":{"n":1}})),
        1024,
        9,
        &mut rng(),
    );
    let frames = drain(&mut c);
    let Output::Frame(Frame::Binary(payload)) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(out, SendEventOutcome::Queued(payload.len()));
    let v: Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(
        (
            v["c"].as_str(),
            v["t"].as_str(),
            v["seq"].as_u64(),
            v["v"].as_i64()
        ),
        (Some("U"), Some("order"), Some(9), Some(1))
    );
    assert!(v["id"].as_str().is_some_and(|s| s.len() == 36));
}

#[test]
fn send_event_dedups_ids_per_connection() {
    let mut c = open_plain();
    let mut other = open_plain();
    let e = event(json!({"t":"x","id":"m-1"}));
    assert!(matches!(
        c.send_event(T0, WALL, &e, 0, 1, &mut rng()),
        SendEventOutcome::Queued(_)
    ));
    assert_eq!(
        c.send_event(T0, WALL, &e, 0, 2, &mut rng()),
        SendEventOutcome::Duplicate
    );
    assert!(
        matches!(
            other.send_event(T0, WALL, &e, 0, 3, &mut rng()),
            SendEventOutcome::Queued(_)
        ),
        "dedup is per connection"
    );
    assert_eq!(c.stats().duplicates, 1);
}

#[test]
fn send_event_warns_under_20_percent_and_refuses_when_empty() {
    let s = settings(|c| {
        c.rate_limit_capacity = 10.0;
        c.rate_limit_refill = 0.0;
    });
    let mut c = accept(s, Handshake::default());
    drain(&mut c);
    let e = event(json!({"t":"x"}));
    for _ in 0..8 {
        assert!(matches!(
            c.send_event(T0, WALL, &e, 0, 0, &mut rng()),
            SendEventOutcome::Queued(_)
        ));
    }
    assert_eq!(
        texts(&drain(&mut c)),
        Vec::<String>::new(),
        "no warning at >= 20 %"
    );
    c.send_event(T0, WALL, &e, 0, 0, &mut rng()); // 2 left: 20 %, not below
    c.send_event(T0, WALL, &e, 0, 0, &mut rng()); // 1 left: warning
    let warnings = texts(&drain(&mut c));
    assert_eq!(warnings, vec![protocol::rate_limit_warning(9, 10, 1)]);
    assert_eq!(
        c.send_event(T0, WALL, &e, 0, 0, &mut rng()),
        SendEventOutcome::RateLimited
    );
    let t = T0 + Duration::from_secs(2);
    assert_eq!(
        c.send_event(t, WALL, &e, 0, 0, &mut rng()),
        SendEventOutcome::RateLimited
    );
    assert_eq!(
        texts(&drain(&mut c)),
        vec![protocol::rate_limited_error().to_owned()]
    );
    assert_eq!(c.stats().outbound_rate_limited, 2);
}

/// Sends a 4000-character event and returns the one binary frame it produced.
fn send_large_event(c: &mut Connection) -> Bytes {
    let big = event(json!({"t":"x","p":"y".repeat(4000)}));
    c.send_event(T0, WALL, &big, 1024, 0, &mut rng());
    match &drain(c)[..] {
        [Output::Frame(Frame::Binary(b))] => b.clone(),
        other => panic!("expected one binary frame, got {other:?}"),
    }
}

#[test]
fn msgpack_connections_get_m_prefixed_send_event_output() {
    let hs = Handshake {
        query: Some("client_version=1&format=msgpack"),
        ..Default::default()
    };
    let mut c = accept(settings(|_| {}), hs);
    drain(&mut c);
    assert!(c.is_msgpack());
    let b = send_large_event(&mut c);
    assert_eq!(&b[..2], b"M:", "msgpack is never compressed");
    let v = protocol::msgpack_to_json(&b[2..], 64).unwrap();
    assert_eq!(v["t"], "x");
}

#[test]
fn large_events_are_zlib_compressed_on_json_connections() {
    let mut c = open_plain();
    let b = send_large_event(&mut c);
    assert_eq!(&b[..2], b"C:");
    let inflated = protocol::zlib_decompress_capped(&b[2..], 1 << 20).unwrap();
    let v: Value = serde_json::from_slice(&inflated).unwrap();
    assert_eq!(v["p"].as_str().map(str::len), Some(4000));
}

#[test]
fn after_close_nothing_is_emitted_for_the_connection() {
    let mut c = open_plain();
    c.close(T0, close_code::TRY_AGAIN_LATER, "slow consumer");
    drain(&mut c);
    c.handle_text(T0, WALL, r#"{"t":"ping","p":{"timestamp":1}}"#);
    c.handle_binary(T0, WALL, b"data");
    c.handle_timeout(T0 + Duration::from_secs(1), WALL);
    assert!(!c.send_frame(Frame::text("late")));
    assert_eq!(
        c.send_event(T0, WALL, &event(json!({"t":"x"})), 0, 0, &mut rng()),
        SendEventOutcome::NotOpen
    );
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn a_peer_close_ends_the_connection_without_further_output() {
    let mut c = open_plain();
    c.handle_peer_close(T0);
    assert!(c.is_closed());
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(T0 + Duration::from_secs(100), WALL);
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn the_jwt_acl_claim_is_the_default_and_set_topic_acl_overrides_it() {
    let claims = json!({"sub":"bob","exp": WALL.unix_secs() + 60, "wse_topics": {"allow":["chat:*"],"deny":[]}});
    let t = encode_jwt(
        claims.as_object().unwrap(),
        SECRET,
        JwtAlgorithm::Hs256,
        None,
    )
    .unwrap();
    let bearer = format!("Bearer {t}");
    let mut c = accept(
        jwt_settings(),
        Handshake {
            authorization: Some(bearer.as_bytes()),
            ..Default::default()
        },
    );
    drain(&mut c);
    let acl = c.topic_acl().expect("claim ACL");
    assert!(acl.allows_topic("chat:lobby") && !acl.allows_topic("admin"));
    c.set_topic_acl(TopicAcl::new(vec!["admin".into()], vec![]));
    assert!(c.topic_acl().unwrap().allows_topic("admin"));
}

#[test]
fn the_same_seed_and_inputs_give_the_same_outputs() {
    let run = || {
        let t = valid_token();
        let cookie = format!("access_token={t}");
        let mut c = Connection::accept(
            jwt_settings(),
            &Handshake {
                cookie: Some(cookie.as_bytes()),
                ..Default::default()
            },
            T0,
            WALL,
            &mut ChaCha8Rng::seed_from_u64(9),
        );
        c.send_event(
            T0,
            WALL,
            &event(json!({"t":"x"})),
            0,
            1,
            &mut ChaCha8Rng::seed_from_u64(10),
        );
        (c.id(), drain(&mut c))
    };
    assert_eq!(run(), run());
}

#[test]
fn close_reasons_are_truncated_to_fit_a_control_frame_on_a_char_boundary() {
    let long = "é".repeat(100);
    let r = truncate_reason(&long);
    assert!(r.len() <= 123 && r.chars().all(|c| c == 'é'));
}
