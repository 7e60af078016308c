//! The audit export, one pipeline for the HTTP route and the CLI: record
//! the export before a byte leaves (if that fails, so does the export),
//! sign the chain's head, stream the entries through a bounded channel, and
//! record the signed manifest when the stream ends (so a CSV export's
//! manifest can be fetched afterwards by the export's request id).

use std::sync::Arc;

use actix_web::web::Bytes;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;

use crate::audit::export::{self, Format, SignedManifest};
use crate::audit::sealer::Sealer;
use crate::audit::{self, Action, Entry};
use crate::error::ApiError;
use crate::identity::Principal;
use crate::progress::Progress;
use crate::store::{self, Db};

/// What an export needs: a pool that reads the audit schema, the reserved
/// audit pool, and the sealer (which signs).
#[derive(Clone)]
pub struct Exporter {
    pub reader: PgPool,
    pub audit_pool: Db,
    pub sealer: Sealer,
}

/// A running export: its chunks, and its signed manifest once done.
pub struct Running {
    pub chunks: Receiver<Result<Bytes, std::io::Error>>,
    pub done: JoinHandle<anyhow::Result<SignedManifest>>,
}

impl Exporter {
    pub async fn start(
        &self,
        who: &Principal,
        format: Format,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        progress: Arc<dyn Progress>,
    ) -> Result<Running, ApiError> {
        let entry = Entry::new(Action::Export, "audit_log", "export").reason(Some(format!(
            "format={} from={} to={}",
            format.name(),
            from.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
            to.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
        )));
        let mut tx = self.audit_pool.begin_plain().await?;
        audit::record(&mut tx, who, &[entry]).await?;
        tx.commit().await?;
        let checkpoint = self
            .sealer
            .checkpoint()
            .await
            .map_err(|e| ApiError::internal("signing the chain's head for an export", e))?;
        // As the sealer, which reads the quarantine (the service's role does not).
        let plan = match export::plan(&self.sealer.pool, checkpoint.as_ref(), from, to).await {
            Ok(p) => p,
            Err(export::PlanError::Unsealed(n)) => {
                return Err(ApiError::Conflict(format!(
                    "{n} audit entries dated in the window are not sealed yet (transactions still \
                     open, or the sealer behind); nothing was exported: retry in a minute."
                )));
            }
            Err(export::PlanError::Database(e)) => return Err(e.into()),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let me = self.clone();
        let who = who.clone();
        let done = tokio::spawn(async move {
            let result = export::stream(
                &me.reader,
                &me.sealer.signing,
                checkpoint,
                plan,
                format,
                from,
                to,
                tx.clone(),
                progress.as_ref(),
            )
            .await;
            match &result {
                Ok(signed) => {
                    let detail = serde_json::to_value(signed).expect("plain data");
                    let entry = Entry::new(Action::Export, "audit_log", "manifest")
                        .reason(Some(format!("format={} rows", format.name())))
                        .detail(detail);
                    audit::record_alone(&me.audit_pool, &who, entry).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed mid-stream");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                }
            }
            result
        });
        Ok(Running { chunks: rx, done })
    }
}

/// The signed manifest of a finished export, by its request id.
pub async fn manifest(
    db: &Db,
    who: &Principal,
    request_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let mut tx = db.begin(who).await?;
    let found = store::audit::export_manifest(&mut tx, request_id).await?;
    tx.commit().await?;
    let text = found.ok_or(ApiError::NotFound)?;
    serde_json::from_str(&text).map_err(|e| ApiError::internal("a stored manifest is not JSON", e))
}
