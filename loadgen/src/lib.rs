//! `wse-loadgen`: the load generator behind `docs/BENCHMARKS.md`.
//!
//! It drives any server that speaks the WSE wire protocol and the small **bench control
//! protocol** below: our `wse_server` and the original `wse-server` through
//! `loadgen/bench_server.py`, and the Rust runtime directly through `wse-loadgen serve`.
//!
//! goose orchestrates the users (one goose user owns one or more WebSocket connections), their
//! ramp-up and its own report; every WebSocket operation is recorded as a goose custom request
//! (`WS handshake`, `WS ping`). Server-push traffic (fan-out deliveries) is read by background
//! tasks that feed HDR histograms, and the server's CPU time and RSS come from `/proc`.
//!
//! ## Bench control protocol
//!
//! A connection whose JWT `sub` starts with `ctl-` sends JSON text messages; the server answers
//! each with one text frame:
//!
//! | request `t` | effect | answer `t` |
//! |---|---|---|
//! | `bench_stats` | none | `bench_stats` with `pid`, `impl`, `connections`, `subscribers` (of topic `bench`), `received` (inbound `in` messages), `dropped` (inbound queue drops), `first_us`/`last_us` (monotonic µs of the first/last `in` message drained); on a cluster node also `peers` (live peer links) and, where the server can tell, `routes` (live peers a publication on `bench` is routed to now: ours and the Rust bench server; the original cannot) |
//! | `bench_reset` | zeroes `received`, `first_us`, `last_us` | `bench_stats` |
//! | `bench_fanout` `{count, size, rate}` | publishes `count` messages `{"t":"bench","p":{"q":<seq>,"st":<µs since the epoch>,"pad":"…"}}` to topic `bench`, `rate` per second (0 = as fast as possible) | `bench_fanout_done` `{sent, elapsed_us}` |
//!
//! Connections whose `sub` starts with `f-` are subscribed to `bench` by the server when they
//! connect; every other connection is only held.

pub mod conn;
pub mod procfs;
pub mod scenarios;
pub mod serve;
pub mod stats;

/// The topic fan-out subscribers are put in.
pub const BENCH_TOPIC: &str = "bench";
