//! The standalone `wse` server (binary `wse`, `src/bin/wse.rs`): WSE as a complete server without
//! an embedding application, the way Centrifugo is.
//!
//! | module | owns |
//! |---|---|
//! | `config` | [`config::StandaloneConfig`]: every server option from TOML, environment and flags |
//! | `app` | the built-in client protocol: `subscription_update` (with recovery) answered by the server, optional client publish |
//! | `http_api` | the HTTP API on the WebSocket port (`Authorization: apikey …`) |
//! | `console` | the live console page, static files embedded in the binary |
//!
//! Everything here is a client of [`crate::server::Server`]: no private access to the engine.

pub mod app;
pub mod config;

use std::sync::Arc;

use crate::http::HttpService;

/// The HTTP service of the `wse` binary's port for `config`: the HTTP API (and console) are
/// wired in by the `http_api` module; until then plain HTTP requests get `426`.
pub fn http_service(config: &config::StandaloneConfig) -> Option<Arc<dyn HttpService>> {
    let _ = config;
    None
}
