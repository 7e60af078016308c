//! `phi-gateway analytics refresh`: publishes closed weeks and rebuilds the
//! analysts' aggregates now (the service's own upkeep, `service::upkeep`).

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
            let db = crate::store::Db::new(pool, crate::store::Mode::of(&settings.database));
            crate::service::upkeep::refresh_analytics(&db).await?;
            println!("closed weeks published, analytics aggregates refreshed");
        }
    }
    Ok(())
}
