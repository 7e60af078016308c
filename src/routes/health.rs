//! Liveness, database readiness, audit sealing, and metrics.
//!
//! On the API port, anyone may ask whether the service and its database are
//! up and whether sealing keeps up: the answer is `ok`, `behind` or 503,
//! nothing more (no server version, pool sizes or figures for a stranger to
//! map the deployment by). The details and `/metrics` are served on the
//! operations listener (`PHI_METRICS_ADDR`), which operators keep off the
//! public network (`ops_configure`).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;

use crate::error::ApiError;
use crate::metrics::{Metrics, PoolGauges};
use crate::service::health;
use crate::store::Db;

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

/// Readiness: the database answers. `{"status":"ok"}`, or 503 with
/// Retry-After.
#[utoipa::path(get, path = "/health/database", tag = "health", responses(
    (status = 200, description = "The database answers: {\"status\":\"ok\"}"),
    (status = 503, description = "Database unreachable (with Retry-After)", body = crate::error::ErrorBody),
))]
pub async fn database(db: web::Data<Db>) -> Result<HttpResponse, ApiError> {
    health::round_trip(&db).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": "ok" })))
}

/// The operations listener's readiness: server version and pool figures.
pub async fn database_details(
    db: web::Data<Db>,
    pools: web::Data<WorkerPools>,
    max: web::Data<PoolMax>,
    replica: web::Data<Replica>,
) -> Result<HttpResponse, ApiError> {
    let version = health::round_trip(&db).await?;
    let (size, idle) = pools.figures();
    let mut body = json!({
        "status": "ok",
        "serverVersion": version,
        "pool": {
            "size": size,
            "idle": idle,
            "inUse": (size as usize).saturating_sub(idle),
            "max": max.0,
        }
    });
    // The replica is not the primary: its lag does not make this instance
    // unready (reads fall back to the primary); it is reported.
    if let Some(r) = &replica.0 {
        body["replica"] = json!({
            "lagSeconds": r.lag_seconds(),
            "maxLagSeconds": r.max.as_secs_f64(),
            "inUse": r.usable(),
        });
    }
    Ok(HttpResponse::Ok().json(body))
}

/// The read replica's state, when one is configured (`DATABASE_READ_URL`).
pub struct Replica(pub Option<std::sync::Arc<crate::replica::ReplicaLag>>);

/// How far behind sealing the audit log is: "ok" while the oldest
/// unsealed entry is younger than the limit and nothing is quarantined,
/// else "behind" (readiness does not depend on it). 503 only when the
/// database cannot be asked. Also updates the `phi_audit_*` gauges.
async fn seal_state(
    db: &Db,
    metrics: &Metrics,
    limit: Duration,
) -> Result<(bool, f64, crate::store::health::SealStatus), ApiError> {
    let status = health::seal_status(db).await?;
    let lag = status
        .oldest_unsealed
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics.audit_status(status.unsealed, lag, status.quarantined);
    let ok = lag <= limit.as_secs_f64() && status.quarantined == 0;
    Ok((ok, lag, status))
}

/// Whether the audit log is sealed in time: `{"status":"ok"|"behind"}`
/// (the figures are on the operations listener).
#[utoipa::path(get, path = "/health/audit", tag = "health", responses(
    (status = 200, description = "Sealing status: {\"status\":\"ok\"} or {\"status\":\"behind\"}"),
    (status = 503, description = "Database unreachable (with Retry-After)", body = crate::error::ErrorBody),
))]
pub async fn audit(
    db: web::Data<Db>,
    metrics: web::Data<Metrics>,
    limit: web::Data<SealLagLimit>,
) -> Result<HttpResponse, ApiError> {
    let (ok, _, _) = seal_state(&db, &metrics, limit.0).await?;
    Ok(HttpResponse::Ok().json(json!({ "status": if ok { "ok" } else { "behind" } })))
}

/// The operations listener's audit status: lagSeconds, unsealed,
/// quarantined, head position, last checkpoint.
pub async fn audit_details(
    db: web::Data<Db>,
    metrics: web::Data<Metrics>,
    limit: web::Data<SealLagLimit>,
) -> Result<HttpResponse, ApiError> {
    let (ok, lag, status) = seal_state(&db, &metrics, limit.0).await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": if ok { "ok" } else { "behind" },
        "lagSeconds": lag,
        "seal": status,
    })))
}

/// Prometheus (OpenMetrics) text: request counts and latency histograms by
/// route and status, refusals, audit sealing, and pool gauges. On the
/// operations listener only.
pub async fn metrics(
    metrics: web::Data<Metrics>,
    pools: web::Data<WorkerPools>,
    max: web::Data<PoolMax>,
    db: web::Data<Db>,
    limit: web::Data<SealLagLimit>,
) -> HttpResponse {
    // The audit gauges are the database's figures at this scrape (an
    // alert on the seal lag must not wait for someone to ask /health).
    let chain = seal_state(&db, &metrics, limit.0)
        .await
        .ok()
        .map(|(_, _, s)| crate::metrics::AuditGauges {
            head: s.head_pos,
            last_checkpoint: s.last_checkpoint,
        });
    metrics.audit_chain(chain);
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

/// The operations listener's routes (`PHI_METRICS_ADDR`): liveness, the
/// detailed readiness and sealing status, and the metrics.
pub fn ops_configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(alive)))
        .service(web::resource("/health/database").route(web::get().to(database_details)))
        .service(web::resource("/health/audit").route(web::get().to(audit_details)))
        .service(web::resource("/metrics").route(web::get().to(metrics)));
}
