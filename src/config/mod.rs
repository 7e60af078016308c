//! Settings: a TOML file (default `deploy/phi-gateway.toml`) overlaid by
//! environment variables. Secrets are `SecretString`s; `Debug` of any type
//! here masks them, so printing the settings is safe.
//!
//! This module only reads and checks settings; it opens no connection.

mod audit;
mod auth;
mod database;
mod env;
mod keys;
mod limits;
pub mod report;
mod server;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, bail};
use serde::Deserialize;

pub use audit::{AuditSettings, MIN_RETENTION_YEARS};
pub use auth::AuthSettings;
pub use database::{DatabaseSettings, DatabaseUrl, TlsMode};
pub use env::{Env, ProcessEnv};
pub use keys::{KekAuth, KeySettings};
pub use limits::{Cidr, LimitSettings};
pub use server::{LogFormat, ServerSettings};

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

#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub keys: KeySettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    pub limits: LimitSettings,
}

impl Settings {
    pub fn production(&self) -> bool {
        self.environment == Environment::Production
    }
}

/// The file's shape: every field optional so that environment variables and
/// environment-dependent defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    environment: Option<Environment>,
    #[serde(default)]
    server: server::FileServer,
    #[serde(default)]
    database: database::FileDatabase,
    #[serde(default)]
    keys: keys::FileKeys,
    #[serde(default)]
    auth: auth::FileAuth,
    #[serde(default)]
    audit: audit::FileAudit,
    #[serde(default)]
    limits: limits::FileLimits,
}

pub const DEFAULT_CONFIG_FILE: &str = "deploy/phi-gateway.toml";

impl Settings {
    /// Reads the file named by `PHI_CONFIG` (else `deploy/phi-gateway.toml`
    /// when it exists), then applies environment overrides.
    pub fn load() -> anyhow::Result<Self> {
        let (path, text) = Self::file()?;
        Self::from_parts(&text, path.as_deref(), &ProcessEnv)
    }

    /// The settings file named by `PHI_CONFIG` (else the default one when
    /// it exists), and its text.
    pub(crate) fn file() -> anyhow::Result<(Option<PathBuf>, String)> {
        let path = ProcessEnv.var("PHI_CONFIG").map(PathBuf::from).or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG_FILE);
            p.exists().then_some(p)
        });
        let text = match &path {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading configuration file {}", p.display()))?,
            None => String::new(),
        };
        Ok((path, text))
    }

    /// The file's text overlaid by the environment, section by section.
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
        Ok(Settings {
            environment,
            server: ServerSettings::build(file.server, env)?,
            database: DatabaseSettings::build(file.database, env, prod)?,
            keys: KeySettings::build(file.keys, env)?,
            auth: AuthSettings::build(file.auth, env, prod)?,
            audit: AuditSettings::build(file.audit, env)?,
            limits: LimitSettings::build(file.limits, env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

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
    fn user_collections_may_not_take_the_gateways_own_namespaces() {
        for reserved in ["operator", "users,apikey"] {
            let err = Settings::from_parts(
                "",
                None,
                &env(&[
                    ("DATABASE_URL", "postgres://a@h/d"),
                    ("PHI_ENVIRONMENT", "development"),
                    ("PHI_USER_COLLECTIONS", reserved),
                ]),
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains("own principals"), "{err:#}");
        }
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
        // The audit log is kept six years at least, however asked.
        let err = Settings::from_parts(
            "[audit]\nretention_years = 5\n",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@h/d"),
                ("PHI_ENVIRONMENT", "development"),
            ]),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("six years"), "{err:#}");
        let ok = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@h/d"),
                ("PHI_ENVIRONMENT", "development"),
                ("PHI_AUDIT_RETENTION_YEARS", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(ok.audit.retention_years, 10);
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
        // Each URL gets the default for its own host: a remote migration
        // database behind a local service URL still needs a CA file.
        let err = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@127.0.0.1/d"),
                ("MIGRATION_DATABASE_URL", "postgres://a@db.internal/d"),
                ("PAYLOAD_SECRET", "s"),
            ]),
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("MIGRATION_DATABASE_URL"),
            "{err:#}"
        );
        // A sslmode written in a URL is kept.
        let s = Settings::from_parts(
            "",
            None,
            &env(&[
                ("DATABASE_URL", "postgres://a@127.0.0.1/d"),
                (
                    "MIGRATION_DATABASE_URL",
                    "postgres://a@db.internal/d?sslmode=verify-full",
                ),
                ("PAYLOAD_SECRET", "s"),
                ("DATABASE_CA_FILE", "/etc/ssl/ca.pem"),
            ]),
        )
        .unwrap();
        let remote = format!("{:?}", s.database.migration_options().unwrap());
        // Behind a transaction-mode pooler, operators and migrations do not
        // fall back to the service's URL (named statements, session locks).
        let pooled = |extra: &[(&'static str, &'static str)]| {
            let mut vars = vec![
                ("DATABASE_URL", "postgres://a@127.0.0.1:6432/d"),
                ("DATABASE_POOLER", "true"),
                ("PAYLOAD_SECRET", "s"),
            ];
            vars.extend_from_slice(extra);
            Settings::from_parts("", None, &env(&vars)).unwrap()
        };
        let err = pooled(&[]).database.migration_options().unwrap_err();
        assert!(
            format!("{err:#}").contains("set MIGRATION_DATABASE_URL"),
            "{err:#}"
        );
        let direct = pooled(&[("MIGRATION_DATABASE_URL", "postgres://a@127.0.0.1:5432/d")]);
        assert!(
            format!("{:?}", direct.database.migration_options().unwrap()).contains("5432"),
            "the migration URL, not the pooler's"
        );
        assert!(remote.contains("ssl_mode: VerifyFull"), "{remote}");
        // Anything short of verify-full to another machine is refused in
        // production, written in the URL or set for all.
        for (url, extra) in [
            ("postgres://a@db.internal/d?sslmode=require", None),
            ("postgres://a@db.internal/d?sslmode=disable", None),
            ("postgres://a@db.internal/d", Some("disable")),
            ("postgres://a@db.internal/d", Some("verify-ca")),
        ] {
            let mut vars = vec![
                ("DATABASE_URL", url),
                ("PAYLOAD_SECRET", "s"),
                ("DATABASE_CA_FILE", "/etc/ssl/ca.pem"),
            ];
            if let Some(m) = extra {
                vars.push(("DATABASE_TLS_MODE", m));
            }
            let err = Settings::from_parts("", None, &env(&vars)).unwrap_err();
            assert!(
                format!("{err:#}").contains("requires verify-full"),
                "{url} {extra:?}: {err:#}"
            );
            // Development may.
            vars.push(("PHI_ENVIRONMENT", "development"));
            if extra != Some("verify-ca") {
                assert!(
                    Settings::from_parts("", None, &env(&vars)).is_ok(),
                    "{url} {extra:?}"
                );
            }
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
