//! `[server]`: where and how the HTTP server listens.

use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use super::env::{Env, parse_env};

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    pub workers: Option<usize>,
    /// How long in-flight requests may run after SIGTERM before exit.
    pub shutdown_timeout: Duration,
    /// Log format: `json` for machines, `pretty` for people.
    pub log_format: LogFormat,
    /// How long a request body may take to arrive (408 after).
    pub body_timeout: Duration,
    /// The analysts' aggregates are rebuilt this often (0: never here).
    pub analytics_refresh: Duration,
    /// The operations listener (`host:port`): `/metrics` and the detailed
    /// health answers. Unset: none (the API port answers only ok/503).
    pub metrics_addr: Option<String>,
    /// Where request spans go, over OTLP/HTTP (`http://collector:4318`;
    /// `/v1/traces` is added). Unset: no spans leave the process.
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileServer {
    host: Option<String>,
    port: Option<u16>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    shutdown_timeout_secs: Option<u64>,
    log_format: Option<LogFormat>,
    body_timeout_secs: Option<u64>,
    analytics_refresh_secs: Option<u64>,
    metrics_addr: Option<String>,
    otlp_endpoint: Option<String>,
}

impl ServerSettings {
    pub(super) fn build(file: FileServer, env: &dyn Env) -> anyhow::Result<Self> {
        let server = ServerSettings {
            host: env
                .var("PHI_HOST")
                .or(file.host)
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: parse_env(env, "PHI_PORT")?.or(file.port).unwrap_or(8080),
            max_body_bytes: parse_env(env, "PHI_MAX_BODY_BYTES")?
                .or(file.max_body_bytes)
                .unwrap_or(256 * 1024),
            workers: parse_env(env, "PHI_WORKERS")?.or(file.workers),
            shutdown_timeout: Duration::from_secs(
                parse_env(env, "PHI_SHUTDOWN_TIMEOUT_SECS")?
                    .or(file.shutdown_timeout_secs)
                    .unwrap_or(30),
            ),
            log_format: match env.var("PHI_LOG_FORMAT").as_deref() {
                Some("json") => LogFormat::Json,
                Some("pretty") => LogFormat::Pretty,
                Some(other) => bail!("PHI_LOG_FORMAT: unknown format {other:?}"),
                None => file.log_format.unwrap_or(LogFormat::Json),
            },
            body_timeout: Duration::from_secs(
                parse_env(env, "PHI_BODY_TIMEOUT_SECS")?
                    .or(file.body_timeout_secs)
                    .unwrap_or(10),
            ),
            analytics_refresh: Duration::from_secs(
                parse_env(env, "PHI_ANALYTICS_REFRESH_SECS")?
                    .or(file.analytics_refresh_secs)
                    .unwrap_or(3600),
            ),
            metrics_addr: env.var("PHI_METRICS_ADDR").or(file.metrics_addr),
            otlp_endpoint: env
                .var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .or(file.otlp_endpoint),
        };
        if let Some(e) = &server.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            bail!("OTEL_EXPORTER_OTLP_ENDPOINT: {e:?} is not an http:// or https:// URL");
        }

        Ok(server)
    }
}
