//! SQL of the health routes and the background upkeep the service runs as
//! itself: a round trip to the server, the sealing status, and the
//! analytics refresh.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{Result, Tx};

pub async fn server_version(tx: &mut Tx) -> Result<String> {
    Ok(tx
        .q_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut **tx)
        .await?)
}

/// How far behind sealing is (`audit.status()`).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealStatus {
    pub unsealed: i64,
    pub oldest_unsealed: Option<DateTime<Utc>>,
    pub quarantined: i64,
    pub head_pos: Option<i64>,
    pub last_checkpoint: Option<DateTime<Utc>>,
}

pub async fn seal_status(tx: &mut Tx) -> Result<SealStatus> {
    Ok(tx.q_as(
        "SELECT unsealed, oldest_unsealed, quarantined, head_pos, last_checkpoint FROM audit.status()",
    )
    .fetch_one(&mut **tx)
    .await?)
}

/// Rebuilds the analysts' aggregates (as their owner).
pub async fn refresh_analytics(tx: &mut Tx) -> Result<()> {
    tx.q("SELECT analytics.refresh()")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Refuses a service connection that is not phi_app, or that could bypass
/// row-level security. Runs once per new connection.
pub async fn check_service_role(conn: &mut PgConnection) -> std::result::Result<(), sqlx::Error> {
    use sqlx::{Executor, Row};
    // The simple protocol (no parameters): one round trip, nothing prepared,
    // so it holds outside a transaction behind PgBouncer too.
    let row = conn
        .fetch_one(
            "SELECT session_user::text, r.rolsuper OR r.rolbypassrls \
             FROM pg_roles r WHERE r.rolname = session_user",
        )
        .await?;
    let (user, bypass): (String, bool) = (row.try_get(0)?, row.try_get(1)?);
    if user != "phi_app" || bypass {
        return Err(sqlx::Error::Configuration(
            format!(
                "DATABASE_URL logs in as {user:?}: the service must log in as phi_app \
                 (the row-level security policies and guards are written for it)"
            )
            .into(),
        ));
    }
    Ok(())
}

/// A replica's lag in seconds: 0 when it has replayed all it received (an
/// idle primary sends nothing, and the last replay's age would grow without
/// the replica being behind); otherwise the age of the last transaction it
/// replayed. On a primary (not in recovery), 0.
pub async fn replica_lag(pool: &sqlx::PgPool) -> std::result::Result<f64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CASE \
           WHEN NOT pg_is_in_recovery() THEN 0 \
           WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
           ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 1e9) END::float8",
    )
    .fetch_one(pool)
    .await
}
