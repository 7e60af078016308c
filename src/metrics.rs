//! Prometheus metrics (the `prometheus-client` crate, OpenMetrics text):
//! request counts and latency histograms by method, route pattern and
//! status; refusals counted per minute instead of audited one by one; how
//! far behind audit sealing is, the chain's head and its last checkpoint,
//! and whether the database answered (all sampled when scraped); pool
//! gauges and the time requests waited for a connection; keyring reloads;
//! the build; the process (memory, CPU, open files, start time).
//! `deploy/monitoring/` has the alerts and the dashboard built on them.
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KekLabels {
    kek: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// The commit this binary was built from (`build.rs`), or "unknown".
pub const COMMIT: &str = env!("PHI_GIT_COMMIT");

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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
    database_up: Gauge,
    chain_head: Gauge,
    last_checkpoint: Gauge<f64, AtomicU64>,
    acquire_timeouts: Counter,
    acquire_wait: Counter<f64, AtomicU64>,
    keyring_reloads: Family<ResultLabels, Counter>,
    keyring_last_reload: Gauge<f64, AtomicU64>,
    keyring_active: Gauge,
    analytics_refreshes: Family<ResultLabels, Counter>,
    analytics_last_refresh: Gauge<f64, AtomicU64>,
    kek_up: Family<KekLabels, Gauge>,
    tls_ca_not_after: Family<FileLabels, Gauge>,
    /// The CA files to read at each scrape (`trust_files`).
    ca_files: std::sync::Mutex<Vec<std::path::PathBuf>>,
    replica_lag: Gauge<f64, AtomicU64>,
    replica_in_use: Gauge,
    process_rss: Gauge,
    process_cpu: Counter<f64, AtomicU64>,
    process_open_fds: Gauge,
    process_max_fds: Gauge,
    process_start: Gauge<f64, AtomicU64>,
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
        let database_up = Gauge::default();
        registry.register(
            "phi_database_up",
            "Whether the last scrape could ask the database (1) or not (0)",
            database_up.clone(),
        );
        let chain_head = Gauge::default();
        registry.register(
            "phi_audit_chain_head_position",
            "Position of the audit hash chain's head",
            chain_head.clone(),
        );
        let last_checkpoint = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "phi_audit_last_checkpoint_timestamp_seconds",
            "Unix time of the last signed checkpoint of the chain (0: none yet)",
            last_checkpoint.clone(),
        );
        let acquire_timeouts = Counter::default();
        registry.register(
            "phi_db_pool_acquire_timeouts",
            "Requests that waited for a pool connection until the acquire timeout",
            acquire_timeouts.clone(),
        );
        let acquire_wait = Counter::<f64, AtomicU64>::default();
        registry.register(
            "phi_db_pool_acquire_wait_seconds",
            "Time requests spent waiting for a pool connection",
            acquire_wait.clone(),
        );
        let keyring_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "phi_keyring_reloads",
            "Keyring reloads (SIGHUP) by result: ok, or refused (the old keyring stays)",
            keyring_reloads.clone(),
        );
        let keyring_last_reload = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "phi_keyring_last_reload_timestamp_seconds",
            "Unix time of the last keyring reload, whatever its result (0: none)",
            keyring_last_reload.clone(),
        );
        let keyring_active = Gauge::default();
        registry.register(
            "phi_keyring_active_key_id",
            "Id of the data key new values are sealed under",
            keyring_active.clone(),
        );
        let analytics_refreshes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "phi_analytics_refreshes",
            "Scheduled analytics refreshes by this process (PHI_ANALYTICS_REFRESH_SECS), by result: ok, failed",
            analytics_refreshes.clone(),
        );
        let analytics_last_refresh = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "phi_analytics_last_refresh_timestamp_seconds",
            "Unix time of this process's last successful analytics refresh (0: none yet)",
            analytics_last_refresh.clone(),
        );
        let kek_up = Family::<KekLabels, Gauge>::default();
        registry.register(
            "phi_kek_up",
            "1 when the KEK the keyring is wrapped by answered the last check (PHI_KEK_CHECK_SECS), 0 when not",
            kek_up.clone(),
        );
        let tls_ca_not_after = Family::<FileLabels, Gauge>::default();
        registry.register(
            "phi_tls_ca_not_after_timestamp_seconds",
            "When the first certificate of a CA file the gateway verifies against expires (DATABASE_CA_FILE, PHI_KEK_CA_FILE; 0: unreadable)",
            tls_ca_not_after.clone(),
        );
        let replica_lag = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "phi_db_replica_lag_seconds",
            "How far the read replica (DATABASE_READ_URL) is behind, at the last check each second (-1: it does not answer)",
            replica_lag.clone(),
        );
        let replica_in_use = Gauge::default();
        registry.register(
            "phi_db_replica_in_use",
            "1 while anonymous directory reads go to the replica; 0 while they fall back to the primary",
            replica_in_use.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: COMMIT,
            })
            .set(1);
        registry.register("phi_build_info", "The running build (always 1)", build);
        let process_rss = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory",
            process_rss.clone(),
        );
        let process_cpu = Counter::<f64, AtomicU64>::default();
        registry.register(
            "process_cpu_seconds",
            "CPU time, user and system",
            process_cpu.clone(),
        );
        let process_open_fds = Gauge::default();
        registry.register(
            "process_open_fds",
            "Open file descriptors",
            process_open_fds.clone(),
        );
        let process_max_fds = Gauge::default();
        registry.register(
            "process_max_fds",
            "Limit of open file descriptors",
            process_max_fds.clone(),
        );
        let process_start = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "process_start_time_seconds",
            "Unix time the process started",
            process_start.clone(),
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
            database_up,
            chain_head,
            last_checkpoint,
            acquire_timeouts,
            acquire_wait,
            keyring_reloads,
            keyring_last_reload,
            keyring_active,
            analytics_refreshes,
            analytics_last_refresh,
            kek_up,
            tls_ca_not_after,
            ca_files: Default::default(),
            replica_lag,
            replica_in_use,
            process_rss,
            process_cpu,
            process_open_fds,
            process_max_fds,
            process_start,
        }
    }
}

/// What the audit status said at a scrape (`store::health::seal_status`).
pub struct AuditGauges {
    pub head: Option<i64>,
    pub last_checkpoint: Option<chrono::DateTime<chrono::Utc>>,
}

/// The process's own figures, from /proc (Linux; elsewhere none).
struct ProcessFigures {
    rss_bytes: i64,
    cpu_seconds: f64,
    open_fds: i64,
    max_fds: i64,
    start_unix: f64,
}

fn process_figures() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // /proc counts CPU and start time in USER_HZ, 100 on every Linux ABI.
    const TICK: f64 = 100.0;
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let cpu_seconds = (field(14)? + field(15)?) as f64 / TICK;
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<i64>()
        .ok()?
        * 1024;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let start_unix = boot + field(22)? as f64 / TICK;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as i64;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .unwrap_or(-1);
    Some(ProcessFigures {
        rss_bytes,
        cpu_seconds,
        open_fds,
        max_fds,
        start_unix,
    })
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

    /// The rest of a scrape's audit status, or `None` when the database
    /// could not be asked (`phi_database_up` 0; the audit gauges keep
    /// their last values).
    pub fn audit_chain(&self, status: Option<AuditGauges>) {
        let Some(a) = status else {
            self.database_up.set(0);
            return;
        };
        self.database_up.set(1);
        self.chain_head.set(a.head.unwrap_or(0));
        self.last_checkpoint.set(
            a.last_checkpoint
                .map(|t| t.timestamp_millis() as f64 / 1000.0)
                .unwrap_or(0.0),
        );
    }

    /// The data key new values are sealed under (at start and after each
    /// reload).
    pub fn keyring_active(&self, id: u32) {
        self.keyring_active.set(id as i64);
    }

    /// The CA files whose expiry each scrape reports.
    pub fn trust_files(&self, files: Vec<std::path::PathBuf>) {
        *self.ca_files.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    fn sample_ca_files(&self) {
        let files = self
            .ca_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for f in files {
            let not_after = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| crate::certs::earliest_not_after(&t))
                .unwrap_or(0);
            self.tls_ca_not_after
                .get_or_create(&FileLabels {
                    file: f.display().to_string(),
                })
                .set(not_after);
        }
    }

    /// Whether the KEK (its URI, which holds no secret) answered its last
    /// check. Only the KEK in use has a series.
    pub fn kek_up(&self, kek: &str, up: bool) {
        let labels = KekLabels {
            kek: kek.to_string(),
        };
        if self.kek_up.get(&labels).is_none() {
            self.kek_up.clear();
        }
        self.kek_up.get_or_create(&labels).set(i64::from(up));
    }

    /// The read replica's last check.
    pub fn replica(&self, lag: Option<f64>, in_use: bool) {
        self.replica_lag.set(lag.unwrap_or(-1.0));
        self.replica_in_use.set(i64::from(in_use));
    }

    /// A scheduled analytics refresh and its result.
    pub fn analytics_refreshed(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.analytics_refreshes
            .get_or_create(&ResultLabels { result })
            .inc();
        if ok {
            self.analytics_last_refresh.set(unix_now());
        }
    }

    /// A keyring reload (SIGHUP) and its result.
    pub fn keyring_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.keyring_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
        self.keyring_last_reload.set(unix_now());
    }

    pub fn render(&self, pool: &PoolGauges) -> String {
        self.sample_ca_files();
        self.pool_size.set(pool.size as i64);
        self.pool_idle.set(pool.idle as i64);
        self.pool_max.set(pool.max as i64);
        // Totals kept by the store (`store::acquire_figures`), brought up to
        // date: counters only go up.
        let (timeouts, wait) = crate::store::acquire_figures();
        let seen = self.acquire_timeouts.get();
        if timeouts > seen {
            self.acquire_timeouts.inc_by(timeouts - seen);
        }
        let waited = self.acquire_wait.get();
        if wait > waited {
            self.acquire_wait.inc_by(wait - waited);
        }
        if let Some(p) = process_figures() {
            self.process_rss.set(p.rss_bytes);
            let cpu = self.process_cpu.get();
            if p.cpu_seconds > cpu {
                self.process_cpu.inc_by(p.cpu_seconds - cpu);
            }
            self.process_open_fds.set(p.open_fds);
            self.process_max_fds.set(p.max_fds);
            self.process_start.set(p.start_unix);
        }
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
