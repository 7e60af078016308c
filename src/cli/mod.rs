//! The `phi-gateway` command: one module per command, each parsing its
//! arguments and calling the library. `main.rs` only dispatches here.

mod analytics;
mod apikeys;
mod audit;
mod import;
mod keys;
mod progress;
mod seed;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{Environment, Settings};
use crate::startup::Application;
use crate::{db, telemetry};

#[derive(Parser)]
#[command(
    name = "phi-gateway",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PHI_GIT_COMMIT"), ")"),
    about = "Encrypted PHI storage gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGTERM/SIGINT.
    ///
    /// Takes no options: it is configured by the settings below
    /// (`phi-gateway config` prints their effective values).
    #[command(after_long_help = crate::config::report::help())]
    Serve,
    /// Apply pending migrations (as MIGRATION_DATABASE_URL, else DATABASE_URL).
    Migrate {
        /// Revert down to this version instead (0 reverts everything).
        #[arg(long, value_name = "VERSION")]
        revert_to: Option<i64>,
        /// Name what a revert destroys: audit-log, consents, phi-tables
        /// (comma-separated). Refused in production whatever it says.
        #[arg(long, value_delimiter = ',')]
        destroy: Vec<String>,
    },
    /// Print every setting as NAME=value (source: env | file | default),
    /// secrets masked (`serve --help` says what each one does).
    Config,
    /// The keyring and the audit signing key (keys/README.md).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Re-seal every value not under the active key, online and resumable.
    Reencrypt {
        /// Count what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load demo data, or large synthetic sets for benchmarks.
    Seed(seed::SeedArgs),
    /// Service API keys (stored only as keyed hashes).
    #[command(subcommand)]
    Apikeys(apikeys::ApiKeysCommand),
    /// The audit log: verify the chain, export, verify an export, seal.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The analysts' de-identified aggregates.
    #[command(subcommand)]
    Analytics(analytics::AnalyticsCommand),
    /// Import existing records from a source database (a Payload CMS's
    /// tables, in the clear or pgcrypto-encrypted), resumable; or undo one.
    Import(import::ImportArgs),
    /// Print the OpenAPI document (what `/api/openapi.json` serves), for
    /// generating clients (clients/payload).
    Openapi,
    /// Print a token signed as Payload would sign it, for trying the API
    /// locally (only with PHI_ENVIRONMENT=development).
    DevToken {
        /// The user's id, as Payload puts it in the token (`5`).
        #[arg(long)]
        user: String,
        /// Comma-separated: practitioner, editor, admin, auditor.
        #[arg(long, default_value = "")]
        roles: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // One match, whole: the commands that need no settings run without
    // loading them; each of the others loads them first.
    match cli.command {
        Command::Openapi => openapi(),
        Command::DevToken { user, roles } => dev_token(&user, &roles),
        Command::Keys(keys::KeysCommand::Offline(k)) => keys::offline(&k).await,
        Command::Audit(audit::AuditCommand::VerifyExport(a)) => audit::verify_export(&a),
        Command::Serve => serve(&settings()?).await,
        Command::Migrate { revert_to, destroy } => {
            let settings = settings()?;
            match revert_to {
                Some(v) => db::revert(&settings.database, v, &destroy, settings.production()).await,
                None => db::migrate(&settings.database).await,
            }
        }
        Command::Config => {
            for line in crate::config::report::load_reported()? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Keys(keys::KeysCommand::Online(cmd)) => keys::run(cmd, &settings()?).await,
        Command::Reencrypt { dry_run } => keys::reencrypt(&settings()?, dry_run).await,
        Command::Seed(args) => seed::run(args, &settings()?).await,
        Command::Apikeys(cmd) => apikeys::run(cmd, &settings()?).await,
        Command::Audit(audit::AuditCommand::Online(cmd)) => audit::run(cmd, &settings()?).await,
        Command::Analytics(cmd) => analytics::run(cmd, &settings()?).await,
        Command::Import(args) => import::run(args, &settings()?).await,
    }
}

/// The settings from the environment, and logging as they say.
fn settings() -> anyhow::Result<Settings> {
    let settings = Settings::load()?;
    telemetry::init(settings.server.log_format);
    Ok(settings)
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    crate::db::check_at_start(&settings.database).await;
    let app = Application::build(settings).await?;
    tracing::info!(
        host = %settings.server.host,
        port = app.port(),
        environment = ?settings.environment,
        "serving"
    );
    crate::keyreload::watch(
        app.keyring.clone(),
        settings.clone(),
        app.service_pool(),
        app.metrics.clone(),
    );
    app.run_until_stopped().await?;
    tracing::info!("stopped");
    Ok(())
}

fn openapi() -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(&crate::openapi::document())?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Needs only PAYLOAD_SECRET (and PHI_USER_COLLECTIONS): no database.
/// Refused unless the environment is explicitly development.
fn dev_token(user: &str, roles: &str) -> anyhow::Result<()> {
    let env: Environment = std::env::var("PHI_ENVIRONMENT")
        .unwrap_or_default()
        .parse()
        .unwrap_or(Environment::Production);
    if env != Environment::Development {
        bail!("dev-token is for development only: set PHI_ENVIRONMENT=development");
    }
    let secret = std::env::var("PAYLOAD_SECRET").context("PAYLOAD_SECRET is not set")?;
    let collection = std::env::var("PHI_USER_COLLECTIONS")
        .ok()
        .and_then(|c| c.split(',').next().map(str::to_string))
        .unwrap_or_else(|| "users".into());
    let v = crate::auth::JwtVerifier::new(&secret.into(), vec![collection.clone()], 0);
    let now = chrono::Utc::now().timestamp();
    let roles: Vec<&str> = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    println!(
        "{}",
        v.sign(&serde_json::json!({"id": user, "collection": collection, "iat": now, "exp": now + 8 * 3600, "roles": roles}))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every option and argument of every command says what it is for.
    #[test]
    fn every_option_of_every_command_has_help() {
        let mut cli = Cli::command();
        cli.build();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("phi-gateway"), cli)];
        while let Some((path, cmd)) = stack.pop() {
            if cmd.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert_eq!(missing, Vec::<String>::new(), "no help text");
    }

    #[test]
    fn serve_help_lists_the_settings() {
        let mut cli = Cli::command();
        let text = cli
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        for name in [
            "DATABASE_URL",
            "PAYLOAD_SECRET",
            "PHI_PORT",
            "phi-gateway config",
        ] {
            assert!(text.contains(name), "{name} not in:\n{text}");
        }
    }
}
