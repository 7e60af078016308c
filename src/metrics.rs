//! Prometheus metrics (the `prometheus-client` crate, OpenMetrics text):
//! request counts and latency histograms by method, route pattern and
//! status; refusals counted per minute instead of audited one by one; how
//! far behind audit sealing is; pool gauges sampled when scraped.
//!
//! Labels are bounded: route *patterns* (or "unmatched"), status codes, and
//! the HTTP methods of the route table (anything else is "OTHER"), so no
//! request can create a series and no request data can reach a label.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    refusals: Family<KindLabels, Counter>,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    unsealed: Gauge,
    seal_lag: Gauge<f64, AtomicU64>,
    quarantined: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(histogram);
        let refusals = Family::<KindLabels, Counter>::default();
        let (pool_size, pool_idle, pool_max) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        let (unsealed, quarantined) = (Gauge::default(), Gauge::default());
        let seal_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "phi_http_requests",
            "HTTP requests by method, route pattern and status",
            requests.clone(),
        );
        registry.register(
            "phi_http_request_duration_seconds",
            "Request latency",
            latency.clone(),
        );
        registry.register(
            "phi_refusals",
            "Refused anonymous requests and credentials (audited per client and minute)",
            refusals.clone(),
        );
        registry.register(
            "phi_db_pool_connections",
            "Open connections in the pool",
            pool_size.clone(),
        );
        registry.register(
            "phi_db_pool_idle_connections",
            "Idle connections in the pool",
            pool_idle.clone(),
        );
        registry.register(
            "phi_db_pool_max_connections",
            "Configured pool maximum",
            pool_max.clone(),
        );
        registry.register(
            "phi_audit_unsealed_entries",
            "Committed audit entries not yet in the hash chain",
            unsealed.clone(),
        );
        registry.register(
            "phi_audit_seal_lag_seconds",
            "Age of the oldest audit entry not yet sealed (0 when caught up)",
            seal_lag.clone(),
        );
        registry.register(
            "phi_audit_quarantined_entries",
            "Audit entries that can never be sealed (inserted behind the log's back)",
            quarantined.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            refusals,
            pool_size,
            pool_idle,
            pool_max,
            unsealed,
            seal_lag,
            quarantined,
        }
    }
}

/// Pool figures sampled when `/metrics` is scraped.
pub struct PoolGauges {
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

/// The methods of the route table; any other is one label.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "PUT" => "PUT",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn refusal(&self, kind: &'static str) {
        self.refusals.get_or_create(&KindLabels { kind }).inc();
    }

    pub fn audit_status(&self, unsealed: i64, lag_secs: f64, quarantined: i64) {
        self.unsealed.set(unsealed);
        self.seal_lag.set(lag_secs);
        self.quarantined.set(quarantined);
    }

    pub fn render(&self, pool: &PoolGauges) -> String {
        self.pool_size.set(pool.size as i64);
        self.pool_idle.set(pool.idle as i64);
        self.pool_max.set(pool.max as i64);
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

/// The OpenMetrics content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_bounded() {
        let m = Metrics::default();
        m.observe_request("GET", "/health", 200, Duration::from_micros(300));
        m.observe_request("GET", "/health", 200, Duration::from_millis(30));
        m.observe_request("FOO1", "unmatched", 405, Duration::from_millis(1));
        m.observe_request("FOO2", "unmatched", 405, Duration::from_millis(1));
        let text = m.render(&PoolGauges {
            size: 3,
            idle: 2,
            max: 10,
        });
        let labels = "method=\"GET\",route=\"/health\",status=\"200\"";
        assert!(
            text.contains(&format!("phi_http_requests_total{{{labels}}} 2")),
            "{text}"
        );
        // OpenMetrics puts `le` first.
        assert!(text.contains(&format!(
            "phi_http_request_duration_seconds_bucket{{le=\"0.0005\",{labels}}} 1"
        )));
        assert!(text.contains(&format!(
            "phi_http_request_duration_seconds_bucket{{le=\"0.05\",{labels}}} 2"
        )));
        assert!(text.contains(
            "phi_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 2"
        ));
        assert!(!text.contains("FOO"));
        assert!(text.contains("phi_db_pool_connections 3\n"));
        assert!(text.contains("phi_db_pool_idle_connections 2\n"));
    }
}
