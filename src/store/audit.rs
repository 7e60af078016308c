//! SQL for writing audit entries on the request path: one call of
//! `audit.append`, the only way the service's role can add entries (the
//! database sets their sequence, time and transaction id).

use super::{Result, Tx};
use crate::identity::Principal;

/// One entry as the database function takes it.
pub struct Record<'a> {
    pub action: &'static str,
    pub entity_type: &'a str,
    pub entity_id: Option<&'a str>,
    pub outcome: &'static str,
    pub reason: Option<&'a str>,
    /// Field names, joined with commas (text[][] must be rectangular).
    pub fields: String,
    pub detail: Option<String>,
}

pub async fn append(tx: &mut Tx, who: &Principal, records: &[Record<'_>]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut actions = Vec::with_capacity(records.len());
    let mut types = Vec::with_capacity(records.len());
    let mut ids = Vec::with_capacity(records.len());
    let mut outcomes = Vec::with_capacity(records.len());
    let mut reasons = Vec::with_capacity(records.len());
    let mut fields = Vec::with_capacity(records.len());
    let mut details = Vec::with_capacity(records.len());
    for r in records {
        actions.push(r.action);
        types.push(r.entity_type);
        ids.push(r.entity_id);
        outcomes.push(r.outcome);
        reasons.push(r.reason);
        fields.push(r.fields.as_str());
        details.push(r.detail.as_deref());
    }
    tx.q("SELECT audit.append($1, $2, $3, $4, $5, $6, $7, $8::text[]::audit.action[], $9, $10, $11, $12, $13, $14)")
        .bind(who.user_id.as_deref())
        .bind(who.collection.as_deref())
        .bind(who.roles_csv())
        .bind(who.api_key_id)
        .bind(who.request_id.as_deref())
        .bind(who.client_request_id.as_deref())
        .bind(who.client_addr.as_deref())
        .bind(actions)
        .bind(types)
        .bind(ids)
        .bind(outcomes)
        .bind(reasons)
        .bind(fields)
        .bind(details)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The signed manifest an export left in the log when it finished (the
/// export's request id names it).
pub async fn export_manifest(tx: &mut Tx, request_id: &str) -> Result<Option<String>> {
    Ok(tx
        .q_scalar(
            "SELECT detail FROM audit.log WHERE action = 'EXPORT' AND request_id = $1 \
         AND entity_id = 'manifest' AND detail IS NOT NULL ORDER BY seq DESC LIMIT 1",
        )
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?)
}
