//! The connection pools and migrations.
//!
//! The service connects as `phi_app`, a role that owns nothing and cannot
//! bypass row-level security. Pools are lazy: the service starts, and reports
//! 503 on `/health/database`, while PostgreSQL is unreachable, and recovers by
//! itself when it comes back. Every query of the request path runs in a
//! transaction opened by `store::begin`.

use anyhow::{Context, bail};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;

use crate::config::DatabaseSettings;

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Background work as `phi_app` (analytics refresh, audit export pages):
/// two connections beside the workers' pools.
pub fn background_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(checked_when_idle(PgPoolOptions::new())
        .max_connections(2)
        .min_connections(0)
        .idle_timeout(settings.idle_timeout)
        .acquire_timeout(settings.acquire_timeout)
        .max_lifetime(settings.max_lifetime)
        .connect_lazy_with(settings.connect_options()?))
}

/// One worker's share of the service's pool: its connections are driven by
/// that worker's runtime alone.
pub fn worker_pool(
    settings: &DatabaseSettings,
    options: sqlx::postgres::PgConnectOptions,
    max: u32,
) -> PgPool {
    checked_when_idle(PgPoolOptions::new())
        .max_connections(max)
        .min_connections(settings.min_connections.min(max))
        .idle_timeout(settings.idle_timeout)
        .acquire_timeout(settings.acquire_timeout)
        .max_lifetime(settings.max_lifetime)
        .connect_lazy_with(options)
}

/// A connection that sat idle is pinged before it is handed out (one that
/// died with a restarted server is replaced, not given to a request); one
/// that was in use a moment ago is not. sqlx's default pings on every
/// acquire: one more round trip for every request.
fn checked_when_idle(options: PgPoolOptions) -> PgPoolOptions {
    options
        // The policies and guard triggers are written for phi_app: a
        // service connection as any other role (an owner, a superuser, a
        // role that bypasses row security) would switch them off.
        .after_connect(|conn, _| Box::pin(crate::store::health::check_service_role(conn)))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= std::time::Duration::from_secs(1) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// The reserved pool for audit entries written on their own (refusals,
/// failures): small, apart from `pool`, so they are written even when every
/// request connection is taken.
pub fn audit_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(checked_when_idle(PgPoolOptions::new())
        .max_connections(settings.audit_pool_size)
        .min_connections(0)
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

/// What reverting down to `target` destroys, named as `--destroy` takes
/// them: the audit log (below 4), consents (below 3), the PHI tables
/// (below 2).
pub fn destroyed_by_revert(target: i64) -> Vec<&'static str> {
    let mut v = vec![];
    if target < 4 {
        v.push("audit-log");
    }
    if target < 3 {
        v.push("consents");
    }
    if target < 2 {
        v.push("phi-tables");
    }
    v
}

/// Reverts migrations down to (and excluding) `target` version; 0 reverts
/// all. A revert that destroys data is refused in production, and elsewhere
/// unless `destroy` names everything it destroys.
pub async fn revert(
    settings: &DatabaseSettings,
    target: i64,
    destroy: &[String],
    production: bool,
) -> anyhow::Result<()> {
    let lost = destroyed_by_revert(target);
    if !lost.is_empty() {
        if production {
            bail!(
                "reverting to {target} would destroy {}: refused in production (export the audit log \
                 and back up the database, then do it in a development environment)",
                lost.join(", ")
            );
        }
        let missing: Vec<&str> = lost
            .iter()
            .copied()
            .filter(|l| !destroy.iter().any(|d| d == l))
            .collect();
        if !missing.is_empty() {
            bail!(
                "reverting to {target} destroys {}; say so with --destroy {}",
                lost.join(", "),
                lost.join(",")
            );
        }
    }
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

/// A small pool for operator commands (`keys status`, `reencrypt`, `seed`,
/// `audit`) that must see every row: the migration URL's role, not `phi_app`.
pub async fn operator_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(settings.migration_options()?)
        .await
        .context("connecting as the operator (MIGRATION_DATABASE_URL)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverts_name_what_they_destroy() {
        assert!(destroyed_by_revert(6).is_empty());
        assert_eq!(destroyed_by_revert(3), vec!["audit-log"]);
        assert_eq!(
            destroyed_by_revert(0),
            vec!["audit-log", "consents", "phi-tables"]
        );
    }
}
