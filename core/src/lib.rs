//! # wse-core: the Sans-IO heart of the WSE WebSocket engine
//!
//! Everything here is a pure function or a state machine. Nothing reads a clock, opens a socket,
//! spawns a thread or draws OS randomness: time ([`time::Instant`], [`time::WallClock`]) and
//! randomness ([`rand::Entropy`]) are inputs supplied by the driver (the tokio runtime in
//! production, the turmoil simulator in tests). The same inputs always give the same outputs.
//!
//! Every machine speaks one grammar (see `docs/architecture.md`):
//!
//! - inputs: `handle_*(now, input)`; application commands are plain `&mut self` methods;
//! - outputs: `poll_*() -> Option<Output>`, drained until `None` after every input;
//! - time: `poll_timeout()` is the next deadline, `handle_timeout(now)` fires what is due and is
//!   harmless when called early or twice.
//!
//! Modules, one concept each:
//!
//! | module | owns |
//! |---|---|
//! | [`time`] | monotonic and wall-clock time as integer inputs |
//! | [`rand`] | the injected entropy source, UUIDv7 |
//! | [`ids`] | connection ids |
//! | [`config`] | the one typed, validated server configuration |
//! | [`limits`] | token buckets and bounded dedup windows |
//! | [`protocol`] | the client wire format: envelope, categories, system messages, framing |
//! | [`auth`] | token extraction, JWT validation, Origin allow-list, topic ACLs |
//! | [`crypto`] | E2E encryption (ECDH P-256, HKDF, AES-256-GCM `E:` records), replay protection, key rotation, signing |
//! | [`conn`] | the per-connection state machine |
//! | [`pubsub`] | topic registry, glob subscriptions, queue groups, fan-out targets |
//! | [`recovery`] | per-topic recovery rings: epochs, stamps, `since`, TTL, memory budget |
//! | [`presence`] | presence as a CRDT (per-origin LWW registers, hybrid logical clock) |
//! | [`client`] | the client machine: reconnect backoff, session handshake, recovery positions, dedup |
//! | [`cluster`] | the peer protocol pieces: frame codec (zstd), circuit breaker, reconnect backoff, dead-letter queue |

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod glob;
pub mod ids;
pub mod limits;
pub mod presence;
pub mod protocol;
pub mod pubsub;
pub mod rand;
pub mod recovery;
pub mod time;

pub use ids::ConnId;
pub use time::{Instant, WallClock};
