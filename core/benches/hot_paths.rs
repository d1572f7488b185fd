//! Per-message costs of the core's hot paths, measured on demand (no test asserts a speed):
//!
//! ```sh
//! cargo bench -p wse-core --bench hot_paths
//! ```
//!
//! | group | what one iteration is |
//! |---|---|
//! | `encode_event` | one `send_event` envelope to a binary frame payload: JSON, `C:`+zlib, `M:`+msgpack |
//! | `classify_text` | one client text frame through the server's inbound parse |
//! | `recovery_publish` | one publish into a full ring: stamp, copy, store (overwrites the oldest) |
//! | `recovery_since` | one §8.3 lookup: replay of 10 or 100 missed messages, or `NotRecovered` |
//! | `jwt_validate` | one handshake token checked: signature, time and claims, `sub`, ACL |
//!
//! Frame building and fan-out enqueue are in `runtime/benches/framing.rs`. Inputs follow the
//! wire format of UPSTREAM §2: alphabetical envelope keys, a UUIDv7 `id`, millisecond `ts`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng as _;
use rsa::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::{Map, Value, json};
use wse_core::auth::{JwtValidator, encode_jwt};
use wse_core::config::{JwtAlgorithm, JwtSettings};
use wse_core::protocol::{EventFormat, build_event_envelope, classify_text, encode_event};
use wse_core::recovery::{Epoch, Recovery, RecoveryConfig, RecoveryStore};
use wse_core::{Instant, WallClock};

/// 2026-11-27T00:00:00Z: the wall clock every envelope and token is stamped or checked at.
const NOW_MILLIS: u64 = 1_795_737_600_000;
const NOW_SECS: u64 = NOW_MILLIS / 1000;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("bench input is not an object: {other}"),
    }
}

/// A small update (140 B of envelope JSON) and an order-book snapshot of 1055 B: the default
/// threshold (1024, strictly greater) compresses the second and not the first.
fn events() -> [(&'static str, Map<String, Value>); 2] {
    let small = json!({"t": "tick", "p": {"s": "ACME", "px": 101.25}});
    let level = |i: u32| json!([100.0 + f64::from(i) * 0.05, 100 + i * 25]);
    let large = json!({
        "t": "orderbook_snapshot",
        "pri": 8,
        "p": {
            "symbol": "ACME",
            "bids": (0..34).map(level).collect::<Vec<_>>(),
            "asks": (34..68).map(level).collect::<Vec<_>>(),
        },
    });
    [("small", object(small)), ("1k", object(large))]
}

/// The envelope `send_event` would build for `event` (fixed id, seq and clock).
fn envelope(event: &Map<String, Value>) -> Map<String, Value> {
    build_event_envelope(
        event,
        || "019ac3e2-5c00-7a3b-8f21-4d2c9e8b7a10".to_owned(),
        41,
        WallClock::from_unix_millis(NOW_MILLIS),
    )
}

fn envelope_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_event");
    let json_only = EventFormat {
        msgpack: false,
        compression_threshold: 0,
    };
    let msgpack = EventFormat {
        msgpack: true,
        ..EventFormat::default()
    };
    for (size, event) in events() {
        let env = envelope(&event);
        let json_len = serde_json::to_vec(&env).map_or(0, |v| v.len());
        // The sizes the docs quote.
        assert!(
            matches!((size, json_len), ("small", 140) | ("1k", 1055)),
            "{size}: {json_len} B"
        );
        let mut formats = vec![("json", json_only), ("msgpack", msgpack)];
        // Only what the default threshold compresses: a `C:` frame of a small event never exists.
        if json_len > EventFormat::default().compression_threshold {
            formats.push(("zlib", EventFormat::default()));
        }
        group.throughput(Throughput::Bytes(json_len as u64));
        for (name, format) in formats {
            group.bench_with_input(BenchmarkId::new(name, size), &env, |b, env| {
                b.iter(|| encode_event(black_box(env), black_box(format)));
            });
        }
    }
    group.finish();
}

/// Client text frames as the Python client sends them (its own uuid4 `id`, `ts`, `seq`, `c`):
/// a 160 B chat message and a 1043 B order.
fn client_frames() -> [(&'static str, String); 2] {
    let small = r#"{"c":"U","id":"6f1c2a8e-3b4d-4e5f-9a6b-7c8d9e0f1a2b","p":{"room":"lobby","text":"hello there"},"seq":3,"t":"chat_message","ts":"2026-11-27T00:00:00.000Z","v":1}"#;
    let items: Vec<Value> = (0..17)
        .map(|i| json!({"sku": format!("SKU-{i:05}"), "qty": i + 1, "price": 9.99 + f64::from(i)}))
        .collect();
    let large = json!({
        "c": "U",
        "id": "6f1c2a8e-3b4d-4e5f-9a6b-7c8d9e0f1a2b",
        "p": {"order_id": "ord-20261127-0001", "items": items, "note": "leave at the door"},
        "seq": 4,
        "t": "order_submit",
        "ts": "2026-11-27T00:00:00.000Z",
        "v": 1,
    });
    [("small", small.to_owned()), ("1k", large.to_string())]
}

fn inbound_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("classify_text");
    for (size, frame) in client_frames() {
        let len = frame.len();
        assert!(
            matches!((size, len), ("small", 160) | ("1k", 1043)),
            "{size}: {len} B"
        );
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &frame, |b, frame| {
            b.iter(|| classify_text(black_box(frame)));
        });
    }
    group.finish();
}

const TOPIC: &str = "prices:ACME";
/// A broadcast after category injection, as `publish` receives it.
const BROADCAST: &str =
    r#"{"c":"U","t":"price_update","p":{"symbol":"ACME","price":101.25,"size":300}}"#;

/// The runtime wraps the stamped text in a WebSocket frame here; that cost is in the framing
/// bench, so this frame is the bare copy.
fn copy_frame(stamped: &str) -> Bytes {
    Bytes::copy_from_slice(stamped.as_bytes())
}

/// A store with one ring of `ring_size` slots on [`TOPIC`], the original's other defaults, and
/// `published` messages in it.
fn filled_store(ring_size: usize, published: usize) -> RecoveryStore {
    let mut store = RecoveryStore::new(RecoveryConfig {
        buffer_size: ring_size,
        ttl: Duration::from_secs(300),
        max_messages: 500,
        memory_budget: 256 << 20,
    });
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for _ in 0..published {
        let _ = store.publish(TOPIC, BROADCAST, Instant::ZERO, &mut rng, copy_frame);
    }
    store
}

fn recovery_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery_publish");
    for ring_size in [128usize, 1024] {
        // Full ring: every measured publish evicts the oldest, the steady state of a busy topic.
        let mut store = filled_store(ring_size, ring_size);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        group.bench_function(BenchmarkId::new("full_ring", ring_size), |b| {
            b.iter(|| {
                store.publish(
                    black_box(TOPIC),
                    black_box(BROADCAST),
                    Instant::ZERO,
                    &mut rng,
                    copy_frame,
                )
            });
        });
    }
    group.finish();
}

fn recovery_since(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery_since");
    // The default ring (128) after it has wrapped: offsets 72..=199 are stored.
    let store = filled_store(128, 200);
    let Some((epoch, last)) = store.position(TOPIC) else {
        panic!("the ring was just filled");
    };
    for missed in [10u64, 100] {
        let after = last - missed;
        let answer = store.since(TOPIC, epoch, after);
        assert!(
            matches!(&answer, Recovery::Recovered { messages, .. } if messages.len() as u64 == missed)
        );
        group.bench_function(BenchmarkId::new("recovered", missed), |b| {
            b.iter(|| store.since(black_box(TOPIC), black_box(epoch), black_box(after)));
        });
    }
    let not_recovered = [
        // The client's epoch is from before a ring drop (restart, TTL, budget).
        ("not_recovered/epoch_changed", Epoch(epoch.0 ^ 1), last - 10),
        // Same epoch, but the missed range starts before the oldest stored offset.
        ("not_recovered/evicted", epoch, 10),
    ];
    for (name, client_epoch, after) in not_recovered {
        assert!(matches!(
            store.since(TOPIC, client_epoch, after),
            Recovery::NotRecovered { .. }
        ));
        group.bench_function(name, |b| {
            b.iter(|| store.since(black_box(TOPIC), black_box(client_epoch), black_box(after)));
        });
    }
    group.finish();
}

/// Key pairs made as `core/src/auth/jwt_tests.rs` makes them: from a fixed seed, never from disk.
/// Returns `(private PKCS#8 PEM, public SPKI PEM)`.
fn rsa_pem_pair() -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA-2048 key generation");
    let private = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM");
    (private.as_bytes().to_vec(), public.into_bytes())
}

fn ec_pem_pair() -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let key = p256::SecretKey::random(&mut rng);
    let private = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM");
    let public = key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM");
    (private.as_bytes().to_vec(), public.into_bytes())
}

fn jwt_validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("jwt_validate");
    let claims = object(json!({
        "sub": "user-42",
        "iat": NOW_SECS - 60,
        "exp": NOW_SECS + 3600,
        "iss": "https://auth.example.invalid",
        "aud": "wse",
        "wse_topics": {"allow": ["prices:*", "chat:lobby"], "deny": ["chat:admin"]},
    }));
    let hs_secret = b"0123456789abcdef0123456789abcdef".to_vec();
    let (rsa_private, rsa_public) = rsa_pem_pair();
    let (ec_private, ec_public) = ec_pem_pair();
    let keys = [
        (JwtAlgorithm::Hs256, hs_secret.clone(), hs_secret),
        (JwtAlgorithm::Es256, ec_private, ec_public),
        (JwtAlgorithm::Rs256, rsa_private, rsa_public),
    ];
    let now = WallClock::from_unix_millis(NOW_MILLIS);
    for (algorithm, private, public) in keys {
        let token = encode_jwt(&claims, &private, algorithm, Some("k1")).expect("bench token");
        let validator = JwtValidator::new(&JwtSettings {
            secret: public,
            algorithm,
            issuer: Some("https://auth.example.invalid".into()),
            audience: Some("wse".into()),
            key_id: Some("k1".into()),
            ..JwtSettings::default()
        })
        .expect("bench validator");
        assert!(validator.validate(&token, now).is_ok(), "{algorithm} token");
        group.bench_function(algorithm.as_str(), |b| {
            b.iter(|| validator.validate(black_box(&token), black_box(now)));
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    envelope_encode,
    inbound_decode,
    recovery_publish,
    recovery_since,
    jwt_validation
);
criterion_main!(benches);
