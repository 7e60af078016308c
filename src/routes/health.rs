//! Liveness, database readiness, audit sealing, and metrics.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

use crate::error::ApiError;
use crate::identity::Principal;
use crate::metrics::{Metrics, PoolGauges};
use crate::store;

/// Every worker's pool, for the metrics' totals.
#[derive(Default)]
pub struct WorkerPools(std::sync::Mutex<Vec<PgPool>>);

impl WorkerPools {
    pub fn add(&self, pool: PgPool) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(pool);
    }

    /// Open and idle connections, all workers together.
    pub fn figures(&self) -> (u32, usize) {
        let pools = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (
            pools.iter().map(PgPool::size).sum(),
            // A connection a worker holds between its requests is idle
            // too, though the pool counts it as in use (store::tx).
            pools
                .iter()
                .map(|p| p.num_idle() + crate::store::held(p))
                .sum(),
        )
    }
}

/// The configured pool maximum, for the health and metrics reports.
#[derive(Clone, Copy, Debug)]
pub struct PoolMax(pub u32);

/// How far behind sealing may fall before `/health/audit` says so.
#[derive(Clone, Copy, Debug)]
pub struct SealLagLimit(pub Duration);

/// Process alive; touches nothing else.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        what: "database",
        retry_after_secs: 5,
    }
}

/// A real round trip to PostgreSQL, bounded so a dead database answers fast.
#[utoipa::path(get, path = "/health/database", tag = "health", responses(
    (status = 200, description = "Server version and pool figures"),
    (status = 503, description = "Database unreachable (with Retry-After)", body = crate::error::ErrorBody),
))]
pub async fn database(
    pool: web::Data<PgPool>,
    pools: web::Data<WorkerPools>,
    max: web::Data<PoolMax>,
) -> Result<HttpResponse, ApiError> {
    let round_trip = tokio::time::timeout(Duration::from_secs(2), async {
        let mut tx = store::begin(&pool, &Principal::anonymous()).await?;
        let v = store::health::server_version(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(v)
    })
    .await;
    match round_trip {
        Ok(Ok(version)) => {
            let (size, idle) = pools.figures();
            Ok(HttpResponse::Ok().json(json!({
                "status": "ok",
                "serverVersion": version,
                "pool": {
                    "size": size,
                    "idle": idle,
                    "inUse": (size as usize).saturating_sub(idle),
                    "max": max.0,
                }
            })))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database health check failed");
            Err(unavailable())
        }
        Err(_) => {
            tracing::warn!("database health check timed out");
            Err(unavailable())
        }
    }
}

/// How far behind sealing the audit log is: `status` is "ok" while the
/// oldest unsealed entry is younger than the limit and nothing is
/// quarantined, else "behind" (for monitoring, with the metrics
/// `phi_audit_*`; readiness does not depend on it). 503 only when the
/// database cannot be asked.
#[utoipa::path(get, path = "/health/audit", tag = "health", responses(
    (status = 200, description = "Sealing status: status ok or behind, lagSeconds, unsealed, quarantined, head position, last checkpoint"),
    (status = 503, description = "Database unreachable (with Retry-After)", body = crate::error::ErrorBody),
))]
pub async fn audit(
    pool: web::Data<PgPool>,
    metrics: web::Data<Metrics>,
    limit: web::Data<SealLagLimit>,
) -> Result<HttpResponse, ApiError> {
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        let mut tx = store::begin(&pool, &Principal::anonymous()).await?;
        let s = store::health::seal_status(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(s)
    })
    .await
    .map_err(|_| unavailable())??;
    let lag = status
        .oldest_unsealed
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics.audit_status(status.unsealed, lag, status.quarantined);
    let ok = lag <= limit.0.as_secs_f64() && status.quarantined == 0;
    let body = json!({
        "status": if ok { "ok" } else { "behind" },
        "lagSeconds": lag,
        "seal": status,
    });
    Ok(HttpResponse::Ok().json(body))
}

/// Prometheus (OpenMetrics) text: request counts and latency histograms by
/// route and status, refusals, audit sealing, and pool gauges.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "OpenMetrics text format", content_type = "application/openmetrics-text")))]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    pools: web::Data<WorkerPools>,
    max: web::Data<PoolMax>,
) -> HttpResponse {
    let (size, idle) = pools.figures();
    let text = metrics.render(&PoolGauges {
        size,
        idle,
        max: max.0,
    });
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text)
}
