//! # wse-runtime: the tokio driver of WSE
//!
//! Sockets, tasks and the fan-out path around the `wse-core` machines. This first part holds the
//! HTTP upgrade ([`upgrade`]) and the post-upgrade WebSocket framing ([`wsframe`]) that let
//! each socket keep exactly one writer; the listener, connection tasks and `ServerHandle`
//! follow (issue "wse-runtime").

#![forbid(unsafe_code)]

pub mod upgrade;
pub mod wsframe;
