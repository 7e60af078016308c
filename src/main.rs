//! The `phi-gateway` command; everything is in `cli`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = phi_gateway::cli::Cli::parse();
    match phi_gateway::cli::run(cli).await {
        Ok(()) => {
            phi_gateway::telemetry::flush_logs();
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = ?e, "phi-gateway failed");
            phi_gateway::telemetry::flush_logs();
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
