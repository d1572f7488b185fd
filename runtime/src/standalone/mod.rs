//! The standalone `wse` server (binary `wse`, `src/bin/wse.rs`): WSE as a complete server without
//! an embedding application, the way Centrifugo is.
//!
//! | module | owns |
//! |---|---|
//! | `config` | `StandaloneConfig`: every server option from TOML, environment and flags |
//! | `app` | the built-in client protocol: `subscription_update` (with recovery) answered by the server, optional client publish |
//! | `http_api` | the HTTP API on the WebSocket port (`Authorization: apikey …`) |
//! | `console` | the live console page, static files embedded in the binary |
//! | `claims` | the claims of the tokens the server mints |
//!
//! Everything here is a client of [`crate::server::Server`]: no private access to the engine.

pub mod app;
pub mod claims;
pub mod config;
pub mod console;
pub mod http_api;

use std::sync::Arc;

use crate::http::{DEFAULT_MAX_BODY_BYTES, HttpService};

/// The HTTP service of the `wse` binary's port: the HTTP API (key from `config.api_key`; none
/// configured means no HTTP API, plain requests then get `426`) and, unless disabled, the
/// console page at `/console`.
pub fn http_service(config: &config::StandaloneConfig) -> Option<Arc<dyn HttpService>> {
    let api_key = config.api_key.clone()?;
    let static_files: Option<http_api::StaticFiles> = config.console.then_some(console::asset);
    Some(Arc::new(http_api::ApiService::new(http_api::ApiOptions {
        api_key,
        jwt: config.server.jwt.clone(),
        static_files,
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
    })))
}
