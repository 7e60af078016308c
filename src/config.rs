//! Settings: a TOML file (default `deploy/phi-gateway.toml`) overlaid by
//! environment variables. Secrets are `SecretString`s; `Debug` of any type
//! here masks them, so printing the settings is safe.
//!
//! This module only reads and checks settings; it opens no connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Where the service runs. Unnamed means production: every default fails
/// closed. Development only picks smaller pool defaults, allows a
/// development keyring, `dev-token`, and plain connections to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

impl FromStr for Environment {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Self::Development),
            "production" | "prod" => Ok(Self::Production),
            other => bail!("unknown environment {other:?} (expected development or production)"),
        }
    }
}

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
pub struct Settings {
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
}

impl Settings {
    pub fn production(&self) -> bool {
        self.environment == Environment::Production
    }
}

/// The audit chain: who seals it, what signs it, where checkpoints are
/// anchored.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The sealer's connection (role `phi_sealer`). Without it this process
    /// does not seal (another process must: `phi-gateway audit seal --follow`).
    pub sealer_url: Option<DatabaseUrl>,
    /// The Ed25519 signing key file (`keys signing generate`).
    pub signing_key: Option<PathBuf>,
    /// The public key file, for `audit verify` and `verify-export`.
    pub verify_key: Option<PathBuf>,
    /// Each checkpoint is appended here too (WORM storage, another machine).
    pub anchor: Option<PathBuf>,
    pub seal_interval: Duration,
    /// A checkpoint every this many sealing rounds (when the head moved).
    pub checkpoint_every: u64,
    /// `/health/audit` says "behind" past this.
    pub max_seal_lag: Duration,
    /// Refusals are written per client every this long.
    pub refusal_flush: Duration,
}

/// Where the keyring comes from: a file, or (one key each) the environment.
#[derive(Clone)]
pub struct KeySettings {
    pub keyring_file: PathBuf,
    pub data_key: Option<SecretString>,
    pub index_key: Option<SecretString>,
}

impl fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySettings")
            .field("keyring_file", &self.keyring_file)
            .field("data_key", &self.data_key.as_ref().map(|_| "***"))
            .field("index_key", &self.index_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Verifying the CMS's tokens.
#[derive(Clone)]
pub struct AuthSettings {
    pub payload_secret: Option<SecretString>,
    /// Payload collections whose users may call the service.
    pub user_collections: Vec<String>,
    /// Clock skew allowed on `exp`/`nbf`/`iat`, in seconds.
    pub leeway_secs: i64,
    /// Tokens issued longer ago than this are refused (bounds how long a
    /// logged-out token works). None: only `exp` counts.
    pub max_token_age_secs: Option<i64>,
    /// Origins whose cookie-authenticated requests are honoured (Payload's
    /// `csrf`), and which CORS answers with credentials. Empty: off.
    pub csrf_origins: Vec<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "payload_secret",
                &self.payload_secret.as_ref().map(|_| "***"),
            )
            .field("user_collections", &self.user_collections)
            .field("leeway_secs", &self.leeway_secs)
            .field("max_token_age_secs", &self.max_token_age_secs)
            .field("csrf_origins", &self.csrf_origins)
            .finish()
    }
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Used by `phi-gateway migrate`: a role that may create roles and
    /// extensions. Never used by `serve`.
    pub migration_url: Option<DatabaseUrl>,
    pub max_connections: u32,
    pub min_connections: u32,
    pub idle_timeout: Duration,
    pub acquire_timeout: Duration,
    pub max_lifetime: Duration,
    pub statement_timeout: Duration,
    /// A shorter limit for anonymous callers.
    pub anonymous_statement_timeout: Duration,
    pub tls_mode: TlsMode,
    pub ca_file: Option<PathBuf>,
    /// A transaction-mode pooler (PgBouncer) sits between: no named
    /// prepared statements, no startup parameters it would refuse.
    pub pooler: bool,
    /// Connections reserved for audit entries written on their own.
    pub audit_pool_size: u32,
}

impl DatabaseSettings {
    /// Connection options for the service's own pool.
    pub fn connect_options(&self) -> anyhow::Result<PgConnectOptions> {
        self.options_for(&self.url)
    }

    /// Connection options for migrations (falls back to the service URL).
    pub fn migration_options(&self) -> anyhow::Result<PgConnectOptions> {
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
            .ssl_mode(self.tls_mode.into())
            .application_name("phi-gateway");
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

/// The file's shape: every field optional so that environment variables and
/// environment-dependent defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    environment: Option<Environment>,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    database: FileDatabase,
    #[serde(default)]
    keys: FileKeys,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    audit: FileAudit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAudit {
    signing_key: Option<PathBuf>,
    verify_key: Option<PathBuf>,
    anchor: Option<PathBuf>,
    seal_interval_ms: Option<u64>,
    checkpoint_every: Option<u64>,
    max_seal_lag_secs: Option<u64>,
    refusal_flush_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKeys {
    keyring_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    user_collections: Option<Vec<String>>,
    leeway_secs: Option<i64>,
    max_token_age_secs: Option<i64>,
    csrf_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    host: Option<String>,
    port: Option<u16>,
    max_body_bytes: Option<usize>,
    workers: Option<usize>,
    shutdown_timeout_secs: Option<u64>,
    log_format: Option<LogFormat>,
    body_timeout_secs: Option<u64>,
    analytics_refresh_secs: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<SecretString>,
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
}

impl fmt::Debug for FileDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDatabase").finish_non_exhaustive()
    }
}

/// A source of environment variables; tests pass a map instead of the process
/// environment so they can run in parallel.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<&str, &str, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string())
    }
}

pub const DEFAULT_CONFIG_FILE: &str = "deploy/phi-gateway.toml";

impl Settings {
    /// Reads the file named by `PHI_CONFIG` (else `deploy/phi-gateway.toml`
    /// when it exists), then applies environment overrides.
    pub fn load() -> anyhow::Result<Self> {
        let env = ProcessEnv;
        let path = env.var("PHI_CONFIG").map(PathBuf::from).or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            p.exists().then_some(p)
        });
        let text = match &path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading configuration file {}", p.display()))?,
            None => String::new(),
        };
        Self::from_parts(&text, path.as_deref(), &env)
    }

    pub fn from_parts(text: &str, path: Option<&Path>, env: &dyn Env) -> anyhow::Result<Self> {
        let file: FileSettings = toml::from_str(text).with_context(|| match path {
            Some(p) => format!("parsing configuration file {}", p.display()),
            None => "parsing configuration".to_string(),
        })?;

        let environment = match env.var("PHI_ENVIRONMENT") {
            Some(v) => v.parse()?,
            None => file.environment.unwrap_or(Environment::Production),
        };
        let prod = environment == Environment::Production;

        let server = ServerSettings {
            host: env
                .var("PHI_HOST")
                .or(file.server.host)
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: parse_env(env, "PHI_PORT")?
                .or(file.server.port)
                .unwrap_or(8080),
            max_body_bytes: parse_env(env, "PHI_MAX_BODY_BYTES")?
                .or(file.server.max_body_bytes)
                .unwrap_or(256 * 1024),
            workers: parse_env(env, "PHI_WORKERS")?.or(file.server.workers),
            shutdown_timeout: Duration::from_secs(
                parse_env(env, "PHI_SHUTDOWN_TIMEOUT_SECS")?
                    .or(file.server.shutdown_timeout_secs)
                    .unwrap_or(30),
            ),
            log_format: match env.var("PHI_LOG_FORMAT").as_deref() {
                Some("json") => LogFormat::Json,
                Some("pretty") => LogFormat::Pretty,
                Some(other) => bail!("PHI_LOG_FORMAT: unknown format {other:?}"),
                None => file.server.log_format.unwrap_or(LogFormat::Json),
            },
            body_timeout: Duration::from_secs(
                parse_env(env, "PHI_BODY_TIMEOUT_SECS")?
                    .or(file.server.body_timeout_secs)
                    .unwrap_or(10),
            ),
            analytics_refresh: Duration::from_secs(
                parse_env(env, "PHI_ANALYTICS_REFRESH_SECS")?
                    .or(file.server.analytics_refresh_secs)
                    .unwrap_or(3600),
            ),
        };

        let url = env
            .var("DATABASE_URL")
            .map(DatabaseUrl::new)
            .or(file.database.url.map(DatabaseUrl))
            .context("no database URL: set DATABASE_URL or [database] url")?;
        let migration_url = env
            .var("MIGRATION_DATABASE_URL")
            .map(DatabaseUrl::new)
            .or(file.database.migration_url.map(DatabaseUrl));
        let max_connections = parse_env(env, "DATABASE_MAX_CONNECTIONS")?
            .or(file.database.max_connections)
            .unwrap_or(if prod { 20 } else { 10 });
        let min_connections = parse_env(env, "DATABASE_MIN_CONNECTIONS")?
            .or(file.database.min_connections)
            .unwrap_or(if prod { 5 } else { 2 });
        if max_connections == 0 || min_connections > max_connections {
            bail!(
                "database pool: need 0 < min_connections ({min_connections}) <= max_connections ({max_connections})"
            );
        }
        let secs = |name: &str, file: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            Ok(Duration::from_secs(
                parse_env(env, name)?.or(file).unwrap_or(default),
            ))
        };
        let ca_file = env
            .var("DATABASE_CA_FILE")
            .map(PathBuf::from)
            .or(file.database.ca_file);
        let tls_mode = match env.var("DATABASE_TLS_MODE") {
            Some(v) => v.parse()?,
            None => match file.database.tls_mode {
                Some(m) => m,
                // Production verifies the server's certificate, except on
                // this machine (a Unix socket or loopback), where TLS adds
                // nothing a local attacker could not already read.
                None if prod && ca_file.is_none() && is_local(&url) => TlsMode::Prefer,
                None if prod => TlsMode::VerifyFull,
                None => TlsMode::Prefer,
            },
        };
        if matches!(tls_mode, TlsMode::VerifyCa | TlsMode::VerifyFull) && ca_file.is_none() {
            bail!(
                "DATABASE_TLS_MODE {tls_mode:?} needs a CA file (DATABASE_CA_FILE or [database] ca_file); \
                 production verifies the database's certificate unless it is on a Unix socket or loopback"
            );
        }
        let database = DatabaseSettings {
            url,
            migration_url,
            max_connections,
            min_connections,
            idle_timeout: secs(
                "DATABASE_IDLE_TIMEOUT_SECS",
                file.database.idle_timeout_secs,
                30,
            )?,
            acquire_timeout: secs(
                "DATABASE_ACQUIRE_TIMEOUT_SECS",
                file.database.acquire_timeout_secs,
                5,
            )?,
            max_lifetime: secs(
                "DATABASE_MAX_LIFETIME_SECS",
                file.database.max_lifetime_secs,
                30 * 60,
            )?,
            statement_timeout: Duration::from_millis(
                parse_env(env, "DATABASE_STATEMENT_TIMEOUT_MS")?
                    .or(file.database.statement_timeout_ms)
                    .unwrap_or(30_000),
            ),
            anonymous_statement_timeout: Duration::from_millis(
                parse_env(env, "DATABASE_ANONYMOUS_STATEMENT_TIMEOUT_MS")?
                    .or(file.database.anonymous_statement_timeout_ms)
                    .unwrap_or(5_000),
            ),
            tls_mode,
            ca_file,
            pooler: parse_env(env, "DATABASE_POOLER")?
                .or(file.database.pooler)
                .unwrap_or(false),
            audit_pool_size: parse_env(env, "DATABASE_AUDIT_POOL_SIZE")?
                .or(file.database.audit_pool_size)
                .unwrap_or(2)
                .max(1),
        };

        let keys = KeySettings {
            keyring_file: env
                .var("PHI_KEYRING")
                .map(PathBuf::from)
                .or(file.keys.keyring_file)
                .unwrap_or_else(|| PathBuf::from("keys/keyring.json")),
            data_key: env.var("DATABASE_ENCRYPTION_KEY").map(SecretString::from),
            index_key: env.var("DATABASE_BLIND_INDEX_KEY").map(SecretString::from),
        };
        let payload_secret = env.var("PAYLOAD_SECRET").map(SecretString::from);
        if prod && payload_secret.is_none() {
            bail!(
                "PAYLOAD_SECRET is required in production: without it no caller can be identified"
            );
        }
        let auth = AuthSettings {
            payload_secret,
            user_collections: env
                .var("PHI_USER_COLLECTIONS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .or(file.auth.user_collections)
                .unwrap_or_else(|| vec!["users".to_string()]),
            leeway_secs: parse_env(env, "PHI_TOKEN_LEEWAY_SECS")?
                .or(file.auth.leeway_secs)
                .unwrap_or(30),
            max_token_age_secs: parse_env(env, "PHI_MAX_TOKEN_AGE_SECS")?
                .or(file.auth.max_token_age_secs),
            csrf_origins: env
                .var("PHI_CSRF_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().trim_end_matches('/').to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .or(file.auth.csrf_origins)
                .unwrap_or_default(),
        };

        let path = |name: &str, file: Option<PathBuf>| env.var(name).map(PathBuf::from).or(file);
        let audit = AuditSettings {
            sealer_url: env.var("AUDIT_SEALER_DATABASE_URL").map(DatabaseUrl::new),
            signing_key: path("PHI_AUDIT_SIGNING_KEY", file.audit.signing_key),
            verify_key: path("PHI_AUDIT_VERIFY_KEY", file.audit.verify_key),
            anchor: path("PHI_AUDIT_ANCHOR", file.audit.anchor),
            seal_interval: Duration::from_millis(
                parse_env(env, "PHI_AUDIT_SEAL_INTERVAL_MS")?
                    .or(file.audit.seal_interval_ms)
                    .unwrap_or(1000),
            ),
            checkpoint_every: parse_env(env, "PHI_AUDIT_CHECKPOINT_EVERY")?
                .or(file.audit.checkpoint_every)
                .unwrap_or(60),
            max_seal_lag: secs(
                "PHI_AUDIT_MAX_SEAL_LAG_SECS",
                file.audit.max_seal_lag_secs,
                60,
            )?,
            refusal_flush: secs(
                "PHI_AUDIT_REFUSAL_FLUSH_SECS",
                file.audit.refusal_flush_secs,
                60,
            )?,
        };

        Ok(Settings {
            environment,
            server,
            database,
            keys,
            auth,
            audit,
        })
    }
}

/// A URL whose host is a Unix socket or this machine's loopback.
fn is_local(url: &DatabaseUrl) -> bool {
    let Ok(opts) = PgConnectOptions::from_str(url.expose()) else {
        return false;
    };
    let host = opts.get_host();
    host.starts_with('/') || host == "localhost" || host == "::1" || host.starts_with("127.")
}

fn parse_env<T: FromStr>(env: &dyn Env, name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: fmt::Display,
{
    env.var(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| anyhow::anyhow!("{name}: cannot parse {v:?}: {e}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn defaults_follow_the_cms_guide_by_environment() {
        let dev = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@h/d"),
                ("PHI_ENVIRONMENT", "development"),
            ]),
        )
        .unwrap();
        assert_eq!(dev.environment, Environment::Development);
        assert_eq!(
            (dev.database.max_connections, dev.database.min_connections),
            (10, 2)
        );
        assert_eq!(dev.database.idle_timeout, Duration::from_secs(30));
        assert_eq!(dev.database.acquire_timeout, Duration::from_secs(5));

        let prod_env = env(&[
            ("DATABASE_URL", "postgres://a@127.0.0.1/d"),
            ("PAYLOAD_SECRET", "s"),
        ]);
        let prod = Settings::from_parts("environment = \"production\"", None, &prod_env).unwrap();
        assert_eq!(
            (prod.database.max_connections, prod.database.min_connections),
            (20, 5)
        );
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = "[server]\nport = 9000\n[database]\nurl = \"postgres://file@h/d\"\nmax_connections = 7\n";
        let s = Settings::from_parts(
            file,
            None,
            &env(&[
                ("PHI_PORT", "9100"),
                ("DATABASE_URL", "postgres://envuser:pw@h/d"),
                ("PHI_ENVIRONMENT", "dev"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9100);
        assert_eq!(s.database.max_connections, 7);
        assert!(s.database.url.expose().starts_with("postgres://envuser"));
    }

    #[test]
    fn printing_settings_masks_passwords() {
        let s = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://app:hunter2@db:5432/phi"),
                ("MIGRATION_DATABASE_URL", "postgres://admin:s3cret@db/phi"),
                ("PHI_ENVIRONMENT", "development"),
            ]),
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(printed.contains("phi_app") || printed.contains("app:***"));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("postgres://app:***@db:5432/phi"),
            "{printed}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@h/d"),
                ("PHI_PORT", "http"),
                ("PHI_ENVIRONMENT", "development"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("PHI_PORT"));
        let err = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@h/d"),
                ("DATABASE_TLS_MODE", "verify-full"),
                ("PHI_ENVIRONMENT", "development"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("CA file"));
        let err = Settings::from_parts("[server]\nprot = 1\n", None, &env(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn unnamed_is_production_and_production_fails_closed() {
        // No environment named, remote database, no CA file: refused.
        let err = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@db.internal/d"),
                ("PAYLOAD_SECRET", "s"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("CA file"), "{err:#}");
        // With a CA file, verify-full by default.
        let s = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@db.internal/d"),
                ("PAYLOAD_SECRET", "s"),
                ("DATABASE_CA_FILE", "/etc/ssl/ca.pem"),
            ]),
        )
        .unwrap();
        assert!(s.production());
        assert_eq!(s.database.tls_mode, TlsMode::VerifyFull);
        // Loopback and sockets need no certificate.
        for url in [
            "postgres://a@127.0.0.1:5432/d",
            "postgres://a@localhost/d",
            "postgres:///d?host=/run/postgresql",
        ] {
            let s = Settings::from_parts(
                "",
                None,
                &env(&[("DATABASE_URL", url), ("PAYLOAD_SECRET", "s")]),
            )
            .unwrap();
            assert_eq!(s.database.tls_mode, TlsMode::Prefer, "{url}");
        }
    }

    #[test]
    fn production_requires_a_payload_secret() {
        let err = Settings::from_parts(
            "environment = \"production\"",
            None,
            &env(&[("DATABASE_URL", "postgres://a@127.0.0.1/d")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("PAYLOAD_SECRET"));
    }

    #[test]
    fn tls_modes_parse_in_libpq_spelling() {
        for (s, m) in [
            ("disable", TlsMode::Disable),
            ("prefer", TlsMode::Prefer),
            ("require", TlsMode::Require),
            ("verify-ca", TlsMode::VerifyCa),
            ("verify-full", TlsMode::VerifyFull),
        ] {
            assert_eq!(s.parse::<TlsMode>().unwrap(), m);
        }
        assert!("verify_full".parse::<TlsMode>().is_err());
    }
}
