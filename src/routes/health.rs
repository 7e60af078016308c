//! Liveness, database readiness and metrics.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;
use sqlx::PgPool;

use crate::error::ApiError;
use crate::metrics::{Metrics, PoolGauges};

/// The configured pool maximum, for the health and metrics reports.
#[derive(Clone, Copy, Debug)]
pub struct PoolMax(pub u32);

/// Process alive; touches nothing else.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn alive() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// A real round trip to PostgreSQL, bounded so a dead database answers fast.
#[utoipa::path(get, path = "/health/database", tag = "health", responses(
    (status = 200, description = "Server version and pool figures"),
    (status = 503, description = "Database unreachable (with Retry-After)", body = crate::openapi::ErrorBody),
))]
pub async fn database(
    pool: web::Data<PgPool>,
    max: web::Data<PoolMax>,
) -> Result<HttpResponse, ApiError> {
    let round_trip = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar::<_, String>("SELECT current_setting('server_version')")
            .fetch_one(pool.get_ref()),
    )
    .await;
    match round_trip {
        Ok(Ok(version)) => {
            let size = pool.size();
            let idle = pool.num_idle();
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

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        what: "database",
        retry_after_secs: 5,
    }
}

/// Prometheus text: request counts and latency histograms by route and
/// status, and pool gauges.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(
    metrics: web::Data<Metrics>,
    pool: web::Data<PgPool>,
    max: web::Data<PoolMax>,
) -> HttpResponse {
    let text = metrics.render(&PoolGauges {
        size: pool.size(),
        idle: pool.num_idle(),
        max: max.0,
    });
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
