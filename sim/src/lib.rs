//! # wse-sim: the real WSE runtime and clients under simulated faults
//!
//! A run is a seed and a [`scenario::Scenario`]: server hosts run the real runtime through
//! the network seam ([`net::SimListener`]), client hosts run the Rust client
//! ([`wse_runtime::client`]) over [`net::SimDialer`], and turmoil's network partitions,
//! holds, delays, loses and crashes between them on the scenario's timeline. With several
//! servers they form a cluster over [`net::SimConnector`], clients spread over the nodes and
//! fail over, and each topic is published by one origin node. The [`check`]ers read the
//! [`trace`]; the same seed gives the same trace digest.
//!
//! The CLI (`cargo run -p wse-sim -- run --seed N`) runs one simulation per process and
//! re-executes itself for sweeps and determinism checks; see `docs/testing.md`.

#![forbid(unsafe_code)]

pub mod check;
pub mod net;
pub mod run;
pub mod scenario;
pub mod trace;
