//! Latency histograms and the one-line JSON result every scenario prints.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// A microsecond latency histogram (1 µs to 1 h, 3 significant digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid static bounds")
}

/// Records `d` in microseconds (saturating at the histogram's top).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    record_us(h, d.as_micros() as u64);
}

/// Records `us` microseconds (clamped into the histogram's range).
pub fn record_us(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.max(1));
}

/// p50/p90/p99/max in milliseconds, as JSON fields prefixed with `name`.
pub fn percentiles(out: &mut Map<String, Value>, name: &str, h: &Histogram<u64>) {
    let ms = |us: u64| (us as f64 / 1000.0 * 1000.0).round() / 1000.0;
    out.insert(format!("{name}_count"), json!(h.len()));
    if h.is_empty() {
        return;
    }
    out.insert(
        format!("{name}_p50_ms"),
        json!(ms(h.value_at_quantile(0.50))),
    );
    out.insert(
        format!("{name}_p90_ms"),
        json!(ms(h.value_at_quantile(0.90))),
    );
    out.insert(
        format!("{name}_p99_ms"),
        json!(ms(h.value_at_quantile(0.99))),
    );
    out.insert(format!("{name}_max_ms"), json!(ms(h.max())));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_reported_in_milliseconds() {
        let mut h = latency_histogram();
        for us in 1..=1000 {
            record_us(&mut h, us * 10);
        }
        let mut out = Map::new();
        percentiles(&mut out, "lat", &h);
        assert_eq!(out["lat_count"], json!(1000));
        let p50 = out["lat_p50_ms"].as_f64().unwrap();
        let p99 = out["lat_p99_ms"].as_f64().unwrap();
        assert!((4.9..=5.1).contains(&p50), "{p50}");
        assert!((9.8..=10.0).contains(&p99), "{p99}");
    }

    #[test]
    fn an_empty_histogram_reports_only_its_count() {
        let mut out = Map::new();
        percentiles(&mut out, "x", &latency_histogram());
        assert_eq!(out.len(), 1);
    }
}
