//! The HTTP API of the standalone server, on the WebSocket port (see `docs/http-api.md`).
//!
//! [`ApiService`] answers the plain HTTP requests the accept loop hands it:
//!
//! - `/console`, `/console/`, `/console/<file>`: the console's static files, from
//!   [`ApiOptions::static_files`], without a key (the page asks the operator for it);
//! - `/api/*`: every route needs `Authorization: apikey <key>` (401 otherwise, checked before
//!   the route is looked up so unauthenticated callers learn nothing about the routes), then
//!   the route (404), its one method (405 with `Allow`), the body limit (413), the body's
//!   `Content-Type` (415) and its fields (400);
//! - anything else: 404.
//!
//! Every error is `{"error": {"code", "message"}}`. The service holds no state of its own: it
//! reads and acts on the [`Server`] it is given, so it is a client of the public server API.

mod auth;
mod body;
mod error;
mod query;
mod reads;
mod routes;
mod token;
mod writes;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use wse_core::config::JwtSettings;

use self::error::ApiError;
use self::query::Query;
use self::routes::Route;
use crate::http::{DEFAULT_MAX_BODY_BYTES, HttpFuture, HttpRequest, HttpResponse, HttpService};
use crate::server::Server;

/// Looks up a console asset by its path after `/console/` (`index.html` for the page itself):
/// its content type and bytes.
pub type StaticFiles = fn(&str) -> Option<(&'static str, &'static [u8])>;

/// What the API needs to know.
#[derive(Clone)]
pub struct ApiOptions {
    /// The key every `/api/*` request must present (`Authorization: apikey <key>`); compared
    /// in constant time. An empty key refuses every request.
    pub api_key: String,
    /// The server's JWT settings; `/api/token` mints tokens only with an HS256 secret.
    pub jwt: Option<JwtSettings>,
    /// The console's static files; `None` serves no console (404).
    pub static_files: Option<StaticFiles>,
    /// Largest request body; a larger one is answered 413 unread (default 1 MiB).
    pub max_body_bytes: usize,
}

impl ApiOptions {
    /// Options with `api_key`, no JWT, no console and the default body limit.
    pub fn new(api_key: impl Into<String>) -> ApiOptions {
        ApiOptions {
            api_key: api_key.into(),
            jwt: None,
            static_files: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for ApiOptions {
    // The key never reaches logs (JwtSettings redacts its own secrets).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOptions")
            .field("api_key", &format_args!("<{} bytes>", self.api_key.len()))
            .field("jwt", &self.jwt)
            .field("static_files", &self.static_files.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// The HTTP API and console server; install with
/// [`ServerHandle::start_with_http`](crate::server::ServerHandle::start_with_http).
#[derive(Debug)]
pub struct ApiService {
    options: ApiOptions,
}

impl ApiService {
    /// The service for `options`.
    pub fn new(options: ApiOptions) -> ApiService {
        ApiService { options }
    }

    /// Answers one request (what [`HttpService::call`] does, without the future).
    pub fn respond(&self, server: &Server, request: &HttpRequest) -> HttpResponse {
        let path = request.path.as_str();
        let outcome = if path == "/console" || path.starts_with("/console/") {
            self.console(request)
        } else if path == "/api" || path.starts_with("/api/") {
            self.api(server, request)
        } else {
            Err(ApiError::not_found(path))
        };
        outcome.unwrap_or_else(ApiError::into_response)
    }

    fn api(&self, server: &Server, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        if !auth::is_authorized(request.header("authorization"), &self.options.api_key) {
            return Err(ApiError::unauthorized());
        }
        let route =
            Route::from_path(&request.path).ok_or_else(|| ApiError::not_found(&request.path))?;
        if request.method != route.method() {
            return Err(ApiError::method_not_allowed(&request.path, route.method()));
        }
        // The accept loop already refuses a larger Content-Length unread; this covers direct
        // callers of `respond`.
        if request.body.len() > self.options.max_body_bytes {
            return Err(ApiError::body_too_large(self.options.max_body_bytes));
        }
        match route {
            Route::Health => Ok(reads::health(server)),
            Route::Metrics => Ok(reads::metrics(server)),
            Route::Info => Ok(reads::info(server)),
            Route::Presence => reads::presence(server, &Query::parse(request.query.as_deref())?),
            Route::PresenceStats => {
                reads::presence_stats(server, &Query::parse(request.query.as_deref())?)
            }
            Route::History => reads::history(server, &Query::parse(request.query.as_deref())?),
            Route::Publish => writes::publish(server, &body::json_object(request)?),
            Route::Broadcast => writes::broadcast(server, &body::json_object(request)?),
            Route::Disconnect => writes::disconnect(server, &body::json_object(request)?),
            Route::Token => {
                let body = body::json_object(request)?;
                token::token(self.options.jwt.as_ref(), &body, unix_now_secs())
            }
        }
    }

    /// A console file: `/console` and `/console/` are `index.html`.
    fn console(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        if request.method != "GET" {
            return Err(ApiError::method_not_allowed(&request.path, "GET"));
        }
        let name = match request.path.strip_prefix("/console") {
            Some("" | "/") => "index.html",
            Some(rest) => rest.strip_prefix('/').unwrap_or(rest),
            None => return Err(ApiError::not_found(&request.path)),
        };
        let (content_type, bytes) = self
            .options
            .static_files
            .and_then(|files| files(name))
            .ok_or_else(|| ApiError::not_found(&request.path))?;
        Ok(HttpResponse::body(200, content_type, bytes))
    }
}

impl HttpService for ApiService {
    fn call(&self, server: Server, request: HttpRequest) -> HttpFuture {
        let response = self.respond(&server, &request);
        Box::pin(std::future::ready(response))
    }

    fn max_body_bytes(&self) -> usize {
        self.options.max_body_bytes
    }
}

/// Seconds since the Unix epoch (the `iat` of minted tokens); 0 if the clock is before 1970.
fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
