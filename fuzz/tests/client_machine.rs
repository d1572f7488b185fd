//! Fuzz target: operation sequences against the Rust client machine
//! (`wse_core::client::Client`), the decoder of everything a server sends to our client.
//!
//! Input: steps — connection events (connected, failed, closed with a code or a network error),
//! time passing plus `handle_timeout`, server frames (stamped messages on three topics and three
//! epochs with nearby offsets, subscription acks with recovered true/false/null epochs,
//! `server_ready`, pings, batches, `C:` frames, zlib bombs, arbitrary text and bytes) and
//! application commands (subscribe, unsubscribe, send, close). Invariants after every step:
//!
//! - per topic, stamped deliveries strictly increase in offset within an epoch, and no
//!   `(topic, epoch, offset)` is ever delivered twice;
//! - a topic's position only moves forward within its epoch;
//! - after `handle_timeout(now)`, the next deadline (if any) is in the future;
//! - one step never produces an unbounded number of outputs;
//! - once `Closed` or `Failed`, nothing but `start` brings back a `Connect`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bolero::TypeGenerator;
use serde_json::json;
use wse_core::client::{Client, ClientConfig, Event, Output, Position};
use wse_core::protocol::zlib_compress;
use wse_core::{Instant, WallClock};

const TOPICS: [&str; 3] = ["a", "b", "room:c"];
const EPOCHS: [u32; 3] = [0x1, 0xabcd_0001, 0xffff_ffff];
const CODES: [u16; 9] = [1000, 1001, 1005, 1006, 1011, 1013, 4300, 4401, 4429];

#[derive(Debug, TypeGenerator)]
enum Op {
    Start,
    Connected,
    ConnectFailed,
    Closed(Option<u8>),
    Advance(u16),
    Ready,
    Stamped {
        topic: u8,
        epoch: u8,
        offset: u8,
    },
    Ack {
        topic: u8,
        recovered: Option<bool>,
        epoch: Option<u8>,
        offset: u8,
    },
    Ping,
    Batch {
        topic: u8,
        epoch: u8,
        first: u8,
        n: u8,
    },
    Compressed {
        topic: u8,
        epoch: u8,
        offset: u8,
    },
    Bomb(u8),
    Text(String),
    Binary(Vec<u8>),
    Subscribe(u8),
    Unsubscribe(u8),
    Send(String),
    Close,
}

fn stamped(topic: &str, epoch: u32, offset: u64) -> String {
    json!({"c": "U", "t": "tick", "tp": topic, "e": format!("{epoch:08x}"), "o": offset,
           "id": format!("{topic}-{epoch}-{offset}"), "p": {"n": offset}})
    .to_string()
}

#[test]
fn client_machine() {
    bolero::check!()
        .with_type::<Vec<Op>>()
        .for_each(|ops: &Vec<Op>| {
            let config = ClientConfig {
                topics: vec!["a".into(), "b".into()],
                ..ClientConfig::default()
            };
            let mut c = Client::new(config, WallClock::from_unix_millis(1_764_000_000_000), 7)
                .expect("valid config");
            let mut now = Instant::from_secs(1);
            let mut last: BTreeMap<String, (u32, u64)> = BTreeMap::new();
            let mut seen: BTreeSet<(String, u32, u64)> = BTreeSet::new();
            let mut terminal = false;
            c.start(now);
            for op in ops {
                let before: BTreeMap<String, Position> = c.positions().clone();
                let mut timed_out = false;
                match op {
                    Op::Start => {
                        c.start(now);
                        terminal = false;
                    }
                    Op::Connected => c.handle_connected(now),
                    Op::ConnectFailed => c.handle_connect_failed(now),
                    Op::Closed(code) => {
                        c.handle_closed(now, code.map(|i| CODES[usize::from(i) % CODES.len()]));
                    }
                    Op::Advance(ms) => {
                        now = now + Duration::from_millis(u64::from(*ms) * 7);
                        c.handle_timeout(now);
                        timed_out = true;
                    }
                    Op::Ready => c.handle_text(
                        now,
                        &json!({"c": "WSE", "t": "server_ready",
                                "p": {"connection_id": "x", "features": {"recovery": true}}})
                        .to_string(),
                    ),
                    Op::Stamped {
                        topic,
                        epoch,
                        offset,
                    } => c.handle_text(
                        now,
                        &stamped(
                            TOPICS[usize::from(*topic) % 3],
                            EPOCHS[usize::from(*epoch) % 3],
                            u64::from(*offset),
                        ),
                    ),
                    Op::Ack {
                        topic,
                        recovered,
                        epoch,
                        offset,
                    } => {
                        let t = TOPICS[usize::from(*topic) % 3];
                        let mut entry = json!({
                            "epoch": epoch.map(|e| format!("{:08x}", EPOCHS[usize::from(e) % 3])),
                            "offset": offset,
                            "count": 1,
                        });
                        if let Some(r) = recovered {
                            entry["recovered"] = json!(r);
                        }
                        c.handle_text(
                            now,
                            &json!({"c": "WSE", "t": "subscription_update",
                                    "p": {"success": true, "success_topics": [t],
                                          "failed_topics": [], "recovery": {t: entry}}})
                            .to_string(),
                        );
                    }
                    Op::Ping => c.handle_text(
                        now,
                        r#"{"c":"WSE","t":"ping","p":{"server_time":"2026-01-01T00:00:00.000Z"}}"#,
                    ),
                    Op::Batch {
                        topic,
                        epoch,
                        first,
                        n,
                    } => {
                        let t = TOPICS[usize::from(*topic) % 3];
                        let e = EPOCHS[usize::from(*epoch) % 3];
                        let messages: Vec<serde_json::Value> = (0..u64::from(*n % 8))
                            .map(|i| {
                                serde_json::from_str(&stamped(t, e, u64::from(*first) + i))
                                    .expect("json")
                            })
                            .collect();
                        c.handle_text(
                            now,
                            &json!({"t": "batch", "p": {"messages": messages}}).to_string(),
                        );
                    }
                    Op::Compressed {
                        topic,
                        epoch,
                        offset,
                    } => {
                        let text = stamped(
                            TOPICS[usize::from(*topic) % 3],
                            EPOCHS[usize::from(*epoch) % 3],
                            u64::from(*offset),
                        );
                        let frame = [b"C:".as_slice(), &zlib_compress(text.as_bytes(), 1)].concat();
                        c.handle_binary(now, &frame);
                    }
                    Op::Bomb(k) => {
                        // Up to 4 MiB of zeros: over the 1 MiB cap from k = 64 on.
                        let zeros = vec![0u8; (usize::from(*k) + 1) << 14];
                        let frame = [b"C:".as_slice(), &zlib_compress(&zeros, 9)].concat();
                        c.handle_binary(now, &frame);
                    }
                    Op::Text(s) => c.handle_text(now, s),
                    Op::Binary(b) => c.handle_binary(now, b),
                    Op::Subscribe(t) => {
                        c.subscribe(now, &[TOPICS[usize::from(*t) % 3].to_owned()]);
                    }
                    Op::Unsubscribe(t) => {
                        let topic = TOPICS[usize::from(*t) % 3];
                        c.unsubscribe(now, &[topic.to_owned()]);
                        last.remove(topic);
                    }
                    Op::Send(s) => {
                        let _ = c.send(now, "chat", json!({"text": s}));
                    }
                    Op::Close => c.close(now),
                }
                let mut outputs = 0usize;
                while let Some(out) = c.poll_output() {
                    outputs += 1;
                    assert!(
                        outputs < 10_000,
                        "one step produced unbounded outputs: {op:?}"
                    );
                    match out {
                        Output::Connect => {
                            assert!(!terminal, "Connect after the machine ended: {op:?}");
                        }
                        Output::Event(Event::Message(d)) => {
                            let Some(s) = &d.envelope.stamp else { continue };
                            let key = (s.topic.clone(), s.epoch, s.offset);
                            assert!(seen.insert(key), "delivered twice: {s:?}");
                            if let Some((e, o)) = last.get(&s.topic) {
                                if *e == s.epoch {
                                    assert!(s.offset > *o, "offset went back: {s:?} after {o}");
                                }
                            }
                            last.insert(s.topic.clone(), (s.epoch, s.offset));
                        }
                        _ => {}
                    }
                }
                terminal = c.state().is_terminal();
                for (topic, after) in c.positions() {
                    if let Some(b) = before.get(topic)
                        && b.epoch == after.epoch
                    {
                        assert!(
                            after.offset >= b.offset,
                            "{topic}: position went back from {b:?} to {after:?} on {op:?}"
                        );
                    }
                }
                if timed_out && let Some(next) = c.poll_timeout() {
                    assert!(
                        next > now,
                        "deadline {next:?} not after {now:?} once handled"
                    );
                }
            }
        });
}
