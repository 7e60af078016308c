//! The service's own upkeep, shared by the scheduled task and the operator
//! command: publishing the analysts' closed weeks and rebuilding the
//! reference aggregates (`analytics.refresh()`, run as its owner).

use std::time::Duration;

use crate::store::{self, Db, StoreError};

/// Publishes every closed week not yet published, and rebuilds the
/// reference collections' aggregates.
pub async fn refresh_analytics(db: &Db) -> Result<(), StoreError> {
    let mut tx = db.begin_plain().await?;
    store::health::refresh_analytics(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// `refresh_analytics` every `every`, until the handle is aborted.
pub fn spawn_analytics_refresh(
    db: Db,
    every: Duration,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let result = refresh_analytics(&db).await;
            metrics.analytics_refreshed(result.is_ok());
            if let Err(e) = result {
                tracing::warn!(error = %e, "analytics refresh failed");
            }
        }
    })
}
