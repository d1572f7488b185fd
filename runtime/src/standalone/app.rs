//! The built-in client protocol of the standalone server: what an embedding application would
//! otherwise do with the published clients' messages (UPSTREAM §2.5.7: the engine never answers
//! them itself).
//!
//! Input: the server's events, drained by [`run`] until the server has stopped. Output: calls on
//! [`Server`] and `send_event` answers. Per event:
//!
//! - `Connect`/`AuthConnect`: a connection without a topic ACL (its token has no `wse_topics`
//!   claim) gets [`AppPolicy::default_acl`], if configured.
//! - `subscription_update` with `action: "subscribe"`: each topic is checked against the
//!   connection's ACL, then subscribed with recovery from *that topic's* position in
//!   `p.recovery` when `p.recover` is true (UPSTREAM §8.5), and acknowledged with
//!   `{"success", "success_topics", "failed_topics", "recovery"}`. `"unsubscribe"` unsubscribes
//!   and acknowledges. A malformed request is acknowledged with `success: false`.
//!   With `p.presence` (an object, or `true` for `{}`; our extension, no published client
//!   sends it) the connection also joins each subscribed topic's presence with that data.
//! - `publish` `{"topic": T, "data": {...}}`: published to `T` when [`AppPolicy::client_publish`]
//!   is on and the connection's ACL grants publishing to `T` (`wse_topics.publish` globs, see
//!   [`TopicAcl::allows_publish`]); otherwise an `error` event `PUBLISH_FORBIDDEN`.
//! - Anything else is left alone (debug log).
//!
//! `success` in an ack means "the request was understood and something it asked for was done":
//! false for a malformed request or when every topic was refused; a partial success is true
//! with the refused topics in `failed_topics`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tracing::{debug, trace};
use wse_core::ConnId;
use wse_core::auth::TopicAcl;
use wse_core::glob::is_glob;

use super::config::StandaloneConfig;
use crate::server::{RecoveryError, Server, ServerEvent, TopicRecovery};

/// Events taken from the server per wake-up.
pub const EVENT_BATCH: usize = 256;
/// How long one wait for events lasts; also how often the loop checks whether the server ended.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Topics in one `subscription_update`; a longer list is refused whole.
pub const MAX_TOPICS_PER_UPDATE: usize = 256;
/// Longest topic (or pattern) accepted from a client, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;
/// `compression_threshold` of the acks and errors sent (the engine's default).
pub const COMPRESSION_THRESHOLD: usize = 1024;
/// Error code of a refused client publish.
pub const PUBLISH_FORBIDDEN: &str = "PUBLISH_FORBIDDEN";
/// Error code of a malformed client publish.
pub const INVALID_PUBLISH: &str = "INVALID_PUBLISH";

/// What clients may do on their own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppPolicy {
    /// Clients may publish where their ACL's publish globs allow.
    pub client_publish: bool,
    /// The ACL of connections whose token carries none (also its publish globs).
    pub default_acl: Option<TopicAcl>,
}

impl AppPolicy {
    /// The policy a [`StandaloneConfig`] describes.
    pub fn from_config(config: &StandaloneConfig) -> AppPolicy {
        AppPolicy {
            client_publish: config.client_publish,
            default_acl: config.default_acl(),
        }
    }
}

/// Answers the clients' messages until the server has stopped (or drained and lost its last
/// connection), then returns. Run it on its own task: `tokio::spawn(app::run(server, policy))`.
/// It consumes the server's event queue, so nothing else may read it.
pub async fn run(server: Server, policy: AppPolicy) {
    let mut app = App {
        server,
        policy,
        defaulted: BTreeSet::new(),
    };
    loop {
        let batch = app.server.next_events(EVENT_BATCH, POLL_INTERVAL).await;
        let idle = batch.is_empty();
        for event in batch {
            app.handle(event);
        }
        app.forget_stale_defaults();
        // A draining server never accepts again: with no connection left, no event can come
        // except the last disconnects, which the idle wait above has let through.
        if idle && app.server.is_draining() && app.server.connection_count() == 0 {
            debug!("server ended; client protocol stops");
            return;
        }
    }
}

/// The loop's state.
struct App {
    server: Server,
    policy: AppPolicy,
    /// Connections given the default ACL: their publish rights are the default ACL's, which
    /// `Server::set_topic_acl` (allow and deny lists only) cannot carry.
    defaulted: BTreeSet<ConnId>,
}

impl App {
    fn handle(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Connect(conn, _) => {
                debug!(%conn, "connected");
                self.apply_default_acl(conn);
            }
            ServerEvent::AuthConnect(conn, user, _) => {
                debug!(%conn, %user, "connected");
                self.apply_default_acl(conn);
            }
            ServerEvent::Disconnect(conn) => {
                debug!(%conn, "disconnected");
                self.defaulted.remove(&conn);
            }
            ServerEvent::Msg(conn, message) => self.handle_message(conn, &message),
            ServerEvent::Raw(conn, _) | ServerEvent::Bin(conn, _) => {
                debug!(%conn, "non-JSON message ignored");
            }
            ServerEvent::PresenceJoin { topic, user_id, .. } => {
                trace!(%topic, %user_id, "presence join");
            }
            ServerEvent::PresenceLeave { topic, user_id, .. } => {
                trace!(%topic, %user_id, "presence leave");
            }
        }
    }

    fn apply_default_acl(&mut self, conn: ConnId) {
        let Some(default) = &self.policy.default_acl else {
            return;
        };
        if self.server.topic_acl(conn) == Some(None) {
            self.server
                .set_topic_acl(conn, default.allow().to_vec(), default.deny().to_vec());
            self.defaulted.insert(conn);
        }
    }

    /// Disconnect events can be dropped when the event queue overflows; keep the set bounded by
    /// the live connections anyway.
    fn forget_stale_defaults(&mut self) {
        if self.defaulted.len() > 2 * self.server.connection_count() + EVENT_BATCH {
            let server = &self.server;
            self.defaulted.retain(|c| server.topic_acl(*c).is_some());
        }
    }

    fn handle_message(&mut self, conn: ConnId, message: &Value) {
        let payload = message.get("p");
        match message.get("t").and_then(Value::as_str) {
            Some("subscription_update") => self.subscription_update(conn, payload),
            Some("publish") => self.publish(conn, payload),
            other => debug!(%conn, t = ?other, "message ignored"),
        }
    }

    fn subscription_update(&self, conn: ConnId, payload: Option<&Value>) {
        let request = match SubscriptionRequest::parse(payload) {
            Ok(request) => request,
            Err(refused) => {
                debug!(%conn, reason = refused.reason, "malformed subscription_update");
                self.send_ack(conn, &Ack::refused(refused.topics));
                return;
            }
        };
        let ack = match request.action {
            Action::Subscribe => match self.subscribe(conn, &request) {
                Some(ack) => ack,
                None => return, // the connection is gone
            },
            Action::Unsubscribe => {
                self.server
                    .unsubscribe_connection(conn, Some(&request.topics));
                Ack {
                    success_topics: request.topics,
                    ..Ack::default()
                }
            }
        };
        self.send_ack(conn, &ack);
    }

    /// Subscribes topic by topic; `None` when the connection is not registered.
    fn subscribe(&self, conn: ConnId, request: &SubscriptionRequest) -> Option<Ack> {
        let acl = self.server.topic_acl(conn)?;
        let mut ack = Ack::default();
        for topic in &request.topics {
            let permitted = valid_topic(topic)
                && acl.as_ref().is_none_or(|a| {
                    a.allows_subscription(topic) && (is_glob(topic) || a.allows_topic(topic))
                });
            if !permitted {
                ack.failed_topics.push(topic.clone());
                continue;
            }
            let position = request.positions.get(topic).filter(|_| request.recover);
            match self.subscribe_one(conn, topic, position) {
                Ok(answer) => {
                    if let Some(data) = &request.presence {
                        // After the subscription and its replay: joining first would let
                        // live traffic overtake the replay.
                        self.server
                            .join_presence(conn, std::slice::from_ref(topic), data);
                    }
                    if answer.recoverable || position.is_some() {
                        ack.recovery.insert(topic.clone(), recovery_entry(&answer));
                    }
                    ack.success_topics.push(topic.clone());
                }
                Err(e) => {
                    debug!(%conn, %topic, error = %e, "subscription refused");
                    ack.failed_topics.push(topic.clone());
                }
            }
        }
        Some(ack)
    }

    /// One topic with its own position. An epoch the engine cannot parse is treated as no
    /// position: the client is told `recovered: false` and resynchronises.
    fn subscribe_one(
        &self,
        conn: ConnId,
        topic: &str,
        position: Option<&(String, u64)>,
    ) -> Result<TopicRecovery, RecoveryError> {
        let topics = [topic.to_owned()];
        let (epoch, offset) = position.map(|(e, o)| (e.as_str(), *o)).unzip();
        let outcome = match self.server.subscribe_with_recovery(
            conn,
            &topics,
            position.is_some(),
            epoch,
            offset,
        ) {
            Err(RecoveryError::InvalidEpoch(_)) => self
                .server
                .subscribe_with_recovery(conn, &topics, false, None, None)?,
            other => other?,
        };
        Ok(outcome
            .topics
            .get(topic)
            .cloned()
            .unwrap_or(TopicRecovery::NOTHING))
    }

    fn send_ack(&self, conn: ConnId, ack: &Ack) {
        let recovery: Map<String, Value> = ack
            .recovery
            .iter()
            .map(|(t, v)| (t.clone(), v.clone()))
            .collect();
        let success = ack.failed_topics.is_empty() || !ack.success_topics.is_empty();
        let payload = json!({
            "success": success && !ack.malformed,
            "success_topics": ack.success_topics,
            "failed_topics": ack.failed_topics,
            "recovery": recovery,
        });
        self.send(conn, "subscription_update", payload);
    }

    fn publish(&self, conn: ConnId, payload: Option<&Value>) {
        if !self.policy.client_publish {
            self.send_error(
                conn,
                PUBLISH_FORBIDDEN,
                "client publish is disabled on this server",
            );
            return;
        }
        let (topic, data) = match parse_publish(payload) {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.send_error(conn, INVALID_PUBLISH, reason);
                return;
            }
        };
        if !self.may_publish(conn, topic) {
            debug!(%conn, %topic, "publish refused");
            self.send_error(
                conn,
                PUBLISH_FORBIDDEN,
                &format!("not allowed to publish to {topic:?}"),
            );
            return;
        }
        debug!(%conn, %topic, "client publish");
        self.server.broadcast(topic, &data.to_string());
    }

    /// The connection's publish rights: its ACL's publish globs (the default ACL's when it was
    /// given that one); no ACL grants nothing.
    fn may_publish(&self, conn: ConnId, topic: &str) -> bool {
        if self.defaulted.contains(&conn) {
            return self
                .policy
                .default_acl
                .as_ref()
                .is_some_and(|a| a.allows_publish(topic));
        }
        matches!(self.server.topic_acl(conn), Some(Some(acl)) if acl.allows_publish(topic))
    }

    fn send_error(&self, conn: ConnId, code: &str, message: &str) {
        self.send(conn, "error", json!({"code": code, "message": message}));
    }

    fn send(&self, conn: ConnId, t: &str, payload: Value) {
        let mut event = Map::new();
        event.insert("t".into(), Value::from(t));
        event.insert("p".into(), payload);
        self.server.send_event(conn, &event, COMPRESSION_THRESHOLD);
    }
}

/// `subscription_update`'s action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Subscribe,
    Unsubscribe,
}

/// A well-formed `subscription_update` payload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SubscriptionRequest {
    action: Action,
    /// Requested topics, duplicates removed, in order.
    topics: Vec<String>,
    recover: bool,
    /// `p.recovery`: each topic's last `(epoch, offset)`; malformed entries are left out.
    positions: BTreeMap<String, (String, u64)>,
    /// `p.presence`: join the topics' presence with this data (an object; our extension).
    presence: Option<Value>,
}

/// Why a payload was refused, and the topics it named (for `failed_topics`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Refused {
    reason: &'static str,
    topics: Vec<String>,
}

impl SubscriptionRequest {
    fn parse(payload: Option<&Value>) -> Result<SubscriptionRequest, Refused> {
        let named: Vec<String> = payload
            .and_then(|p| p.get("topics"))
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .take(MAX_TOPICS_PER_UPDATE)
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let refuse = |reason| Refused {
            reason,
            topics: named.clone(),
        };
        let p = payload
            .and_then(Value::as_object)
            .ok_or_else(|| refuse("p is not an object"))?;
        let action = match p.get("action").and_then(Value::as_str) {
            Some("subscribe") => Action::Subscribe,
            Some("unsubscribe") => Action::Unsubscribe,
            _ => return Err(refuse("action is not subscribe or unsubscribe")),
        };
        let list = p
            .get("topics")
            .and_then(Value::as_array)
            .ok_or_else(|| refuse("topics is not a list"))?;
        if list.len() > MAX_TOPICS_PER_UPDATE {
            return Err(refuse("too many topics"));
        }
        if named.len() != list.len() {
            return Err(refuse("a topic is not a string"));
        }
        let mut topics = Vec::with_capacity(named.len());
        for t in &named {
            if !topics.contains(t) {
                topics.push(t.clone());
            }
        }
        let recover = p.get("recover").and_then(Value::as_bool).unwrap_or(false);
        let positions = p
            .get("recovery")
            .and_then(Value::as_object)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|(t, _)| topics.contains(t))
                    .filter_map(|(t, v)| Some((t.clone(), position(v)?)))
                    .collect()
            })
            .unwrap_or_default();
        let presence = match p.get("presence") {
            None | Some(Value::Null | Value::Bool(false)) => None,
            Some(Value::Bool(true)) => Some(Value::Object(Map::new())),
            Some(data @ Value::Object(_)) => Some(data.clone()),
            Some(_) => return Err(refuse("presence is not an object or a boolean")),
        };
        Ok(SubscriptionRequest {
            action,
            topics,
            recover,
            positions,
            presence,
        })
    }
}

/// `{"epoch": "<hex>", "offset": <int or digits>}` → the position.
fn position(v: &Value) -> Option<(String, u64)> {
    let epoch = v.get("epoch")?.as_str()?.to_owned();
    let offset = match v.get("offset")? {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some((epoch, offset))
}

/// A topic a client may name: non-empty, bounded, no control characters.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_BYTES
        && !topic.bytes().any(|b| b.is_ascii_control())
}

/// The ack's per-topic recovery entry (UPSTREAM §2.5.7).
fn recovery_entry(answer: &TopicRecovery) -> Value {
    json!({
        "epoch": answer.epoch.map(|e| e.to_string()),
        "offset": answer.offset,
        "recovered": answer.recovered,
        "count": answer.count,
    })
}

/// An ack being built.
#[derive(Clone, Debug, Default, PartialEq)]
struct Ack {
    malformed: bool,
    success_topics: Vec<String>,
    failed_topics: Vec<String>,
    recovery: BTreeMap<String, Value>,
}

impl Ack {
    fn refused(topics: Vec<String>) -> Ack {
        Ack {
            malformed: true,
            failed_topics: topics,
            ..Ack::default()
        }
    }
}

/// `{"topic": T, "data": {...}}` → `(T, data)`; the error says which field is wrong.
fn parse_publish(payload: Option<&Value>) -> Result<(&str, &Value), &'static str> {
    let p = payload
        .and_then(Value::as_object)
        .ok_or("p must be an object with topic and data")?;
    let topic = p
        .get("topic")
        .and_then(Value::as_str)
        .filter(|t| valid_topic(t) && !is_glob(t))
        .ok_or("topic must be a non-empty topic name without * or ?")?;
    let data = p
        .get("data")
        .filter(|d| d.is_object())
        .ok_or("data must be a JSON object")?;
    Ok((topic, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &Value) -> Result<SubscriptionRequest, Refused> {
        SubscriptionRequest::parse(Some(v))
    }

    #[test]
    fn a_subscribe_request_keeps_each_topics_own_position() {
        let r = parse(&json!({
            "action": "subscribe",
            "topics": ["a", "b", "a", "c"],
            "recover": true,
            "recovery": {
                "a": {"epoch": "0000abcd", "offset": 5},
                "b": {"epoch": "00001234", "offset": "7"},
                "c": {"epoch": 1, "offset": 2},
                "not-requested": {"epoch": "00000001", "offset": 1}
            }
        }))
        .unwrap();
        assert_eq!(r.action, Action::Subscribe);
        assert_eq!(r.topics, ["a", "b", "c"]);
        assert!(r.recover);
        assert_eq!(
            r.positions.into_iter().collect::<Vec<_>>(),
            [
                ("a".to_owned(), ("0000abcd".to_owned(), 5)),
                ("b".to_owned(), ("00001234".to_owned(), 7)),
            ]
        );
    }

    #[test]
    fn presence_data_is_an_object_or_true_and_anything_else_is_refused() {
        let with = |presence: Value| {
            parse(&json!({"action": "subscribe", "topics": ["a"], "presence": presence}))
        };
        assert_eq!(
            with(json!({"status": "on"})).unwrap().presence,
            Some(json!({"status": "on"}))
        );
        assert_eq!(with(json!(true)).unwrap().presence, Some(json!({})));
        assert_eq!(with(json!(false)).unwrap().presence, None);
        assert_eq!(with(Value::Null).unwrap().presence, None);
        let refused = with(json!("online")).unwrap_err();
        assert_eq!(refused.topics, ["a"]);
    }

    #[test]
    fn malformed_requests_are_refused_with_the_topics_they_named() {
        let cases = [
            (json!(null), vec![]),
            (json!({"topics": ["a"]}), vec!["a"]),
            (json!({"action": "dance", "topics": ["a"]}), vec!["a"]),
            (json!({"action": "subscribe", "topics": "a"}), vec![]),
            (
                json!({"action": "subscribe", "topics": ["a", 3]}),
                vec!["a"],
            ),
        ];
        for (payload, named) in cases {
            let refused = parse(&payload).expect_err("refused");
            assert_eq!(refused.topics, named, "{payload}");
        }
        let many: Vec<String> = (0..=MAX_TOPICS_PER_UPDATE).map(|i| i.to_string()).collect();
        let refused = parse(&json!({"action": "subscribe", "topics": many})).unwrap_err();
        assert_eq!(refused.topics.len(), MAX_TOPICS_PER_UPDATE);
        assert!(SubscriptionRequest::parse(None).is_err());
    }

    #[test]
    fn topics_must_be_bounded_printable_and_non_empty() {
        assert!(valid_topic("chat:lobby"));
        assert!(valid_topic("chat:*"));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a\nb"));
        assert!(!valid_topic(&"x".repeat(MAX_TOPIC_BYTES + 1)));
    }

    #[test]
    fn a_publish_needs_a_concrete_topic_and_an_object() {
        let ok = json!({"topic": "chat:1", "data": {"t": "chat", "p": {}}});
        assert_eq!(parse_publish(Some(&ok)).unwrap().0, "chat:1");
        for bad in [
            json!({"topic": "chat:*", "data": {}}),
            json!({"topic": "", "data": {}}),
            json!({"topic": "chat:1", "data": "text"}),
            json!({"topic": "chat:1"}),
            json!("chat:1"),
        ] {
            assert!(parse_publish(Some(&bad)).is_err(), "{bad}");
        }
    }
}
