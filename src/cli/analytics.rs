//! `phi-gateway analytics refresh`: rebuilds the analysts' aggregates now.

use clap::Subcommand;

use crate::config::Settings;
use crate::db;

#[derive(Subcommand)]
pub enum AnalyticsCommand {
    /// Rebuild the de-identified aggregates (the service also does this on
    /// a schedule, PHI_ANALYTICS_REFRESH_SECS).
    Refresh,
}

pub async fn run(cmd: AnalyticsCommand, settings: &Settings) -> anyhow::Result<()> {
    match cmd {
        AnalyticsCommand::Refresh => {
            let pool = db::operator_pool(&settings.database).await?;
            let mut tx = pool.begin().await?;
            crate::store::health::refresh_analytics(&mut tx).await?;
            tx.commit().await?;
            println!("analytics aggregates refreshed");
        }
    }
    Ok(())
}
