//! The HTTP/1.1 WebSocket upgrade (RFC 6455 §4.2), parsed and answered by hand so the runtime
//! owns the raw socket from the first byte: it can refuse with a real HTTP status before the
//! upgrade (503 + `Retry-After` at the connection cap, CONTRACT D6; 400 for a request that is not
//! a WebSocket upgrade), and afterwards exactly one writer ever touches the socket.
//!
//! Parsing is `httparse`'s, the accept key is tungstenite's ([`derive_accept_key`]). Limits: the
//! request head is at most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] headers; anything
//! larger is refused with 431.

use tungstenite::handshake::derive_accept_key;

/// Largest accepted request head (request line + headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// What the upgrade request carried that the core machine needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request path (any path is accepted; clients use `/wse`).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// `Cookie` header bytes (several `Cookie` headers are joined with `; `).
    pub cookie: Option<Vec<u8>>,
    /// `Authorization` header bytes.
    pub authorization: Option<Vec<u8>>,
    /// `Origin` header bytes.
    pub origin: Option<Vec<u8>>,
    /// `Sec-WebSocket-Key`.
    pub key: Vec<u8>,
}

impl UpgradeRequest {
    /// The handshake view the core's connection machine takes.
    pub fn handshake(&self) -> wse_core::conn::Handshake<'_> {
        wse_core::conn::Handshake {
            cookie: self.cookie.as_deref(),
            authorization: self.authorization.as_deref(),
            origin: self.origin.as_deref(),
            query: self.query.as_deref(),
        }
    }

    /// The `101 Switching Protocols` response for this request.
    pub fn accept_response(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(&self.key)
        )
        .into_bytes()
    }
}

/// A request the server refuses before upgrading, with the HTTP status to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Not parseable HTTP/1.x.
    #[error("malformed HTTP request")]
    Malformed,
    /// The head is larger than [`MAX_HEAD_BYTES`] or has too many headers.
    #[error("request head too large")]
    TooLarge,
    /// Not a `GET` with `Upgrade: websocket`, `Connection: upgrade`, version 13 and a key.
    #[error("not a WebSocket upgrade request")]
    NotWebSocket,
}

impl UpgradeError {
    /// The HTTP response to send before closing the socket.
    pub fn response(self) -> Vec<u8> {
        match self {
            UpgradeError::Malformed => http_error(400, "Bad Request", &[]),
            UpgradeError::TooLarge => http_error(431, "Request Header Fields Too Large", &[]),
            UpgradeError::NotWebSocket => http_error(
                426,
                "Upgrade Required",
                &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")],
            ),
        }
    }
}

/// `503 Service Unavailable` with `Retry-After` (CONTRACT D6): the connection cap is reached.
pub fn service_unavailable(retry_after_secs: u32) -> Vec<u8> {
    http_error(
        503,
        "Service Unavailable",
        &[("Retry-After", &retry_after_secs.to_string())],
    )
}

fn http_error(status: u16, reason: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out =
        format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A plain HTTP request head (not a WebSocket upgrade).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlainRequest {
    /// The method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Every header in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// `Content-Length` (absent = 0). A request with `Transfer-Encoding` is refused as
    /// malformed: bodies must state their length.
    pub content_length: usize,
}

/// What a request head turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A WebSocket upgrade.
    Upgrade(UpgradeRequest),
    /// Anything else.
    Plain(PlainRequest),
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((request, n)))`: the head is the first `n` bytes; what follows is WebSocket data.
/// A request that is not an upgrade is [`UpgradeError::NotWebSocket`].
pub fn parse(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, UpgradeError> {
    match parse_any(buf)? {
        None => Ok(None),
        Some((Request::Upgrade(u), n)) => Ok(Some((u, n))),
        Some((Request::Plain(_), _)) => Err(UpgradeError::NotWebSocket),
    }
}

/// Parses a request head that may be a WebSocket upgrade or a plain HTTP request (the same
/// size limits apply to both). What follows the head (`n` bytes) is WebSocket data or the body.
pub fn parse_any(buf: &[u8]) -> Result<Option<(Request, usize)>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(UpgradeError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(UpgradeError::TooLarge),
        Err(_) => return Err(UpgradeError::Malformed),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(UpgradeError::TooLarge);
    }
    let method = req.method.unwrap_or("GET");
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (target, None),
    };
    let mut out = UpgradeRequest {
        path: path.to_owned(),
        query: query.clone(),
        ..Default::default()
    };
    let (mut upgrade, mut connection, mut version) = (false, false, false);
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version |= value.trim_ascii() == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            out.key = value.trim_ascii().to_vec();
        } else if name.eq_ignore_ascii_case("cookie") {
            match &mut out.cookie {
                Some(c) => {
                    c.extend_from_slice(b"; ");
                    c.extend_from_slice(value);
                }
                None => out.cookie = Some(value.to_vec()),
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            out.authorization.get_or_insert_with(|| value.to_vec());
        } else if name.eq_ignore_ascii_case("origin") {
            out.origin.get_or_insert_with(|| value.to_vec());
        } else if name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(UpgradeError::Malformed)?;
            // Two different lengths are a request-smuggling shape: refuse.
            if content_length.is_some_and(|l| l != parsed) {
                return Err(UpgradeError::Malformed);
            }
            content_length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if method == "GET" && upgrade && connection && version && !out.key.is_empty() {
        return Ok(Some((Request::Upgrade(out), head_len)));
    }
    if chunked {
        return Err(UpgradeError::Malformed);
    }
    let plain = PlainRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        content_length: content_length.unwrap_or(0),
    };
    Ok(Some((Request::Plain(plain), head_len)))
}

/// True if the comma-separated header `value` lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /wse?client_version=2.0.7&format=msgpack HTTP/1.1\r\nHost: x\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: a=1\r\nCookie: access_token=t\r\n\
        Authorization: Bearer t\r\nOrigin: https://app.example.com\r\n\r\n";

    #[test]
    fn a_websocket_upgrade_is_parsed_with_what_the_core_needs() {
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80]); // a pipelined frame stays unread
        let (req, n) = parse(&bytes).unwrap().unwrap();
        assert_eq!(n, GOOD.len());
        assert_eq!(req.path, "/wse");
        assert_eq!(
            req.query.as_deref(),
            Some("client_version=2.0.7&format=msgpack")
        );
        assert_eq!(req.cookie.as_deref(), Some(&b"a=1; access_token=t"[..]));
        assert_eq!(req.authorization.as_deref(), Some(&b"Bearer t"[..]));
        assert_eq!(req.origin.as_deref(), Some(&b"https://app.example.com"[..]));
        let resp = String::from_utf8(req.accept_response()).unwrap();
        // RFC 6455 §1.3's worked example.
        assert!(
            resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{resp}"
        );
        assert!(resp.starts_with("HTTP/1.1 101 "));
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        for cut in [0, 10, GOOD.len() - 1] {
            assert_eq!(parse(&GOOD.as_bytes()[..cut]), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn requests_that_are_not_upgrades_are_refused_with_a_status() {
        let cases = [
            (
                "POST /wse HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
                UpgradeError::NotWebSocket,
            ),
            (
                "GET /wse HTTP/1.1\r\nHost: x\r\n\r\n",
                UpgradeError::NotWebSocket,
            ),
            (
                "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: k\r\n\r\n",
                UpgradeError::NotWebSocket,
            ),
            ("\x00\x00\x00\x10garbage\r\n\r\n", UpgradeError::Malformed),
        ];
        for (req, want) in cases {
            assert_eq!(parse(req.as_bytes()), Err(want), "{req:?}");
        }
        assert!(
            String::from_utf8(UpgradeError::NotWebSocket.response())
                .unwrap()
                .starts_with("HTTP/1.1 426 ")
        );
    }

    #[test]
    fn an_endless_head_is_refused_at_the_limit() {
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD_BYTES {
            big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse(&big), Err(UpgradeError::TooLarge));
    }

    #[test]
    fn the_connection_cap_answer_is_503_with_retry_after() {
        let r = String::from_utf8(service_unavailable(5)).unwrap();
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(r.contains("Retry-After: 5\r\n"));
    }
}
