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
    /// The patient the entry is about (the record's owner), if one.
    pub subject: Option<&'a str>,
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
    let mut subjects = Vec::with_capacity(records.len());
    for r in records {
        actions.push(r.action);
        types.push(r.entity_type);
        ids.push(r.entity_id);
        outcomes.push(r.outcome);
        reasons.push(r.reason);
        fields.push(r.fields.as_str());
        details.push(r.detail.as_deref());
        subjects.push(r.subject);
    }
    tx.q("SELECT audit.append($1, $2, $3, $4, $5, $6, $7, $8::text[]::audit.action[], $9, $10, $11, $12, $13, $14, $15)")
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
        .bind(subjects)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets the purpose the entries of a transaction without an identity
/// record (a refusal written on the audit pool): the log's `purpose`
/// column takes it from `app.purpose`, as `begin` sets it for requests.
pub async fn set_purpose(tx: &mut Tx, purpose: &str) -> Result<()> {
    tx.q("SELECT set_config('app.purpose', $1, true)")
        .bind(purpose)
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

/// One line of a patient's access report (`audit.access_report`).
#[derive(Debug, sqlx::FromRow)]
pub struct ReportRow {
    pub seq: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor_user: Option<String>,
    pub actor_roles: Option<String>,
    pub practitioner_name: Option<String>,
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub fields: Vec<String>,
    pub purpose: Option<String>,
    pub reason: Option<String>,
    pub break_glass: bool,
}

/// The calling patient's entries (the transaction's identity), through the
/// one function that reads only those: never the log at large.
pub async fn access_report(
    tx: &mut Tx,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    include_own: bool,
    after: i64,
    limit: i64,
) -> Result<Vec<ReportRow>> {
    Ok(tx
        .q_as("SELECT * FROM audit.access_report($1, $2, $3, $4, $5::integer)")
        .bind(from)
        .bind(to)
        .bind(include_own)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// Entries dated before this are archived (`audit archive`), not in the
/// log; None while nothing is.
pub async fn archived_before(tx: &mut Tx) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    Ok(tx
        .q_scalar("SELECT audit.archived_before()")
        .fetch_one(&mut **tx)
        .await?)
}

/// The actions that disclose something of a patient's record to whoever
/// took them (for the accounting of disclosures).
pub const DISCLOSING_ACTIONS: &str =
    "('READ', 'CREATE', 'UPDATE', 'DELETE', 'BREAK_GLASS', 'EXPORT')";

/// One recipient's disclosures of one patient's records for one purpose
/// (45 CFR 164.528(b)(3): repeated disclosures summarised).
#[derive(Debug, sqlx::FromRow)]
pub struct DisclosureRow {
    pub actor_user: Option<String>,
    pub actor_roles: Option<String>,
    pub practitioner_name: Option<String>,
    pub purpose: Option<String>,
    pub first_at: chrono::DateTime<chrono::Utc>,
    pub last_at: chrono::DateTime<chrono::Utc>,
    pub count: i64,
    /// Every field disclosed, each once.
    pub fields: Vec<String>,
    pub collections: Vec<String>,
    pub break_glass: bool,
}

/// The accesses to `patient`'s records by anyone else in [from, to),
/// grouped by recipient and purpose, oldest first (by the patient's index).
pub async fn disclosures(
    tx: &mut Tx,
    patient: &str,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<DisclosureRow>> {
    Ok(tx
        .q_as(&format!(
            "WITH d AS ( \
               SELECT l.at, l.actor_user, l.actor_roles, l.purpose, l.action, l.entity_type, l.fields \
               FROM audit.log l \
               WHERE l.subject = $1 AND l.at >= $2 AND l.at < $3 \
                 AND l.actor_user IS DISTINCT FROM l.subject \
                 AND l.action IN {DISCLOSING_ACTIONS}) \
             SELECT d.actor_user, d.actor_roles, \
                    (SELECT p.name FROM practitioners p WHERE p.user_id = d.actor_user \
                     ORDER BY p.id LIMIT 1) AS practitioner_name, \
                    d.purpose, min(d.at) AS first_at, max(d.at) AS last_at, count(*) AS count, \
                    coalesce((SELECT array_agg(DISTINCT f ORDER BY f) FROM d d2, unnest(d2.fields) f \
                              WHERE d2.actor_user IS NOT DISTINCT FROM d.actor_user \
                                AND d2.actor_roles IS NOT DISTINCT FROM d.actor_roles \
                                AND d2.purpose IS NOT DISTINCT FROM d.purpose), '{{}}') AS fields, \
                    array_agg(DISTINCT d.entity_type ORDER BY d.entity_type) AS collections, \
                    bool_or(d.action = 'BREAK_GLASS') AS break_glass \
             FROM d GROUP BY d.actor_user, d.actor_roles, d.purpose ORDER BY min(d.at)"
        ))
        .bind(patient)
        .bind(from)
        .bind(to)
        .fetch_all(&mut **tx)
        .await?)
}
