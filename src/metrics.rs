//! Prometheus text exposition, written by hand: request counts and latency
//! histograms by method, route pattern and status, plus pool gauges.
//!
//! Labels are route *patterns* and status codes only, so cardinality is
//! bounded by the route table and no request data can reach a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

type Key = (String, String, u16);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Key, Histogram>>,
}

/// Pool figures sampled when `/metrics` is scraped.
pub struct PoolGauges {
    pub size: u32,
    pub idle: usize,
    pub max: u32,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let h = map
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    pub fn render(&self, pool: &PoolGauges) -> String {
        let mut out = String::with_capacity(4096);
        let map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str(
            "# HELP phi_http_requests_total HTTP requests by method, route pattern and status.\n",
        );
        out.push_str("# TYPE phi_http_requests_total counter\n");
        for ((method, route, status), h) in map.iter() {
            let _ = writeln!(
                out,
                "phi_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                h.count
            );
        }
        out.push_str("# HELP phi_http_request_duration_seconds Request latency.\n");
        out.push_str("# TYPE phi_http_request_duration_seconds histogram\n");
        for ((method, route, status), h) in map.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "phi_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "phi_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "phi_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "phi_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        drop(map);
        let _ = write!(
            out,
            "# HELP phi_db_pool_connections Open connections in the pool.\n\
             # TYPE phi_db_pool_connections gauge\nphi_db_pool_connections {}\n\
             # HELP phi_db_pool_idle_connections Idle connections in the pool.\n\
             # TYPE phi_db_pool_idle_connections gauge\nphi_db_pool_idle_connections {}\n\
             # HELP phi_db_pool_max_connections Configured pool maximum.\n\
             # TYPE phi_db_pool_max_connections gauge\nphi_db_pool_max_connections {}\n",
            pool.size, pool.idle, pool.max
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_request("GET", "/health", 200, Duration::from_micros(300));
        m.observe_request("GET", "/health", 200, Duration::from_millis(30));
        let text = m.render(&PoolGauges {
            size: 3,
            idle: 2,
            max: 10,
        });
        let labels = "method=\"GET\",route=\"/health\",status=\"200\"";
        assert!(text.contains(&format!("phi_http_requests_total{{{labels}}} 2")));
        assert!(text.contains(&format!(
            "phi_http_request_duration_seconds_bucket{{{labels},le=\"0.0005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "phi_http_request_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2"
        )));
        assert!(text.contains(&format!(
            "phi_http_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 1"
        )));
        assert!(text.contains("phi_db_pool_connections 3\n"));
        assert!(text.contains("phi_db_pool_idle_connections 2\n"));
    }
}
