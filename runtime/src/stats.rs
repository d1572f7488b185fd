//! Counters and their two renderings: the `health_snapshot` map (UPSTREAM §7.9) and the
//! Prometheus text exposition (§7.10). A stopped server renders the same keys with zeros, so
//! callers (the Python binding, the HTTP API) never special-case "not running".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Counters for health and metrics, shared by every task of one server.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_received: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) inbound_dropped: AtomicU64,
    pub(crate) slow_consumer_drops: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    /// Inbound `E:` records refused for a repeated IV (CONTRACT D8).
    pub(crate) e2e_replayed: AtomicU64,
    /// Inbound `E:` records that could not be decrypted (no key, bad tag, truncated).
    pub(crate) e2e_undecryptable: AtomicU64,
}

/// Most topics whose publications are counted one by one (UPSTREAM §7.10 prunes at this size).
pub const MAX_COUNTED_TOPICS: usize = 10_000;
/// Topics shown in `wse_topic_messages_total`, busiest first.
pub const TOP_TOPICS_SHOWN: usize = 50;

/// Publications per topic, for `wse_topic_messages_total`. Bounded: past
/// [`MAX_COUNTED_TOPICS`] keys, topics without subscribers are pruned, and a new topic that
/// still does not fit is not counted (the bound wins over completeness).
#[derive(Debug, Default)]
pub(crate) struct TopicCounts {
    counts: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl TopicCounts {
    /// Counts one publication to `topic`; `has_subscribers` decides what survives a prune.
    pub(crate) fn record(&self, topic: &str, has_subscribers: impl Fn(&str) -> bool) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(topic) {
            *n += 1;
            return;
        }
        if counts.len() >= MAX_COUNTED_TOPICS {
            counts.retain(|t, _| has_subscribers(t));
            if counts.len() >= MAX_COUNTED_TOPICS {
                return;
            }
        }
        counts.insert(topic.to_owned(), 1);
    }

    /// The busiest topics, most publications first (ties by name).
    pub(crate) fn top(&self, n: usize) -> Vec<(String, u64)> {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: Vec<(String, u64)> = counts.iter().map(|(t, c)| (t.clone(), *c)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// Escapes a Prometheus label value (`\`, `"`, newline).
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One consistent-enough reading of a server for rendering.
#[derive(Debug)]
pub(crate) struct Stats<'a> {
    pub(crate) counters: &'a Counters,
    pub(crate) connections: usize,
    pub(crate) queue_depth: usize,
    pub(crate) uptime_secs: f64,
    pub(crate) topics: usize,
    pub(crate) recovery_enabled: bool,
    pub(crate) presence_enabled: bool,
    /// Busiest topics and their publication counts.
    pub(crate) top_topics: Vec<(String, u64)>,
    /// Recovery rings and the bytes their budget counts (zeros when recovery is off).
    pub(crate) recovery_topics: usize,
    pub(crate) recovery_bytes: usize,
    /// Topics with visible users and visible users summed over topics.
    pub(crate) presence_topics: usize,
    pub(crate) presence_users: usize,
    /// Cluster figures (zeros before `connect_cluster`).
    pub(crate) cluster: crate::cluster::ClusterFigures,
}

/// `health_snapshot()` of a server that is not running: every key, zero values, uptime 0.0.
pub fn stopped_health_snapshot(
    recovery_enabled: bool,
    presence_enabled: bool,
) -> BTreeMap<&'static str, Value> {
    stopped(&Counters::default(), recovery_enabled, presence_enabled).health()
}

/// `prometheus_metrics()` of a server that is not running: every always-present metric, zero.
pub fn stopped_prometheus_metrics() -> String {
    stopped(&Counters::default(), false, false).prometheus()
}

fn stopped(counters: &Counters, recovery_enabled: bool, presence_enabled: bool) -> Stats<'_> {
    Stats {
        counters,
        connections: 0,
        queue_depth: 0,
        uptime_secs: 0.0,
        topics: 0,
        recovery_enabled,
        presence_enabled,
        top_topics: Vec::new(),
        recovery_topics: 0,
        recovery_bytes: 0,
        presence_topics: 0,
        presence_users: 0,
        cluster: crate::cluster::ClusterFigures::default(),
    }
}

impl Stats<'_> {
    /// The keys of UPSTREAM §7.9.
    pub(crate) fn health(&self) -> BTreeMap<&'static str, Value> {
        let c = self.counters;
        let mut h = BTreeMap::new();
        h.insert("connections", Value::from(self.connections));
        h.insert("inbound_queue_depth", Value::from(self.queue_depth));
        h.insert(
            "inbound_dropped",
            Value::from(c.inbound_dropped.load(Ordering::Relaxed)),
        );
        h.insert(
            "e2e_replayed",
            Value::from(c.e2e_replayed.load(Ordering::Relaxed)),
        );
        h.insert(
            "e2e_undecryptable",
            Value::from(c.e2e_undecryptable.load(Ordering::Relaxed)),
        );
        let k = &self.cluster;
        h.insert("cluster_connected", Value::from(k.peers > 0));
        for (key, value) in [
            ("cluster_peer_count", k.peers as u64),
            ("cluster_messages_sent", k.messages_sent),
            ("cluster_messages_delivered", k.messages_delivered),
            ("cluster_messages_dropped", k.messages_dropped),
            ("cluster_bytes_sent", k.bytes_sent),
            ("cluster_bytes_received", k.bytes_received),
            ("cluster_reconnect_count", k.reconnects),
            ("cluster_unknown_message_types", k.unknown_message_types),
            ("cluster_dlq_size", k.dlq_size as u64),
            ("cluster_members", k.members as u64),
            ("cluster_suspects", k.suspects as u64),
            ("cluster_dead_peers", k.dead_peers),
        ] {
            h.insert(key, Value::from(value));
        }
        h.insert("recovery_topic_count", Value::from(self.recovery_topics));
        h.insert("recovery_total_bytes", Value::from(self.recovery_bytes));
        h.insert("uptime_secs", Value::from(self.uptime_secs));
        h.insert("recovery_enabled", Value::from(self.recovery_enabled));
        h.insert("presence_enabled", Value::from(self.presence_enabled));
        if self.presence_enabled {
            h.insert("presence_topics", Value::from(self.presence_topics));
            h.insert("presence_total_users", Value::from(self.presence_users));
        }
        h
    }

    /// Prometheus text exposition with the metric names of UPSTREAM §7.10.
    pub(crate) fn prometheus(&self) -> String {
        let c = self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        for (name, help, value) in [
            (
                "wse_connections",
                "Active WebSocket connections",
                self.connections.to_string(),
            ),
            (
                "wse_inbound_queue_depth",
                "Events waiting in the inbound queue",
                self.queue_depth.to_string(),
            ),
            (
                "wse_uptime_seconds",
                "Seconds since start",
                format!("{:.1}", self.uptime_secs),
            ),
            (
                "wse_topics",
                "Topic keys with local subscribers",
                self.topics.to_string(),
            ),
        ] {
            metric(name, "gauge", help, value);
        }
        for (name, help, value) in [
            (
                "wse_messages_received_total",
                "Inbound data messages",
                get(&c.messages_received),
            ),
            (
                "wse_messages_sent_total",
                "send_event messages queued",
                get(&c.messages_sent),
            ),
            (
                "wse_connections_accepted_total",
                "Connections accepted",
                get(&c.accepted),
            ),
            (
                "wse_connections_rejected_total",
                "Connections refused at the cap",
                get(&c.rejected),
            ),
            (
                "wse_bytes_received_total",
                "Bytes read from clients",
                get(&c.bytes_received),
            ),
            (
                "wse_bytes_sent_total",
                "Bytes queued to clients",
                get(&c.bytes_sent),
            ),
            (
                "wse_auth_failures_total",
                "Handshakes refused by Origin or JWT",
                get(&c.auth_failures),
            ),
            (
                "wse_rate_limited_total",
                "send_event calls refused by the rate limit",
                get(&c.rate_limited),
            ),
            (
                "wse_inbound_dropped_total",
                "Events dropped on a full inbound queue",
                get(&c.inbound_dropped),
            ),
            (
                "wse_slow_consumer_drops_total",
                "Slow-consumer closes and queue-group misses",
                get(&c.slow_consumer_drops),
            ),
            (
                "wse_e2e_replayed_total",
                "Inbound E: records refused for a repeated IV",
                get(&c.e2e_replayed),
            ),
            (
                "wse_e2e_undecryptable_total",
                "Inbound E: records that could not be decrypted",
                get(&c.e2e_undecryptable),
            ),
        ] {
            metric(name, "counter", help, value.to_string());
        }
        let k = &self.cluster;
        metric(
            "wse_cluster_peers",
            "gauge",
            "Connected cluster peers",
            k.peers.to_string(),
        );
        for (name, help, value) in [
            (
                "wse_cluster_messages_sent_total",
                "Messages queued to cluster peers",
                k.messages_sent,
            ),
            (
                "wse_cluster_messages_delivered_total",
                "Messages received from cluster peers",
                k.messages_delivered,
            ),
            (
                "wse_cluster_messages_dropped_total",
                "Messages a cluster peer could not take (each one a DLQ entry)",
                k.messages_dropped,
            ),
            (
                "wse_cluster_bytes_sent_total",
                "Bytes written to cluster peers",
                k.bytes_sent,
            ),
            (
                "wse_cluster_bytes_received_total",
                "Bytes read from cluster peers",
                k.bytes_received,
            ),
            (
                "wse_cluster_reconnects_total",
                "Redials after an established cluster link ended",
                k.reconnects,
            ),
            (
                "wse_cluster_unknown_message_types_total",
                "Cluster frames of unknown types skipped",
                k.unknown_message_types,
            ),
            (
                "wse_cluster_dead_peers_total",
                "Peer incarnations declared dead (silent past the heartbeat timeout, left, or restarted)",
                k.dead_peers,
            ),
        ] {
            metric(name, "counter", help, value.to_string());
        }
        for (name, help, value) in [
            (
                "wse_cluster_dlq_size",
                "Entries in the cluster dead-letter queue",
                k.dlq_size,
            ),
            (
                "wse_cluster_members",
                "Cluster nodes with a live link",
                k.members,
            ),
            (
                "wse_cluster_suspects",
                "Cluster nodes whose link ended, not yet declared dead",
                k.suspects,
            ),
        ] {
            metric(name, "gauge", help, value.to_string());
        }
        if self.recovery_enabled {
            metric(
                "wse_recovery_topics",
                "gauge",
                "Topics with a recovery ring",
                self.recovery_topics.to_string(),
            );
            metric(
                "wse_recovery_bytes",
                "gauge",
                "Bytes held by recovery rings (payload and slots)",
                self.recovery_bytes.to_string(),
            );
        }
        if self.presence_enabled {
            metric(
                "wse_presence_topics",
                "gauge",
                "Topics with present users",
                self.presence_topics.to_string(),
            );
            metric(
                "wse_presence_users",
                "gauge",
                "Present users summed over topics",
                self.presence_users.to_string(),
            );
        }
        if !self.top_topics.is_empty() {
            out.push_str(
                "# HELP wse_topic_messages_total Publications per topic (busiest 50)\n\
                 # TYPE wse_topic_messages_total counter\n",
            );
            for (topic, count) in &self.top_topics {
                let _ = writeln!(
                    out,
                    "wse_topic_messages_total{{topic=\"{}\"}} {count}",
                    escape_label(topic)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_server_reports_every_health_key_with_zeros() {
        let h = stopped_health_snapshot(false, true);
        assert_eq!(h["connections"], 0);
        assert_eq!(h["uptime_secs"], 0.0);
        assert_eq!(h["presence_enabled"], true);
        assert_eq!(h["presence_total_users"], 0);
        assert!(!stopped_health_snapshot(false, false).contains_key("presence_topics"));
    }

    #[test]
    fn topic_labels_are_escaped_and_the_busiest_come_first() {
        let counts = TopicCounts::default();
        for _ in 0..3 {
            counts.record("a\"b\\c\nd", |_| true);
        }
        counts.record("quiet", |_| true);
        let counters = Counters::default();
        let mut stats = stopped(&counters, false, false);
        stats.top_topics = counts.top(TOP_TOPICS_SHOWN);
        let text = stats.prometheus();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("wse_topic_messages_total"))
            .collect();
        assert_eq!(
            lines,
            [
                r#"wse_topic_messages_total{topic="a\"b\\c\nd"} 3"#,
                r#"wse_topic_messages_total{topic="quiet"} 1"#
            ]
        );
    }

    #[test]
    fn topic_counts_stay_bounded_and_prune_topics_without_subscribers() {
        let counts = TopicCounts::default();
        for i in 0..MAX_COUNTED_TOPICS {
            counts.record(&format!("t{i}"), |_| false);
        }
        counts.record("kept", |t| t == "t7");
        let top = counts.top(usize::MAX);
        assert_eq!(
            top.len(),
            2,
            "pruned to the subscribed topic plus the new one"
        );
        for i in 0..MAX_COUNTED_TOPICS + 10 {
            counts.record(&format!("u{i}"), |_| true);
        }
        assert_eq!(counts.top(usize::MAX).len(), MAX_COUNTED_TOPICS);
    }

    #[test]
    fn stopped_metrics_carry_help_type_and_a_zero_sample_for_each_name() {
        let text = stopped_prometheus_metrics();
        for name in ["wse_connections", "wse_uptime_seconds", "wse_cluster_peers"] {
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        }
        assert!(text.contains("wse_uptime_seconds 0.0\n"));
        assert!(text.contains("wse_messages_sent_total 0\n"));
    }
}
