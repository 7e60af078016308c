//! `[database]`: the pools, TLS, timeouts, and the URLs (passwords masked).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::env::{Env, parse_env, secs};

/// TLS to PostgreSQL, in libpq's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for TlsMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => bail!(
                "unknown TLS mode {other:?} (expected disable, prefer, require, verify-ca or verify-full)"
            ),
        })
    }
}

impl From<TlsMode> for PgSslMode {
    fn from(m: TlsMode) -> Self {
        match m {
            TlsMode::Disable => PgSslMode::Disable,
            TlsMode::Prefer => PgSslMode::Prefer,
            TlsMode::Require => PgSslMode::Require,
            TlsMode::VerifyCa => PgSslMode::VerifyCa,
            TlsMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// A database URL that may carry a password. `Debug` masks the password.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_url_password(self.expose()))
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "***".into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***@{}", &url[..scheme_end + 3], user, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Used by `phi-gateway migrate`: a role that may create roles and
    /// extensions. Never used by `serve`.
    pub migration_url: Option<DatabaseUrl>,
    /// A streaming replica (as `phi_app`) for the public directory: reads
    /// of herbs and practitioners by callers without credentials, which
    /// write no audit entry. Everything else stays on `url`.
    pub read_url: Option<DatabaseUrl>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub idle_timeout: Duration,
    pub acquire_timeout: Duration,
    pub max_lifetime: Duration,
    pub statement_timeout: Duration,
    /// A shorter limit for anonymous callers.
    pub anonymous_statement_timeout: Duration,
    /// The TLS mode of `url` (of each other URL too when it was set
    /// explicitly, by DATABASE_TLS_MODE or `tls_mode`).
    pub tls_mode: TlsMode,
    /// `tls_mode` was set explicitly: it holds for every URL. Otherwise each
    /// URL gets its own default (verify-full in production unless it is on
    /// this machine), or the `sslmode` written in it.
    pub tls_explicit: bool,
    production: bool,
    pub ca_file: Option<PathBuf>,
    /// A transaction-mode pooler (PgBouncer) sits between: no named
    /// prepared statements, no startup parameters it would refuse.
    pub pooler: bool,
    /// Connections reserved for audit entries written on their own.
    pub audit_pool_size: u32,
    /// The replica is passed over while it is further behind than this.
    pub read_max_lag: Duration,
}

impl DatabaseSettings {
    /// Connection options for the service's own pool.
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        self.options_for(&self.url)
    }

    /// Connection options for the replica's pool, if there is one.
    pub fn read_options(&self) -> anyhow::Result<Option<PgConnectOptions>> {
        self.read_url
            .as_ref()
            .map(|u| self.options_for(u))
            .transpose()
    }

    /// Connection options for migrations and operator commands (falls
    /// back to the service URL, unless that goes through a transaction-mode
    /// pooler: they prepare statements by name and hold session locks, so
    /// they connect to PostgreSQL directly).
    pub fn migration_options(&self) -> anyhow::Result<PgConnectOptions> {
        if self.pooler && self.migration_url.is_none() {
            anyhow::bail!(
                "MIGRATION_DATABASE_URL is not set, and DATABASE_URL goes through a transaction-mode \
                 pooler (DATABASE_POOLER=true): migrations and operator commands connect to \
                 PostgreSQL directly; set MIGRATION_DATABASE_URL to the server itself"
            );
        }
        self.options_for(self.migration_url.as_ref().unwrap_or(&self.url))
    }

    /// Connection options for the sealer (role `phi_sealer`).
    pub fn sealer_options(&self, url: &DatabaseUrl) -> anyhow::Result<PgConnectOptions> {
        self.options_for(url)
    }

    /// The statement timeout is set per transaction (`store::begin`), not
    /// as a startup option, so it holds through a transaction-mode pooler;
    /// behind one, `extra_float_digits` is not sent either (PgBouncer 1.18
    /// refuses startup parameters it does not know).
    fn options_for(&self, url: &DatabaseUrl) -> anyhow::Result<PgConnectOptions> {
        let mut opts = PgConnectOptions::from_str(url.expose())
            .map_err(|e| anyhow::anyhow!("invalid database URL {url:?}: {}", redact_sqlx(&e)))?
            .application_name("phi-gateway");
        // The sealer's or the migrations' server may not be the service's:
        // each URL gets the default for its own host, or keeps the sslmode
        // written in it, unless a mode was set for all.
        if self.tls_explicit || !url.expose().contains("sslmode=") {
            let mode = if self.tls_explicit {
                self.tls_mode
            } else {
                default_tls(self.production, self.ca_file.is_some(), url)
            };
            opts = opts.ssl_mode(mode.into());
        }
        if self.pooler {
            opts = opts.extra_float_digits(None::<i8>);
        }
        if let Some(ca) = &self.ca_file {
            opts = opts.ssl_root_cert(ca);
        }
        Ok(opts)
    }
}

/// sqlx's URL parse errors can echo the URL; keep only the kind.
fn redact_sqlx(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::Configuration(_) => "configuration error",
        _ => "parse error",
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDatabase {
    url: Option<SecretString>,
    read_url: Option<SecretString>,
    migration_url: Option<SecretString>,
    max_connections: Option<u32>,
    min_connections: Option<u32>,
    idle_timeout_secs: Option<u64>,
    acquire_timeout_secs: Option<u64>,
    max_lifetime_secs: Option<u64>,
    statement_timeout_ms: Option<u64>,
    anonymous_statement_timeout_ms: Option<u64>,
    tls_mode: Option<TlsMode>,
    ca_file: Option<PathBuf>,
    pooler: Option<bool>,
    audit_pool_size: Option<u32>,
    read_max_lag_secs: Option<u64>,
}

impl fmt::Debug for FileDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDatabase").finish_non_exhaustive()
    }
}

impl DatabaseSettings {
    pub(super) fn build(file: FileDatabase, env: &dyn Env, prod: bool) -> anyhow::Result<Self> {
        let url = env
            .var("DATABASE_URL")
            .map(DatabaseUrl::new)
            .or(file.url.map(DatabaseUrl))
            .context("no database URL: set DATABASE_URL or [database] url")?;
        let migration_url = env
            .var("MIGRATION_DATABASE_URL")
            .map(DatabaseUrl::new)
            .or(file.migration_url.map(DatabaseUrl));
        let read_url = env
            .var("DATABASE_READ_URL")
            .map(DatabaseUrl::new)
            .or(file.read_url.map(DatabaseUrl));
        let max_connections = parse_env(env, "DATABASE_MAX_CONNECTIONS")?
            .or(file.max_connections)
            .unwrap_or(if prod { 20 } else { 10 });
        let min_connections = parse_env(env, "DATABASE_MIN_CONNECTIONS")?
            .or(file.min_connections)
            .unwrap_or(if prod { 5 } else { 2 });
        if max_connections == 0 || min_connections > max_connections {
            bail!(
                "database pool: need 0 < min_connections ({min_connections}) <= max_connections ({max_connections})"
            );
        }
        let ca_file = env
            .var("DATABASE_CA_FILE")
            .map(PathBuf::from)
            .or(file.ca_file);
        let explicit = match env.var("DATABASE_TLS_MODE") {
            Some(v) => Some(v.parse()?),
            None => file.tls_mode,
        };
        let tls_explicit = explicit.is_some();
        let tls_mode = explicit.unwrap_or_else(|| default_tls(prod, ca_file.is_some(), &url));
        // Every URL the gateway may use, each with the mode it will get.
        for (what, u) in [
            ("DATABASE_URL", Some(&url)),
            ("MIGRATION_DATABASE_URL", migration_url.as_ref()),
            ("DATABASE_READ_URL", read_url.as_ref()),
        ] {
            let Some(u) = u else { continue };
            let written = url_sslmode(u)?;
            let mode = match (tls_explicit, written) {
                (true, _) => tls_mode,
                (false, Some(m)) => m,
                (false, None) => default_tls(prod, ca_file.is_some(), u),
            };
            // In production, anything short of a verified certificate is
            // refused for a database on another machine: `require` alone
            // encrypts to whoever answers.
            if prod && !is_local(u) && mode != TlsMode::VerifyFull {
                bail!(
                    "{what}: TLS mode {mode:?} for a database on another machine; production \
                     requires verify-full (DATABASE_TLS_MODE=verify-full or sslmode=verify-full, \
                     with DATABASE_CA_FILE)"
                );
            }
            if !tls_explicit && written.is_some() {
                // Its own sslmode governs; libpq's rules check it at connect.
                continue;
            }
            if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) && ca_file.is_none() {
                bail!(
                    "{what}: TLS mode {mode:?} needs a CA file (DATABASE_CA_FILE or [database] ca_file); \
                     production verifies the database's certificate unless it is on a Unix socket or loopback"
                );
            }
        }
        let database = DatabaseSettings {
            url,
            migration_url,
            read_url,
            max_connections,
            min_connections,
            idle_timeout: secs(
                env,
                "DATABASE_IDLE_TIMEOUT_SECS",
                file.idle_timeout_secs,
                30,
            )?,
            acquire_timeout: secs(
                env,
                "DATABASE_ACQUIRE_TIMEOUT_SECS",
                file.acquire_timeout_secs,
                5,
            )?,
            max_lifetime: secs(
                env,
                "DATABASE_MAX_LIFETIME_SECS",
                file.max_lifetime_secs,
                30 * 60,
            )?,
            statement_timeout: Duration::from_millis(
                parse_env(env, "DATABASE_STATEMENT_TIMEOUT_MS")?
                    .or(file.statement_timeout_ms)
                    .unwrap_or(30_000),
            ),
            anonymous_statement_timeout: Duration::from_millis(
                parse_env(env, "DATABASE_ANONYMOUS_STATEMENT_TIMEOUT_MS")?
                    .or(file.anonymous_statement_timeout_ms)
                    .unwrap_or(2_000),
            ),
            tls_mode,
            tls_explicit,
            production: prod,
            ca_file,
            pooler: parse_env(env, "DATABASE_POOLER")?
                .or(file.pooler)
                .unwrap_or(false),
            audit_pool_size: parse_env(env, "DATABASE_AUDIT_POOL_SIZE")?
                .or(file.audit_pool_size)
                .unwrap_or(2)
                .max(1),
            read_max_lag: secs(
                env,
                "DATABASE_READ_MAX_LAG_SECS",
                file.read_max_lag_secs,
                10,
            )?,
        };

        Ok(database)
    }
}

/// A URL whose host is a Unix socket or this machine's loopback.
/// Production verifies the server's certificate, except on this machine (a
/// Unix socket or loopback), where TLS adds nothing a local attacker could
/// not already read; development prefers TLS.
fn default_tls(prod: bool, ca_file: bool, url: &DatabaseUrl) -> TlsMode {
    match () {
        _ if prod && !ca_file && is_local(url) => TlsMode::Prefer,
        _ if prod => TlsMode::VerifyFull,
        _ => TlsMode::Prefer,
    }
}

/// The `sslmode` written in a URL, if any.
fn url_sslmode(url: &DatabaseUrl) -> anyhow::Result<Option<TlsMode>> {
    let Some((_, query)) = url.expose().split_once('?') else {
        return Ok(None);
    };
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| {
            v.parse::<TlsMode>()
                .map_err(|_| anyhow::anyhow!("database URL {url:?}: unknown sslmode"))
        })
        .transpose()
}

fn is_local(url: &DatabaseUrl) -> bool {
    let Ok(opts) = PgConnectOptions::from_str(url.expose()) else {
        return false;
    };
    let host = opts.get_host();
    host.starts_with('/') || host == "localhost" || host == "::1" || host.starts_with("127.")
}
