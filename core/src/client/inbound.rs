//! Inbound frames: decoding, system messages, the stamp and id checks.
//!
//! Input: one text or binary frame from the current connection. Decoding (UPSTREAM §2.1, §3.1):
//! legacy `PING:`/`PONG:` texts, legacy `WSE{`/`S{`/`U{` prefixes, JSON objects; binary `C:`
//! (zlib, capped at `max_frame_size`) handled as text, `M:` (msgpack, nesting ≤ 64) handled as
//! a message object, `E:` refused (no encryption yet), anything else delivered as
//! [`Event::Binary`]. Then system messages are handled and never delivered (`ping`/`PING` are
//! answered with `PONG`; `server_ready`, `subscription_update`, `error` and `batch` are
//! interpreted; the Python client's other internal types are dropped), and application
//! messages go through the stamp check (stamped) or the id window (unstamped with an `id`).
//!
//! Every malformed frame is one [`Event::ProtocolError`] and is otherwise ignored; nothing here
//! panics on peer input.

use crate::crypto::rotation::{KEY_ROTATION, KEY_ROTATION_ACK, system_message};
use crate::crypto::{ClientCryptoSession, CryptoConfig, parse_peer_public_key};
use serde_json::{Map, Value};

use super::cursor::{self, AckEntry, Verdict};
use super::output::{Delivered, Event};
use super::{Client, Phase, Position};
use crate::protocol::envelope::apply_aliases;
use crate::protocol::msgpack::MAX_INBOUND_DEPTH;
use crate::protocol::{
    DecompressError, Envelope, Stamp, msgpack_to_json, strip_legacy_prefix, zlib_decompress_capped,
};
use crate::time::Instant;

/// The error reported for an `E:` frame.
pub(super) const ENCRYPTED_FRAME_ERROR: &str =
    "encrypted frame but no key: encryption is not supported by this client yet";

/// Internal message types the Python client never surfaces (UPSTREAM §2.5.8) and this client
/// drops without a reply (`ping`/`PING`, `server_ready` and `subscription_update` are handled).
const INTERNAL_TYPES: [&str; 9] = [
    "server_hello",
    "health_check",
    "config_update",
    "PONG",
    "pong",
    "heartbeat",
    "sync_request",
    "metrics_request",
    "priority_message",
];

impl Client {
    /// A text frame from the server.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        if !self.touch(now) {
            return;
        }
        if text.len() > self.config.max_frame_size {
            self.protocol_error(format!(
                "text frame of {} bytes exceeds the {}-byte limit",
                text.len(),
                self.config.max_frame_size
            ));
            return;
        }
        self.dispatch_text(now, text);
    }

    /// A binary frame from the server.
    pub fn handle_binary(&mut self, now: Instant, data: &[u8]) {
        if !self.touch(now) {
            return;
        }
        let limit = self.config.max_frame_size;
        if data.len() > limit {
            self.protocol_error(format!(
                "binary frame of {} bytes exceeds the {limit}-byte limit",
                data.len()
            ));
        } else if data.starts_with(b"E:") {
            self.on_encrypted(now, data);
        } else if let Some(compressed) = data.strip_prefix(b"C:") {
            match zlib_decompress_capped(compressed, limit) {
                Ok(plain) => match String::from_utf8(plain) {
                    Ok(text) => self.dispatch_text(now, &text),
                    Err(_) => self.protocol_error("C: frame does not inflate to UTF-8 text"),
                },
                Err(DecompressError::TooLarge { limit }) => {
                    self.protocol_error(format!("C: frame inflates past {limit} bytes"));
                }
                Err(DecompressError::Corrupt) => self.protocol_error("C: frame is not valid zlib"),
            }
        } else if let Some(packed) = data.strip_prefix(b"M:") {
            match msgpack_to_json(packed, MAX_INBOUND_DEPTH) {
                Ok(Value::Object(map)) => self.dispatch_object(now, map, false),
                Ok(_) => self.protocol_error("M: frame is not a msgpack map"),
                Err(e) => self.protocol_error(format!("M: frame: {e}")),
            }
        } else if is_raw_zlib(data) {
            // Raw zlib (never produced by the original server, accepted by both its clients).
            match zlib_decompress_capped(data, limit).map(String::from_utf8) {
                Ok(Ok(text)) => self.dispatch_text(now, &text),
                _ => self.push_event(Event::Binary(data.to_vec())),
            }
        } else if let Some(map) = json_object(data) {
            // Plain JSON in a binary frame: what `send_event` produces below the compression
            // threshold (UPSTREAM §3.1); the Python client reads it as JSON too.
            self.dispatch_object(now, map, false);
        } else {
            self.push_event(Event::Binary(data.to_vec()));
        }
    }

    /// Refreshes the idle timer; `false` when there is no connection to read from.
    fn touch(&mut self, now: Instant) -> bool {
        match &mut self.phase {
            Phase::AwaitingReady { last_rx, .. } | Phase::Ready { last_rx, .. } => {
                *last_rx = (*last_rx).max(now);
                true
            }
            _ => false,
        }
    }

    fn dispatch_text(&mut self, now: Instant, text: &str) {
        if let Some(ts) = text
            .strip_prefix("WSE:PING:")
            .or_else(|| text.strip_prefix("PING:"))
        {
            // Legacy text ping: answered with the JSON PONG, its timestamp echoed (as a number
            // when it is one).
            let ts = ts
                .parse::<i64>()
                .map_or_else(|_| Value::from(ts), Value::from);
            self.reply_pong(now, &ts);
            return;
        }
        if text.starts_with("PONG:") || text.starts_with("WSE:PONG:") {
            return;
        }
        match serde_json::from_str::<Value>(strip_legacy_prefix(text)) {
            Ok(Value::Object(map)) => self.dispatch_object(now, map, false),
            Ok(_) => self.protocol_error("text frame is not a JSON object"),
            Err(e) => self.protocol_error(format!("text frame is not JSON: {e}")),
        }
    }

    /// One message object (from text, `C:`, `M:` or a batch item).
    fn dispatch_object(&mut self, now: Instant, mut map: Map<String, Value>, in_batch: bool) {
        apply_aliases(&mut map);
        let t = map.get("t").and_then(Value::as_str).unwrap_or_default();
        match t {
            "ping" | "PING" => {
                let p = map.get("p");
                let ts = p
                    .and_then(|p| p.get("server_time").or_else(|| p.get("timestamp")))
                    .cloned()
                    .unwrap_or(Value::Null);
                self.reply_pong(now, &ts);
            }
            "server_ready" => self.on_server_ready(now, &map),
            "server_hello" => self.on_server_hello(now, &map),
            KEY_ROTATION => self.on_key_rotation(now, &map),
            "subscription_update" => self.on_subscription_ack(now, &map),
            "error" => {
                let field = |k: &str| {
                    map.get("p")
                        .and_then(|p| p.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let (code, message) = (field("code"), field("message"));
                self.push_event(Event::ServerError { code, message });
            }
            "batch" if in_batch => self.protocol_error("batch nested in a batch"),
            "batch" => self.on_batch(now, map),
            t if INTERNAL_TYPES.contains(&t) => {}
            _ => self.on_message(now, map),
        }
    }

    /// An `E:` record: opened under the session key(s) and handled like the same text.
    fn on_encrypted(&mut self, now: Instant, frame: &[u8]) {
        let Some(session) = self.crypto.as_mut() else {
            self.protocol_error(ENCRYPTED_FRAME_ERROR);
            return;
        };
        match session.decrypt(now, frame).map(String::from_utf8) {
            Ok(Ok(text)) => self.dispatch_text(now, &text),
            Ok(Err(_)) => self.protocol_error("E: record does not decrypt to UTF-8 text"),
            Err(e) => self.protocol_error(format!("E: record refused: {e}")),
        }
    }

    /// `server_hello`: completes our key exchange when we asked for one and the server agreed
    /// (UPSTREAM §4.1); otherwise the connection stays plaintext.
    fn on_server_hello(&mut self, _now: Instant, map: &Map<String, Value>) {
        let Some(pair) = self.pending_key.take() else {
            return;
        };
        let p = map.get("p");
        let agreed = p
            .and_then(|p| p.get("features"))
            .and_then(|f| f.get("encryption"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let key = p
            .and_then(|p| p.get("encryption_public_key"))
            .and_then(Value::as_str);
        match (agreed, key.map(parse_peer_public_key)) {
            (true, Some(Ok(server))) => {
                let key = pair.derive_session_key(&server);
                self.crypto = Some(ClientCryptoSession::new(key, CryptoConfig::default()));
                self.push_event(Event::Encrypted);
            }
            (true, Some(Err(e))) => self.protocol_error(format!("server_hello key: {e}")),
            _ => {} // the server declined: plaintext
        }
    }

    /// `key_rotation` (inside an `E:` record, `docs/encryption.md` §5): answer with the ack
    /// sealed under the old key, then use the new one.
    fn on_key_rotation(&mut self, now: Instant, map: &Map<String, Value>) {
        let (Some(session), Some(rng), Some(p)) =
            (self.crypto.as_mut(), self.crypto_rng.as_mut(), map.get("p"))
        else {
            self.protocol_error("key_rotation without an encrypted session");
            return;
        };
        match session.handle_key_rotation(now, p, rng, |ack| {
            system_message(KEY_ROTATION_ACK, ack)
                .to_string()
                .into_bytes()
        }) {
            Ok(frame) => {
                self.outputs.push_back(super::Output::SendBinary(frame));
                self.push_event(Event::KeyRotated);
            }
            Err(e) => self.protocol_error(format!("key_rotation refused: {e}")),
        }
    }

    fn reply_pong(&mut self, now: Instant, server_timestamp: &Value) {
        let text = super::wire::pong(server_timestamp, self.wall(now));
        self.push_text(text);
    }

    fn on_server_ready(&mut self, now: Instant, map: &Map<String, Value>) {
        let Phase::AwaitingReady { last_rx, .. } = self.phase else {
            // A repeated server_ready on a ready session changes nothing.
            return;
        };
        let p = map.get("p");
        let id = p
            .and_then(|p| p.get("connection_id"))
            .or_else(|| p.and_then(|p| p.get("details")?.get("connection_id")))
            .and_then(Value::as_str);
        self.connection_id = id.map(str::to_owned);
        self.become_ready(now, last_rx);
    }

    /// A `subscription_update` ack: recovery entries first (in topic order), then the ack.
    fn on_subscription_ack(&mut self, now: Instant, map: &Map<String, Value>) {
        let Some(p) = map.get("p").and_then(Value::as_object) else {
            self.protocol_error("subscription_update without an object payload");
            return;
        };
        match p.get("recovery") {
            None | Some(Value::Null) => {}
            Some(Value::Object(entries)) => {
                for (topic, entry) in entries {
                    self.on_recovery_entry(now, topic, entry);
                }
            }
            Some(_) => self.protocol_error("subscription_update recovery is not an object"),
        }
        let topics = |k: &str| -> Vec<String> {
            p.get(k)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let (success_topics, failed_topics) = (topics("success_topics"), topics("failed_topics"));
        for topic in &failed_topics {
            self.subscribed.remove(topic);
            self.confirmed.remove(topic);
            self.resyncing.remove(topic);
        }
        for topic in &success_topics {
            if !self.subscribed.contains(topic) {
                continue;
            }
            self.confirmed.insert(topic.clone());
            // Resubscribed without a position and the ack said nothing about it: the server has
            // no history to offer, and the client cannot know what it missed. Say so.
            if self.resyncing.remove(topic) {
                self.push_event(Event::NotRecovered {
                    topic: topic.clone(),
                    epoch: None,
                    offset: 0,
                });
            }
        }
        self.push_event(Event::SubscriptionAck {
            success_topics,
            failed_topics,
        });
    }

    fn on_recovery_entry(&mut self, _now: Instant, topic: &str, entry: &Value) {
        let requested = self.recovering.remove(topic).is_some() | self.resyncing.remove(topic);
        let entry = match AckEntry::parse(entry) {
            Ok(entry) => entry,
            Err(reason) => {
                self.protocol_error(format!("{reason} (topic {topic:?})"));
                return;
            }
        };
        if entry.recovered {
            if requested {
                self.push_event(Event::Recovered {
                    topic: topic.to_owned(),
                    count: entry.count,
                });
            }
            return;
        }
        let had = self.positions.get(topic).copied();
        match cursor::forward_only(had, entry.epoch, entry.offset) {
            Some(next) => {
                if had.is_some() || self.positions.len() < self.config.max_tracked_topics {
                    self.positions.insert(topic.to_owned(), next);
                }
            }
            None => {
                self.positions.remove(topic);
            }
        }
        if requested || had.is_some() {
            self.push_event(Event::NotRecovered {
                topic: topic.to_owned(),
                epoch: entry.epoch,
                offset: entry.offset,
            });
        }
    }

    fn on_batch(&mut self, now: Instant, mut map: Map<String, Value>) {
        let Some(Value::Object(mut p)) = map.remove("p") else {
            self.protocol_error("batch without an object payload");
            return;
        };
        let Some(Value::Array(items)) = p.remove("messages") else {
            self.protocol_error("batch without a messages array");
            return;
        };
        for item in items {
            match item {
                Value::Object(item) => self.dispatch_object(now, item, true),
                _ => self.protocol_error("batch item is not an object"),
            }
        }
    }

    /// An application message: stamp check, else id dedup, then delivery.
    fn on_message(&mut self, now: Instant, map: Map<String, Value>) {
        let envelope = match Envelope::from_value(Value::Object(map)) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.protocol_error(format!("malformed envelope: {e}"));
                return;
            }
        };
        if let Some(stamp) = envelope.stamp.clone() {
            self.on_stamped(now, stamp, envelope);
            return;
        }
        if let Some(id) = &envelope.id
            && !self.dedup.insert(now, id)
        {
            self.stats.id_duplicates += 1;
            return;
        }
        self.deliver(envelope);
    }

    fn on_stamped(&mut self, now: Instant, stamp: Stamp, envelope: Envelope) {
        let Stamp {
            topic,
            epoch,
            offset,
        } = stamp;
        let current = self.positions.get(&topic).copied();
        if current.is_none() && self.positions.len() >= self.config.max_tracked_topics {
            self.stats.untracked += 1;
            self.deliver(envelope);
            return;
        }
        let here = Position { epoch, offset };
        match cursor::check(current, epoch, offset) {
            Verdict::Accept => {
                self.positions.insert(topic, here);
                self.deliver(envelope);
            }
            Verdict::Duplicate => self.stats.stamp_duplicates += 1,
            Verdict::Gap { expected } => match self.recovering.get(&topic) {
                Some(&since) if now < since + self.config.recovery_timeout => {
                    // The replay (or the NotRecovered ack) is on its way.
                    self.stats.gap_drops += 1;
                }
                Some(_) => {
                    // Unanswered for too long: announce the loss and resume from here rather
                    // than stall the topic forever.
                    self.recovering.remove(&topic);
                    self.stats.recovery_timeouts += 1;
                    self.push_event(Event::NotRecovered {
                        topic: topic.clone(),
                        epoch: Some(epoch),
                        offset: offset.saturating_sub(1),
                    });
                    self.positions.insert(topic, here);
                    self.deliver(envelope);
                }
                None => {
                    self.stats.gap_drops += 1;
                    self.stats.recovery_requests += 1;
                    self.push_event(Event::Gap {
                        topic: topic.clone(),
                        expected,
                        got: offset,
                    });
                    self.send_subscription(now, &[topic].into_iter().collect());
                }
            },
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        self.push_event(Event::Message(Box::new(Delivered { envelope })));
    }
}

/// A zlib stream header as the published clients recognise it: `0x78` then a standard second
/// byte.
fn is_raw_zlib(data: &[u8]) -> bool {
    matches!(data, [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..])
}

/// `data` as a JSON object, after the legacy prefixes (`WSE{`, `S{`, `U{`) are stripped.
fn json_object(data: &[u8]) -> Option<Map<String, Value>> {
    let text = std::str::from_utf8(data).ok()?;
    match serde_json::from_str(strip_legacy_prefix(text)).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
