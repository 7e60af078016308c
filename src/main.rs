//! The `phi-gateway` command: serve, migrate, and the operator tools. Each
//! subcommand calls the library; nothing here knows SQL or crypto.

use clap::{Parser, Subcommand};

use phi_gateway::config::Settings;
use phi_gateway::startup::Application;
use phi_gateway::{db, telemetry};

#[derive(Parser)]
#[command(name = "phi-gateway", version, about = "Encrypted PHI storage gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations (as MIGRATION_DATABASE_URL, else DATABASE_URL).
    Migrate {
        /// Revert down to this version instead (0 reverts everything).
        #[arg(long, value_name = "VERSION")]
        revert_to: Option<i64>,
    },
    /// Print the effective settings, secrets masked.
    Config,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "phi-gateway failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(settings.server.log_format);
    match cli.command {
        Command::Serve => {
            let app = Application::build(&settings).await?;
            tracing::info!(
                host = %settings.server.host,
                port = app.port(),
                environment = ?settings.environment,
                "serving"
            );
            app.run_until_stopped().await?;
            tracing::info!("stopped");
        }
        Command::Migrate { revert_to } => match revert_to {
            Some(v) => db::revert(&settings.database, v).await?,
            None => db::migrate(&settings.database).await?,
        },
        Command::Config => println!("{settings:#?}"),
    }
    Ok(())
}
