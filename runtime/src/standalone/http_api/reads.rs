//! The read-only routes: health, metrics, info, presence, presence stats and history. Each reads
//! the server through its public operations and renders the shapes of the HTTP API spec.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::query::Query;
use crate::http::HttpResponse;
use crate::server::Server;

/// Most topics listed by `/api/info`, busiest first (`topics_total` tells how many there are):
/// the console polls it every few seconds, so a server with a million topics must not answer
/// with all of them.
pub(super) const MAX_INFO_TOPICS: usize = 1000;
/// `/api/history` `limit` when none is given.
pub(super) const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Largest `/api/history` `limit`.
pub(super) const MAX_HISTORY_LIMIT: usize = 10_000;
/// Content type of the Prometheus text exposition format.
pub(super) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// `GET /api/health`: the health snapshot.
pub(super) fn health(server: &Server) -> HttpResponse {
    let snapshot: Map<String, Value> = server
        .health_snapshot()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    HttpResponse::json(200, &Value::Object(snapshot))
}

/// `GET /api/metrics`: Prometheus text.
pub(super) fn metrics(server: &Server) -> HttpResponse {
    HttpResponse::body(200, PROMETHEUS_CONTENT_TYPE, server.prometheus_metrics())
}

/// `GET /api/info`: connections, topics with subscriber counts, uptime and traffic counters.
pub(super) fn info(server: &Server) -> HttpResponse {
    let metrics = server.prometheus_metrics();
    let uptime_secs = server
        .health_snapshot()
        .get("uptime_secs")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let mut topics = server.topics();
    let topics_total = topics.len();
    topics.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    topics.truncate(MAX_INFO_TOPICS);
    let topics: Vec<Value> = topics
        .into_iter()
        .map(|(topic, subscribers)| json!({"topic": topic, "subscribers": subscribers}))
        .collect();
    HttpResponse::json(
        200,
        &json!({
            "connections": server.connection_count(),
            "topics": topics,
            "topics_total": topics_total,
            "uptime_secs": uptime_secs,
            "messages_received_total": sample(&metrics, "wse_messages_received_total"),
            "messages_sent_total": sample(&metrics, "wse_messages_sent_total"),
            "bytes_received_total": sample(&metrics, "wse_bytes_received_total"),
            "bytes_sent_total": sample(&metrics, "wse_bytes_sent_total"),
            "cluster": server.cluster().map(|c| json!({
                "instance_id": c.instance_id(),
                "peers": server.cluster_info_json(),
            })),
        }),
    )
}

/// The value of the unlabelled sample `name` in Prometheus text (0 when absent).
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `GET /api/presence?topic=T`: the visible users of `T` (none when presence is off).
pub(super) fn presence(server: &Server, query: &Query) -> Result<HttpResponse, ApiError> {
    let topic = query.require("topic")?;
    let users: Map<String, Value> = server
        .presence(topic)
        .into_iter()
        .map(|(user, p)| (user, json!({"data": p.data, "connections": p.connections})))
        .collect();
    Ok(HttpResponse::json(
        200,
        &json!({"topic": topic, "users": users}),
    ))
}

/// `GET /api/presence_stats?topic=T`: user and connection counts of `T`.
pub(super) fn presence_stats(server: &Server, query: &Query) -> Result<HttpResponse, ApiError> {
    let topic = query.require("topic")?;
    let stats = server.presence_stats(topic);
    Ok(HttpResponse::json(
        200,
        &json!({
            "topic": topic,
            "num_users": stats.num_users,
            "num_connections": stats.num_connections,
        }),
    ))
}

/// `GET /api/history?topic=T&limit=N`: the newest `N` messages of `T`'s recovery ring, oldest
/// first, each parsed as JSON (a stored text that is not JSON is returned as a string).
pub(super) fn history(server: &Server, query: &Query) -> Result<HttpResponse, ApiError> {
    let topic = query.require("topic")?;
    let limit = match query.get("limit") {
        None => DEFAULT_HISTORY_LIMIT,
        Some(raw) => parse_limit(raw)?,
    };
    let body = match server.recovery_history(topic, limit) {
        Some(h) => {
            let messages: Vec<Value> = h
                .messages
                .into_iter()
                .map(|m| serde_json::from_str(&m).unwrap_or(Value::String(m)))
                .collect();
            json!({
                "topic": topic,
                "epoch": h.epoch.to_string(),
                "first_offset": h.first_offset,
                "messages": messages,
            })
        }
        None => json!({"topic": topic, "epoch": null, "first_offset": 0, "messages": []}),
    };
    Ok(HttpResponse::json(200, &body))
}

/// `limit`: an integer in `1..=MAX_HISTORY_LIMIT`.
fn parse_limit(raw: &str) -> Result<usize, ApiError> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_HISTORY_LIMIT).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(
                "limit",
                &format!("expected an integer from 1 to {MAX_HISTORY_LIMIT}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_by_exact_name() {
        let text = "# TYPE wse_bytes_sent_total counter\nwse_bytes_sent_total 42\n\
                    wse_bytes_sent_total_other 7\n";
        assert_eq!(sample(text, "wse_bytes_sent_total"), 42);
        assert_eq!(sample(text, "wse_missing"), 0);
        assert_eq!(sample("wse_x_total 9\n", "wse_x"), 0);
    }

    #[test]
    fn history_limits_outside_the_range_are_refused() {
        assert_eq!(parse_limit("1").unwrap(), 1);
        assert_eq!(parse_limit("10000").unwrap(), MAX_HISTORY_LIMIT);
        for bad in ["0", "10001", "-1", "ten", "", "1.5"] {
            assert_eq!(parse_limit(bad).unwrap_err().status(), 400, "{bad}");
        }
    }
}
