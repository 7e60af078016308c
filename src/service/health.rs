//! What the health routes ask the database: a round trip (the server's
//! version) and how far behind sealing the audit log is, each bounded in
//! time so a database that does not answer is an answer too.

use std::time::Duration;

use crate::error::ApiError;
use crate::identity::Principal;
use crate::store::{self, Db};

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        what: "database",
        retry_after_secs: 5,
    }
}

/// A real round trip to PostgreSQL within two seconds: the server's
/// version, or 503.
pub async fn round_trip(db: &Db) -> Result<String, ApiError> {
    let round_trip = tokio::time::timeout(Duration::from_secs(2), async {
        let mut tx = db.begin(&Principal::anonymous()).await?;
        let v = store::health::server_version(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(v)
    })
    .await;
    match round_trip {
        Ok(Ok(version)) => Ok(version),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "database health check failed");
            Err(unavailable())
        }
        Err(_) => {
            tracing::warn!("database health check timed out");
            Err(unavailable())
        }
    }
}

/// The audit log's sealing status (`audit.status()`), within five seconds.
pub async fn seal_status(db: &Db) -> Result<store::health::SealStatus, ApiError> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut tx = db.begin(&Principal::anonymous()).await?;
        let s = store::health::seal_status(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, store::StoreError>(s)
    })
    .await
    .map_err(|_| unavailable())?
    .map_err(ApiError::from)
}
