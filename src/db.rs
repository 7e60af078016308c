//! The connection pool and migrations.
//!
//! The service connects as `phi_app`, a role that owns nothing and cannot
//! bypass row-level security. Pools are lazy: the service starts, and reports
//! 503 on `/health/database`, while PostgreSQL is unreachable, and recovers by
//! itself when it comes back.

use anyhow::Context;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The service's pool, with the CMS guide's settings (see `config`).
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .idle_timeout(settings.idle_timeout)
        .acquire_timeout(settings.acquire_timeout)
        .max_lifetime(settings.max_lifetime)
        .connect_lazy_with(settings.connect_options()?))
}

/// Applies pending migrations as the migration role.
pub async fn migrate(settings: &DatabaseSettings) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(settings.migration_options()?)
        .await
        .context("connecting for migrations")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    pool.close().await;
    Ok(())
}

/// Reverts migrations down to (and excluding) `target` version; 0 reverts all.
pub async fn revert(settings: &DatabaseSettings, target: i64) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(settings.migration_options()?)
        .await
        .context("connecting for migrations")?;
    MIGRATOR
        .undo(&pool, target)
        .await
        .context("reverting migrations")?;
    pool.close().await;
    Ok(())
}

/// Opens the request's transaction and sets the caller's identity with
/// transaction-local settings (`set_config(.., true)`), which end with the
/// transaction: a pooled connection (or PgBouncer in transaction mode) never
/// carries one caller's identity into another's request. Every database
/// access made on behalf of a request starts here.
pub async fn scoped(
    pool: &PgPool,
    principal: &crate::auth::Principal,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The policies read user, roles and break-glass; the audit triggers
    // read the rest.
    sqlx::query(
        "SELECT set_config('app.user_id', $1, true), \
                set_config('app.roles', $2, true), \
                set_config('app.break_glass', $3, true), \
                set_config('app.collection', $4, true), \
                set_config('app.request_id', $5, true), \
                set_config('app.client_addr', $6, true), \
                set_config('app.api_key_id', $7, true), \
                set_config('app.reason', $8, true)",
    )
    .bind(principal.user_id.as_deref().unwrap_or(""))
    .bind(principal.roles_csv())
    .bind(if principal.break_glass() { "on" } else { "" })
    .bind(principal.collection.as_deref().unwrap_or(""))
    .bind(principal.request_id.as_deref().unwrap_or(""))
    .bind(principal.client_addr.as_deref().unwrap_or(""))
    .bind(
        principal
            .api_key_id
            .map(|u| u.to_string())
            .unwrap_or_default(),
    )
    .bind(if principal.break_glass() {
        principal.break_glass_reason.as_deref().unwrap_or("")
    } else {
        ""
    })
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// A small pool for operator commands (`keys status`, `reencrypt`, `seed`)
/// that must see every row: the migration URL's role, not `phi_app`.
pub async fn operator_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(settings.migration_options()?)
        .await
        .context("connecting as the operator (MIGRATION_DATABASE_URL)")
}
