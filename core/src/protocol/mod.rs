//! The client wire format (UPSTREAM §2–3, CONTRACT D12) as typed values and pure functions.
//!
//! Inputs are frame payloads and plain values; outputs are classifications, typed envelopes and
//! exact frame bytes. Nothing here holds state, reads a clock or draws randomness: timestamps
//! ([`WallClock`](crate::time::WallClock)), ids and sequence numbers are parameters.
//!
//! | module | owns |
//! |---|---|
//! | [`frame`] | [`Frame`]: one outbound WebSocket data frame |
//! | [`category`] | [`Category`] (`c`), the type → category rule, legacy `WSE{`/`S{`/`U{` prefixes |
//! | [`envelope`] | [`Envelope`]: the typed `c t p id ts seq v pri cid sig tp e o` envelope |
//! | [`inbound`] | classification of client text and binary frames |
//! | [`system`] | exact text of every server-built system message |
//! | [`inject`] | category injection into broadcast strings |
//! | [`outbound`] | the `send_event` envelope and its JSON / `C:` / `M:` encoding |
//! | [`msgpack`] | bounded msgpack ⇄ JSON |
//! | [`zlib`] | zlib compression and capped decompression |
//!
//! Invariants: no peer input panics; every decoder is bounded (decompression by a caller cap,
//! msgpack nesting by an iterative pre-scan); JSON object keys serialize alphabetically (the
//! original's order) except in the hand-ordered system messages, whose bytes are pinned by tests.

pub mod category;
pub mod envelope;
pub mod frame;
pub mod inbound;
pub mod inject;
pub mod msgpack;
pub mod outbound;
pub mod system;
pub mod zlib;

pub use category::{Category, strip_legacy_prefix};
pub use envelope::{Envelope, EnvelopeError, Stamp};
pub use frame::Frame;
pub use inbound::{
    BinaryInbound, ClientHello, InboundError, TextInbound, classify_binary, classify_text,
};
pub use inject::inject_category;
pub use msgpack::{MsgpackError, json_to_msgpack, msgpack_to_json};
pub use outbound::{EventFormat, build_event_envelope, encode_event};
pub use system::{
    ErrorCode, PresenceKind, ServerHello, ServerReady, error_frame, key_exchange_failed, pong,
    presence_event, rate_limit_warning, rate_limited_error, server_hello, server_ping,
    server_ready,
};
pub use zlib::{DecompressError, zlib_compress, zlib_decompress_capped};
