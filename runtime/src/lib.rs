//! # wse-runtime: the tokio driver of WSE
//!
//! Sockets, tasks and the fan-out path around the `wse-core` machines. This first part holds the
//! HTTP upgrade ([`upgrade`]) and the post-upgrade WebSocket framing ([`wsframe`]) that let
//! each socket keep exactly one writer; the network seam ([`net`]) and the accept path and
//! connection tasks ([`server`]) drive the core machines.

#![forbid(unsafe_code)]

pub mod client;
pub mod cluster;
pub mod http;
pub mod net;
pub mod server;
pub mod standalone;
pub mod stats;
pub mod topics;
pub mod upgrade;
pub mod wsframe;
