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
    crate::store::managed::prepare(&pool).await?;
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

/// Why a connection to the database failed, in an operator's words: the
/// kind of failure first (password refused, connection refused, unknown
/// host, TLS, the URL itself), then PostgreSQL's or the system's message.
/// Never the URL or its password: sqlx's messages do not carry them, and a
/// configuration error is named, not quoted.
pub fn connect_cause(e: &sqlx::Error) -> String {
    use std::io::ErrorKind;
    match e {
        sqlx::Error::Database(d) => {
            let kind = match d.code().as_deref() {
                Some("28P01") => "password refused",
                Some("28000") => {
                    "authentication refused (no pg_hba.conf entry, or the role may not log in)"
                }
                Some("3D000") => "no such database",
                Some("53300") => "the server has no connection slot left",
                Some("57P03") => "the server is starting up or shutting down",
                _ => "the server refused the connection",
            };
            format!("{kind}: {}", d.message())
        }
        sqlx::Error::Io(io) => {
            let text = io.to_string();
            let kind = match io.kind() {
                ErrorKind::ConnectionRefused => {
                    "connection refused (nothing listens there: is PostgreSQL running, on that host and port?)"
                }
                ErrorKind::TimedOut => "connection timed out",
                _ if text.contains("lookup") || text.contains("resolve") => "unknown host",
                _ => "network error",
            };
            format!("{kind}: {text}")
        }
        sqlx::Error::Tls(t) => format!("TLS failure: {t}"),
        sqlx::Error::Configuration(_) => {
            "invalid database URL or options (scheme, port, parameters)".into()
        }
        sqlx::Error::PoolTimedOut => "no connection within the acquire timeout".into(),
        other => format!("{other}"),
    }
}

/// Tries one connection with `options` (no pool), within `timeout`: the
/// cause when it fails (`connect_cause`).
pub async fn try_connect(
    options: &sqlx::postgres::PgConnectOptions,
    timeout: std::time::Duration,
) -> Result<(), String> {
    use sqlx::Connection;
    match tokio::time::timeout(timeout, sqlx::PgConnection::connect_with(options)).await {
        Err(_) => Err(format!(
            "connection timed out after {} s (a firewall, or the wrong host?)",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(connect_cause(&e)),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// The request pools' options, for `explain_unavailable`.
static DIAGNOSIS: std::sync::OnceLock<(sqlx::postgres::PgConnectOptions, std::time::Duration)> =
    std::sync::OnceLock::new();
static LAST_DIAGNOSIS: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Checks at start that the service's database answers, and says why not
/// (the service still starts: an orchestrator restarts what exits, and the
/// database may come up after it). Remembers the options for
/// `explain_unavailable`.
pub async fn check_at_start(settings: &DatabaseSettings) {
    let Ok(options) = settings.connect_options() else {
        return;
    };
    let host = options.get_host().to_string();
    let port = options.get_port();
    let _ = DIAGNOSIS.set((options.clone(), settings.acquire_timeout));
    match try_connect(&options, settings.acquire_timeout).await {
        Ok(()) => tracing::info!(host, port, "database reachable"),
        Err(cause) => tracing::warn!(
            host,
            port,
            cause,
            "database unreachable at start; serving anyway, requests that need it answer 503 until it is"
        ),
    }
}

/// A request found the database unavailable: at most every 30 s, one
/// connection is tried in the background and its cause logged (a pool
/// only says it timed out).
pub fn explain_unavailable() {
    let Some((options, timeout)) = DIAGNOSIS.get() else {
        return;
    };
    {
        let mut last = LAST_DIAGNOSIS.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(30)) {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let (options, timeout) = (options.clone(), *timeout);
    tokio::spawn(async move {
        let host = options.get_host().to_string();
        let port = options.get_port();
        match try_connect(&options, timeout).await {
            Ok(()) => tracing::warn!(
                host,
                port,
                "database unavailable to a request, though a new connection succeeds (the pool is exhausted, or it just came back)"
            ),
            Err(cause) => tracing::warn!(host, port, cause, "database unavailable"),
        }
    });
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
