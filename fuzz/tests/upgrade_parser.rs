//! Fuzz target: the HTTP request-head parser in front of every socket
//! (`wse_runtime::upgrade::parse_any`).
//!
//! Input (see `wse_fuzz::split_mode`): raw bytes (the corpus holds real upgrade requests), or a
//! request built from fuzzed parts (method, target, header names from a
//! list that includes every header the parser reads, values, line endings) followed by fuzzed
//! trailing bytes (pipelined WebSocket data or a body). Invariants:
//!
//! - never a panic; the head length `n` satisfies `n <= input length` and `n <= MAX_HEAD_BYTES`;
//! - the head does not depend on what follows it: parsing just the first `n` bytes, or them
//!   followed by other bytes, gives the same request and `n`;
//! - incremental reading is sound: every strict prefix of a complete head is "incomplete"
//!   (`Ok(None)`), so the server never acts on half a head;
//! - `Ok(None)` only below `MAX_HEAD_BYTES`;
//! - a plain request's `content_length` is what its `Content-Length` header(s) say (0 when
//!   absent), and a request with `Transfer-Encoding` is never a plain request;
//! - an upgrade is a `GET` with a non-empty key and its 101 answer carries the accept key.

use bolero::TypeGenerator;
use wse_fuzz::{Mode, split_mode, structured};
use wse_runtime::upgrade::{MAX_HEAD_BYTES, Request, UpgradeError, parse_any};

#[derive(Debug, TypeGenerator)]
struct Built {
    method: u8,
    target: Vec<u8>,
    headers: Vec<(u8, Vec<u8>)>,
    /// Bare `\n` line endings instead of `\r\n`.
    bare_lf: bool,
    trailing: Vec<u8>,
}

const METHODS: [&str; 4] = ["GET", "POST", "get", "PUT"];

/// Names the parser reads (in several cases) plus one it ignores; an index past the list uses
/// the value bytes as `name: value` raw.
const NAMES: [&str; 12] = [
    "Upgrade",
    "connection",
    "Sec-WebSocket-Version",
    "sec-websocket-key",
    "Cookie",
    "Authorization",
    "Origin",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "Host",
    "X-Other",
];

/// Values that make the upgrade path reachable, indexed by the header's position in `NAMES`.
const GOOD_VALUES: [&str; 9] = [
    "websocket",
    "keep-alive, Upgrade",
    "13",
    "dGhlIHNhbXBsZSBub25jZQ==",
    "access_token=t",
    "Bearer t",
    "https://app.example",
    "5",
    "5",
];

impl Built {
    fn render(&self) -> Vec<u8> {
        let eol: &[u8] = if self.bare_lf { b"\n" } else { b"\r\n" };
        let mut out = Vec::new();
        out.extend_from_slice(METHODS[usize::from(self.method % 4)].as_bytes());
        out.extend_from_slice(b" /");
        out.extend(
            self.target
                .iter()
                .map(|b| b"wse?format=msgpack&a"[usize::from(*b) % 20]),
        );
        out.extend_from_slice(b" HTTP/1.1");
        out.extend_from_slice(eol);
        for (name, value) in &self.headers {
            let i = usize::from(*name);
            if i >= NAMES.len() * 2 {
                out.extend_from_slice(value); // a raw header line
            } else {
                let name_i = i % NAMES.len();
                out.extend_from_slice(NAMES[name_i].as_bytes());
                out.extend_from_slice(b": ");
                match GOOD_VALUES.get(name_i) {
                    // First half of the index range: the value that makes the header count.
                    Some(good) if i < NAMES.len() => out.extend_from_slice(good.as_bytes()),
                    _ => out.extend_from_slice(value),
                }
            }
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        out.extend_from_slice(&self.trailing);
        out
    }
}

#[test]
fn upgrade_parser() {
    bolero::check!().for_each(|bytes: &[u8]| match split_mode(bytes) {
        Some((Mode::Raw, request)) => check(request),
        Some((Mode::Structured, rest)) => {
            if let Some(built) = structured::<Built>(rest) {
                check(&built.render());
            }
        }
        None => {}
    });
}

fn check(buf: &[u8]) {
    let got = parse_any(buf);
    let (request, n) = match &got {
        Ok(Some((request, n))) => (request, *n),
        Ok(None) => {
            assert!(
                buf.len() < MAX_HEAD_BYTES,
                "incomplete at {} bytes",
                buf.len()
            );
            return;
        }
        Err(UpgradeError::Malformed | UpgradeError::TooLarge | UpgradeError::NotWebSocket) => {
            return;
        }
    };
    assert!(
        n <= buf.len() && n <= MAX_HEAD_BYTES,
        "head length {n} of {}",
        buf.len()
    );
    assert_eq!(
        parse_any(&buf[..n]),
        got,
        "the head alone parses differently"
    );
    let mut extended = buf[..n].to_vec();
    extended.extend_from_slice(b"\x81\x85garbage after the head\r\n\r\n");
    assert_eq!(
        parse_any(&extended),
        got,
        "what follows the head changed it"
    );
    // Every strict prefix is incomplete: a sample of cut points, always including n - 1.
    let step = (n / 16).max(1);
    for cut in (0..n).step_by(step).chain(n.checked_sub(1)) {
        assert_eq!(
            parse_any(&buf[..cut]),
            Ok(None),
            "prefix of {cut} bytes of a {n}-byte head"
        );
    }
    let head = &buf[..n];
    match request {
        Request::Plain(plain) => {
            let mut declared = None;
            for (name, value) in &plain.headers {
                assert!(
                    !name.eq_ignore_ascii_case("transfer-encoding"),
                    "a chunked request passed as plain"
                );
                if name.eq_ignore_ascii_case("content-length") {
                    let v = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .expect("an unparseable Content-Length was accepted");
                    assert!(
                        declared.is_none_or(|d| d == v),
                        "conflicting lengths accepted"
                    );
                    declared = Some(v);
                }
            }
            assert_eq!(
                plain.content_length,
                declared.unwrap_or(0),
                "content length"
            );
        }
        Request::Upgrade(upgrade) => {
            // httparse (like RFC 9112 §2.2 allows) skips empty lines before the request line.
            let request_line = head.trim_ascii_start();
            assert!(request_line.starts_with(b"GET "), "upgrade without GET");
            assert!(!upgrade.key.is_empty(), "upgrade without a key");
            let answer = upgrade.accept_response();
            assert!(answer.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
            assert!(answer.ends_with(b"\r\n\r\n"));
        }
    }
}
