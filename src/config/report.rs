//! What `phi-gateway config` prints and `serve --help` lists: every
//! setting as `NAME=value (source: env | file | default)`, secrets masked.
//!
//! One table names each setting once: its variable, its key in the file,
//! a line of help, and how its effective value is shown. Tests keep the
//! table whole: every variable the loader reads is in it, and the example
//! file (`deploy/phi-gateway.toml`) names every one of them.

use std::fmt::Write as _;

use super::Settings;
use super::env::{Env, ProcessEnv};

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
    Default,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File => "file",
            Self::Default => "default",
        }
    }
}

/// How a setting's value is shown.
enum Show {
    /// From the effective settings (URLs come out with their password
    /// masked: `DatabaseUrl`'s `Debug`).
    Value(fn(&Settings) -> String),
    /// Read from the environment only, never shown: `***` when set.
    Secret,
    /// Read from the environment only, shown as given (a path, an id).
    EnvText,
}

struct Item {
    name: &'static str,
    /// `section.key` in the settings file; None: environment only.
    file: Option<&'static str>,
    help: &'static str,
    show: Show,
}

const UNSET: &str = "(unset)";

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| UNSET.to_string(), |v| v.to_string())
}

fn path(v: Option<&std::path::PathBuf>) -> String {
    opt(v.map(|p| p.display()))
}

fn list(v: &[impl std::fmt::Display]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn lower(v: impl std::fmt::Debug) -> String {
    // The enums' names, in the spelling the variables take.
    let text = format!("{v:?}");
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

macro_rules! item {
    ($name:literal, $file:expr, $help:literal, |$s:ident| $show:expr) => {
        Item {
            name: $name,
            file: $file,
            help: $help,
            show: Show::Value(|$s: &Settings| $show),
        }
    };
    ($name:literal, $help:literal, $show:ident) => {
        Item {
            name: $name,
            file: None,
            help: $help,
            show: Show::$show,
        }
    };
}

/// Every setting, in the file's order.
const ITEMS: &[Item] = &[
    item!(
        "PHI_ENVIRONMENT",
        Some("environment"),
        "production (default) or development; production fails closed",
        |s| lower(s.environment)
    ),
    // [server]
    item!(
        "PHI_HOST",
        Some("server.host"),
        "address the API listens on",
        |s| s.server.host.clone()
    ),
    item!("PHI_PORT", Some("server.port"), "the API's port", |s| s
        .server
        .port
        .to_string()),
    item!(
        "PHI_MAX_BODY_BYTES",
        Some("server.max_body_bytes"),
        "largest request body (413 above)",
        |s| s.server.max_body_bytes.to_string()
    ),
    item!(
        "PHI_WORKERS",
        Some("server.workers"),
        "HTTP worker threads (unset: one per core)",
        |s| opt(s.server.workers)
    ),
    item!(
        "PHI_SHUTDOWN_TIMEOUT_SECS",
        Some("server.shutdown_timeout_secs"),
        "grace for in-flight requests after SIGTERM",
        |s| s.server.shutdown_timeout.as_secs().to_string()
    ),
    item!(
        "PHI_LOG_FORMAT",
        Some("server.log_format"),
        "json or pretty",
        |s| lower(s.server.log_format)
    ),
    item!(
        "PHI_BODY_TIMEOUT_SECS",
        Some("server.body_timeout_secs"),
        "a body must arrive within this (408 after)",
        |s| s.server.body_timeout.as_secs().to_string()
    ),
    item!(
        "PHI_ANALYTICS_REFRESH_SECS",
        Some("server.analytics_refresh_secs"),
        "rebuild the analysts' aggregates this often (0: never here)",
        |s| s.server.analytics_refresh.as_secs().to_string()
    ),
    item!(
        "PHI_METRICS_ADDR",
        Some("server.metrics_addr"),
        "host:port of /metrics and the detailed health answers (unset: none)",
        |s| opt(s.server.metrics_addr.as_ref())
    ),
    item!(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        Some("server.otlp_endpoint"),
        "OTLP/HTTP collector for request spans, http://host:4318 (unset: none)",
        |s| opt(s.server.otlp_endpoint.as_ref())
    ),
    // [database]
    item!(
        "DATABASE_URL",
        Some("database.url"),
        "the service's PostgreSQL, as phi_app (required)",
        |s| format!("{:?}", s.database.url)
    ),
    item!(
        "MIGRATION_DATABASE_URL",
        Some("database.migration_url"),
        "the owner's URL, for migrate and operator commands",
        |s| opt(s.database.migration_url.as_ref().map(|u| format!("{u:?}")))
    ),
    item!(
        "DATABASE_READ_URL",
        Some("database.read_url"),
        "a streaming replica for the public directory",
        |s| opt(s.database.read_url.as_ref().map(|u| format!("{u:?}")))
    ),
    item!(
        "DATABASE_READ_MAX_LAG_SECS",
        Some("database.read_max_lag_secs"),
        "read from the primary while the replica is further behind",
        |s| s.database.read_max_lag.as_secs().to_string()
    ),
    item!(
        "DATABASE_MAX_CONNECTIONS",
        Some("database.max_connections"),
        "pool size (20 in production, 10 in development)",
        |s| s.database.max_connections.to_string()
    ),
    item!(
        "DATABASE_MIN_CONNECTIONS",
        Some("database.min_connections"),
        "connections kept open (5 / 2)",
        |s| s.database.min_connections.to_string()
    ),
    item!(
        "DATABASE_AUDIT_POOL_SIZE",
        Some("database.audit_pool_size"),
        "connections kept for refusals and failures",
        |s| s.database.audit_pool_size.to_string()
    ),
    item!(
        "DATABASE_IDLE_TIMEOUT_SECS",
        Some("database.idle_timeout_secs"),
        "close connections idle this long",
        |s| s.database.idle_timeout.as_secs().to_string()
    ),
    item!(
        "DATABASE_ACQUIRE_TIMEOUT_SECS",
        Some("database.acquire_timeout_secs"),
        "wait this long for a connection (503 after)",
        |s| s.database.acquire_timeout.as_secs().to_string()
    ),
    item!(
        "DATABASE_MAX_LIFETIME_SECS",
        Some("database.max_lifetime_secs"),
        "recycle connections this old",
        |s| s.database.max_lifetime.as_secs().to_string()
    ),
    item!(
        "DATABASE_STATEMENT_TIMEOUT_MS",
        Some("database.statement_timeout_ms"),
        "per-statement limit",
        |s| s.database.statement_timeout.as_millis().to_string()
    ),
    item!(
        "DATABASE_ANONYMOUS_STATEMENT_TIMEOUT_MS",
        Some("database.anonymous_statement_timeout_ms"),
        "per-statement limit for callers without credentials",
        |s| s
            .database
            .anonymous_statement_timeout
            .as_millis()
            .to_string()
    ),
    item!(
        "DATABASE_TLS_MODE",
        Some("database.tls_mode"),
        "disable | prefer | require | verify-ca | verify-full (production: verify-full off this machine)",
        |s| lower(s.database.tls_mode)
    ),
    item!(
        "DATABASE_CA_FILE",
        Some("database.ca_file"),
        "CA that signs the database's certificate",
        |s| path(s.database.ca_file.as_ref())
    ),
    item!(
        "DATABASE_POOLER",
        Some("database.pooler"),
        "true behind PgBouncer in transaction mode",
        |s| s.database.pooler.to_string()
    ),
    // [keys]
    item!(
        "PHI_KEYRING",
        Some("keys.keyring_file"),
        "the wrapped keyring (keys/README.md)",
        |s| s.keys.keyring_file.display().to_string()
    ),
    item!(
        "PHI_KEK",
        Some("keys.kek"),
        "the KEK the keyring must be wrapped by (unset: the one it names)",
        |s| opt(s.keys.kek.as_ref())
    ),
    item!(
        "PHI_KEK_CHECK_SECS",
        Some("keys.kek_check_secs"),
        "how often a serving gateway checks it can reach the KEK (phi_kek_up; 0: never)",
        |s| s.keys.kek_check.as_secs().to_string()
    ),
    item!(
        "DATABASE_ENCRYPTION_KEY",
        "a development data key instead of a keyring",
        Secret
    ),
    item!(
        "DATABASE_BLIND_INDEX_KEY",
        "a development index key instead of a keyring",
        Secret
    ),
    item!("PHI_KEK_TOKEN", "the key service's token", Secret),
    item!("PHI_KEK_TOKEN_FILE", "a file holding that token", EnvText),
    item!(
        "VAULT_TOKEN",
        "the token, when PHI_KEK_TOKEN(_FILE) is unset",
        Secret
    ),
    item!(
        "BAO_TOKEN",
        "the token, when VAULT_TOKEN is unset too",
        Secret
    ),
    item!(
        "PHI_KEK_ROLE_ID",
        "AppRole login to the key service",
        EnvText
    ),
    item!("PHI_KEK_SECRET_ID", "AppRole secret id", Secret),
    item!(
        "PHI_KEK_SECRET_ID_FILE",
        "a file holding the secret id",
        EnvText
    ),
    item!(
        "PHI_KEK_CA_FILE",
        "CA of the key service's certificate",
        EnvText
    ),
    // [auth]
    item!(
        "PAYLOAD_SECRET",
        "Payload's secret: verifies its tokens (required in production)",
        Secret
    ),
    item!(
        "PHI_USER_COLLECTIONS",
        Some("auth.user_collections"),
        "Payload auth collections whose users may call",
        |s| list(&s.auth.user_collections)
    ),
    item!(
        "PHI_TOKEN_LEEWAY_SECS",
        Some("auth.leeway_secs"),
        "clock skew allowed on a token's times",
        |s| s.auth.leeway_secs.to_string()
    ),
    item!(
        "PHI_MAX_TOKEN_AGE_SECS",
        Some("auth.max_token_age_secs"),
        "refuse tokens issued longer ago",
        |s| opt(s.auth.max_token_age_secs)
    ),
    item!(
        "PHI_CSRF_ORIGINS",
        Some("auth.csrf_origins"),
        "origins allowed to use the payload-token cookie",
        |s| list(&s.auth.csrf_origins)
    ),
    // [limits]
    item!(
        "PHI_ANONYMOUS_PER_MINUTE",
        Some("limits.anonymous_per_minute"),
        "requests without credentials per client address and minute (0: no limit)",
        |s| s.limits.anonymous_per_minute.to_string()
    ),
    item!(
        "PHI_ANONYMOUS_BURST",
        Some("limits.anonymous_burst"),
        "how many of those at once",
        |s| s.limits.anonymous_burst.to_string()
    ),
    item!(
        "PHI_ANONYMOUS_CONCURRENCY",
        Some("limits.anonymous_concurrency"),
        "anonymous requests served at once, all clients (0: half the pool)",
        |s| s.limits.anonymous_concurrency.to_string()
    ),
    item!(
        "PHI_TRUSTED_PROXIES",
        Some("limits.trusted_proxies"),
        "proxies (CIDR) whose X-Forwarded-For names the client",
        |s| list(
            &s.limits
                .trusted_proxies
                .iter()
                .map(|c| format!("{c:?}"))
                .collect::<Vec<_>>()
        )
    ),
    item!(
        "PHI_AUTH_FAILURES_PER_MINUTE",
        Some("limits.auth_failures_per_minute"),
        "failed credentials per client and minute before refusing unchecked (0: no limit)",
        |s| s.limits.auth_failures_per_minute.to_string()
    ),
    item!(
        "PHI_AUTH_FAILURE_BURST",
        Some("limits.auth_failure_burst"),
        "how many may fail at once",
        |s| s.limits.auth_failure_burst.to_string()
    ),
    // [audit]
    item!(
        "AUDIT_SEALER_DATABASE_URL",
        None,
        "the sealer's URL, as phi_sealer (env only)",
        |s| opt(s.audit.sealer_url.as_ref().map(|u| format!("{u:?}")))
    ),
    item!(
        "PHI_AUDIT_SIGNING_KEY",
        Some("audit.signing_key"),
        "the checkpoints' signing key",
        |s| path(s.audit.signing_key.as_ref())
    ),
    item!(
        "PHI_AUDIT_VERIFY_KEY",
        Some("audit.verify_key"),
        "the public key, for audit verify",
        |s| path(s.audit.verify_key.as_ref())
    ),
    item!(
        "PHI_AUDIT_ANCHOR",
        Some("audit.anchor"),
        "append-only file that checkpoints are copied to",
        |s| path(s.audit.anchor.as_ref())
    ),
    item!(
        "PHI_AUDIT_SEAL_INTERVAL_MS",
        Some("audit.seal_interval_ms"),
        "how often the sealer runs",
        |s| s.audit.seal_interval.as_millis().to_string()
    ),
    item!(
        "PHI_AUDIT_CHECKPOINT_EVERY",
        Some("audit.checkpoint_every"),
        "sealing rounds between signed checkpoints",
        |s| s.audit.checkpoint_every.to_string()
    ),
    item!(
        "PHI_AUDIT_MAX_SEAL_LAG_SECS",
        Some("audit.max_seal_lag_secs"),
        "/health/audit says behind past this",
        |s| s.audit.max_seal_lag.as_secs().to_string()
    ),
    item!(
        "PHI_AUDIT_REFUSAL_FLUSH_SECS",
        Some("audit.refusal_flush_secs"),
        "how often counted refusals are written",
        |s| s.audit.refusal_flush.as_secs().to_string()
    ),
    item!(
        "PHI_AUDIT_RETENTION_YEARS",
        Some("audit.retention_years"),
        "before audit archive may move entries (6 at least)",
        |s| s.audit.retention_years.to_string()
    ),
];

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub name: &'static str,
    pub value: String,
    pub source: Source,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}={} (source: {})",
            self.name,
            self.value,
            self.source.as_str()
        )
    }
}

/// Every setting's effective value and where it came from. `text` is the
/// settings file's (the one `settings` were read from).
pub fn report(settings: &Settings, text: &str, env: &dyn Env) -> Vec<Line> {
    let file: toml::Table = toml::from_str(text).unwrap_or_default();
    let in_file = |key: &str| -> bool {
        let mut at = &file;
        let mut parts = key.split('.').peekable();
        while let Some(p) = parts.next() {
            match (at.get(p), parts.peek()) {
                (Some(_), None) => return true,
                (Some(toml::Value::Table(t)), Some(_)) => at = t,
                _ => return false,
            }
        }
        false
    };
    ITEMS
        .iter()
        .map(|item| {
            let set = env.var(item.name);
            let source = match (&set, item.file) {
                (Some(_), _) => Source::Env,
                (None, Some(k)) if in_file(k) => Source::File,
                _ => Source::Default,
            };
            let value = match &item.show {
                Show::Value(show) => show(settings),
                Show::Secret => set.map_or(UNSET, |_| "***").to_string(),
                Show::EnvText => set.unwrap_or_else(|| UNSET.to_string()),
            };
            Line {
                name: item.name,
                value,
                source,
            }
        })
        .collect()
}

/// The settings as `load` reads them, each with its effective value and
/// its source, secrets masked (`phi-gateway config`); the first line names
/// the file.
pub fn load_reported() -> anyhow::Result<Vec<String>> {
    let (path, text) = Settings::file()?;
    let settings = Settings::from_parts(&text, path.as_deref(), &ProcessEnv)?;
    let file = Line {
        name: "PHI_CONFIG",
        value: path.map_or_else(|| "(none)".into(), |p| p.display().to_string()),
        source: match ProcessEnv.var("PHI_CONFIG") {
            Some(_) => Source::Env,
            None => Source::Default,
        },
    };
    Ok(std::iter::once(file)
        .chain(report(&settings, &text, &ProcessEnv))
        .map(|l| l.to_string())
        .collect())
}

/// The settings as `serve --help` lists them: variable, file key, help.
pub fn help() -> String {
    let mut out = String::from(
        "Settings: each is an environment variable, and most are also a key of the settings \
         file (PHI_CONFIG, default deploy/phi-gateway.toml); the variable wins. \
         `phi-gateway config` prints the effective values and where each came from.\n\n",
    );
    let width = ITEMS.iter().map(|i| i.name.len()).max().unwrap_or(0);
    for i in ITEMS {
        let key = i
            .file
            .map_or("(env only)".to_string(), |k| format!("[{k}]"));
        let _ = writeln!(
            out,
            "  {:width$}  {key}\n  {:width$}  {}",
            i.name, "", i.help
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    /// An environment that remembers every name asked of it.
    struct Recording<'a>(HashMap<&'a str, &'a str>, RefCell<BTreeSet<String>>);

    impl Env for Recording<'_> {
        fn var(&self, name: &str) -> Option<String> {
            self.1.borrow_mut().insert(name.to_string());
            self.0.var(name)
        }
    }

    #[test]
    fn every_variable_the_loader_reads_is_reported_and_nothing_else() {
        let env = Recording(
            [
                ("DATABASE_URL", "postgres://a@127.0.0.1/d"),
                ("PHI_ENVIRONMENT", "development"),
            ]
            .into(),
            RefCell::default(),
        );
        Settings::from_parts("", None, &env).unwrap();
        let read = env.1.into_inner();
        let listed: BTreeSet<String> = ITEMS.iter().map(|i| i.name.to_string()).collect();
        assert_eq!(
            read.difference(&listed).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "read but not reported"
        );
        assert_eq!(
            listed.difference(&read).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "reported but never read"
        );
    }

    #[test]
    fn the_example_file_names_every_setting_beside_its_key() {
        let example = include_str!("../../deploy/phi-gateway.toml");
        for item in ITEMS {
            let Some(key) = item.file else {
                assert!(
                    example.contains(item.name),
                    "{} is not mentioned in deploy/phi-gateway.toml",
                    item.name
                );
                continue;
            };
            let (section, key) = key.rsplit_once('.').unwrap_or(("", key));
            let mut in_section = section.is_empty();
            let found = example.lines().any(|l| {
                if let Some(s) = l.trim().strip_prefix('[') {
                    in_section = s.trim_end_matches(']') == section;
                    return false;
                }
                let l = l.trim_start_matches(['#', ' ']);
                in_section
                    && l.starts_with(&format!("{key} "))
                    && l.contains(&format!("# {}", item.name))
            });
            assert!(
                found,
                "deploy/phi-gateway.toml has no `{key} = ...  # {}` in [{section}]",
                item.name
            );
        }
    }

    #[test]
    fn each_value_says_where_it_came_from_and_secrets_stay_masked() {
        let file = "[server]\nport = 9000\n[audit]\nanchor = \"/mnt/worm/a.jsonl\"\n";
        let env: HashMap<&str, &str> = [
            ("PHI_ENVIRONMENT", "development"),
            ("PHI_HOST", "0.0.0.0"),
            ("DATABASE_URL", "postgres://app:hunter2-pw@127.0.0.1/d"),
            ("PAYLOAD_SECRET", "payload-secret-value"),
            ("DATABASE_ENCRYPTION_KEY", "data-key-value"),
            ("PHI_KEK_TOKEN", "kek-token-value"),
            ("PHI_KEK_ROLE_ID", "role-7"),
            ("DATABASE_TLS_MODE", "verify-full"),
            ("DATABASE_CA_FILE", "/etc/ca.pem"),
        ]
        .into();
        let settings = Settings::from_parts(file, None, &env).unwrap();
        let lines = report(&settings, file, &env);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        for expected in [
            "PHI_PORT=9000 (source: file)",
            "PHI_HOST=0.0.0.0 (source: env)",
            "PHI_BODY_TIMEOUT_SECS=10 (source: default)",
            "PHI_AUDIT_ANCHOR=/mnt/worm/a.jsonl (source: file)",
            "DATABASE_URL=postgres://app:***@127.0.0.1/d (source: env)",
            "PAYLOAD_SECRET=*** (source: env)",
            "PHI_KEK_TOKEN=*** (source: env)",
            "PHI_KEK_SECRET_ID=(unset) (source: default)",
            "PHI_KEK_ROLE_ID=role-7 (source: env)",
            "PHI_KEK_SECRET_ID_FILE=(unset) (source: default)",
            "DATABASE_TLS_MODE=verify-full (source: env)",
            "PHI_LOG_FORMAT=json (source: default)",
            "PHI_ENVIRONMENT=development (source: env)",
            "DATABASE_MAX_CONNECTIONS=10 (source: default)",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "no {expected:?} in:\n{text}"
            );
        }
        for secret in [
            "hunter2-pw",
            "payload-secret-value",
            "data-key-value",
            "kek-token-value",
        ] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        assert_eq!(lines.len(), ITEMS.len());
    }

    #[test]
    fn the_help_lists_every_variable_with_its_key() {
        let h = help();
        for item in ITEMS {
            assert!(h.contains(item.name), "{}", item.name);
            if let Some(k) = item.file {
                assert!(h.contains(&format!("[{k}]")), "{k}");
            }
        }
    }
}
