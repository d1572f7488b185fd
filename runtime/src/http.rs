//! Plain HTTP on the WebSocket port: requests that are not WebSocket upgrades go to an optional
//! [`HttpService`] (the `wse` binary's HTTP API and console). One request per connection
//! (`Connection: close`), a bounded body, and the same upgrade timeout as WebSocket handshakes.
//! Without a service such requests are answered `426 Upgrade Required`, as before.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::server::Server;

/// Largest request body accepted by default; larger ones are answered 413 unread.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A plain HTTP request, head parsed and body read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Every header, in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (`Content-Length` bytes).
    pub body: Bytes,
}

impl HttpRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The value of query parameter `name` (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
}

/// A response: status, content type, extra headers and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> HttpResponse {
        HttpResponse {
            status,
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: Bytes::from(value.to_string()),
        }
    }

    /// `{"error": {"code": …, "message": …}}` with `status`.
    pub fn error(status: u16, code: &str, message: &str) -> HttpResponse {
        HttpResponse::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// A response with any body.
    pub fn body(status: u16, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
        HttpResponse {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The bytes on the wire (HTTP/1.1, `Connection: close`).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Header values come from the service; refuse to let one split the head.
            if !name.contains(['\r', '\n']) && !value.contains(['\r', '\n']) {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// The standard reason phrase of the codes this server uses.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The future an [`HttpService`] returns.
pub type HttpFuture = Pin<Box<dyn Future<Output = HttpResponse> + Send + 'static>>;

/// Answers the plain HTTP requests of the WebSocket port.
pub trait HttpService: Send + Sync + fmt::Debug + 'static {
    /// Handles one request, with the server to act on.
    fn call(&self, server: Server, request: HttpRequest) -> HttpFuture;

    /// The largest body accepted; a larger `Content-Length` gets 413 without being read.
    fn max_body_bytes(&self) -> usize {
        DEFAULT_MAX_BODY_BYTES
    }
}
