//! The cluster peer protocol pieces (UPSTREAM §10, issue 11): what a peer-link machine and the
//! runtime mesh are built from.
//!
//! | module | owns |
//! |---|---|
//! | [`frame`] | the peer frame codec: outer length, 8-byte header, the 13 message types, zstd, the streaming decoder, capabilities |
//! | [`breaker`] | the per-peer circuit breaker (10 failures → open 60 s → 3 half-open probes) |
//! | [`backoff`] | reconnect backoff (1 s × 1.5, cap 60 s, jitter `[0.8, 1.2)` from the injected entropy) |
//! | [`dlq`] | the bounded dead-letter queue of messages a peer could not take |
//! | [`interest`] | what each peer wants (SUB/UNSUB/RESYNC) and what this node wants (0→1 / 1→0 counts) |
//! | [`membership`] | who to dial, who is alive, when a departed peer is dead (gossip, incarnations) |
//! | [`presence_sync`] | presence CRDT entries in PresenceFull chunks (our `PRESENCE_SYNC` capability) |
//! | [`link`] | the peer-link machine: HELLO, heartbeat, routing under the negotiated capabilities, bounded queue |
//!
//! All of it is Sans-IO like the rest of the crate: no clock (time is an [`crate::Instant`]
//! input), no randomness of its own (jitter comes from an injected [`crate::rand::Entropy`]), no
//! I/O. `docs/cluster.md` has the frame tables and what is left to the link machine and the
//! runtime.

pub mod backoff;
pub mod breaker;
pub mod dlq;
pub mod frame;
pub mod interest;
pub mod link;
pub mod membership;
pub mod presence_sync;

pub use backoff::{Backoff, BackoffConfig};
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use dlq::{DeadLetter, DeadLetterQueue, DlqReason};
pub use frame::{
    Capabilities, EncodeError, FrameDecoder, FrameEncoder, FrameError, PeerFrame, PresenceAction,
    RecoveryTrailer,
};
pub use interest::{LocalInterest, PeerInterest};
pub use link::{Inbound, Link, LinkConfig, LinkError, Remote, Role, Routed};
