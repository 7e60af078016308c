//! The audit log: who did what to which record, never with values.
//!
//! `record` writes entries on the caller's transaction, so an entry commits
//! with the access it records or not at all; `record_alone` writes refusals
//! and failures in a transaction of their own. `chain` seals committed
//! entries into a hash chain and signs checkpoints; `export` streams them out.
//! This module has no code that updates or deletes an entry.

pub mod chain;
pub mod export;

use sqlx::{PgConnection, PgPool};

use crate::auth::Principal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Export,
    AccessDenied,
    BreakGlass,
    DecryptFailure,
    KeyRotation,
    Login,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Read => "READ",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
            Action::Export => "EXPORT",
            Action::AccessDenied => "ACCESS_DENIED",
            Action::BreakGlass => "BREAK_GLASS",
            Action::DecryptFailure => "DECRYPT_FAILURE",
            Action::KeyRotation => "KEY_ROTATION",
            Action::Login => "LOGIN",
        }
    }
}

/// How an access ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Denied,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// One audit entry. Field *names* only, never values.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: Action,
    pub entity_type: &'static str,
    pub entity_id: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub fields: Vec<&'static str>,
}

impl Entry {
    pub fn new(action: Action, entity_type: &'static str, entity_id: impl ToString) -> Self {
        Self {
            action,
            entity_type,
            entity_id: Some(entity_id.to_string()),
            outcome: Outcome::Success,
            reason: None,
            fields: vec![],
        }
    }

    pub fn outcome(mut self, o: Outcome) -> Self {
        self.outcome = o;
        self
    }

    pub fn fields(mut self, f: Vec<&'static str>) -> Self {
        self.fields = f;
        self
    }

    pub fn reason(mut self, r: Option<String>) -> Self {
        self.reason = r;
        self
    }

    pub fn without_id(mut self) -> Self {
        self.entity_id = None;
        self
    }
}

/// Writes entries on the caller's transaction (one statement for any number).
pub async fn record(
    conn: &mut PgConnection,
    who: &Principal,
    entries: &[Entry],
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut actions = Vec::with_capacity(entries.len());
    let mut types = Vec::with_capacity(entries.len());
    let mut ids = Vec::with_capacity(entries.len());
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut reasons = Vec::with_capacity(entries.len());
    let mut fields = Vec::with_capacity(entries.len());
    for e in entries {
        actions.push(e.action.as_str());
        types.push(e.entity_type);
        ids.push(e.entity_id.clone());
        outcomes.push(e.outcome.as_str());
        reasons.push(e.reason.clone());
        // text[][] must be rectangular: fields travel as one joined string.
        fields.push(e.fields.join(","));
    }
    sqlx::query(
        "INSERT INTO audit.log (actor_user, actor_collection, actor_roles, action, entity_type, entity_id, \
         request_id, client_addr, outcome, reason, fields, api_key_id) \
         SELECT $1, $2, $3, a::audit.action, t, i, $4, $5, o, r, CASE WHEN f = '' THEN '{}'::text[] ELSE string_to_array(f, ',') END, $12 \
         FROM UNNEST($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS x(a, t, i, o, r, f)",
    )
    .bind(who.user_id.as_deref())
    .bind(who.collection.as_deref())
    .bind(who.roles_csv())
    .bind(who.request_id.as_deref())
    .bind(who.client_addr.as_deref())
    .bind(actions)
    .bind(types)
    .bind(ids)
    .bind(outcomes)
    .bind(reasons)
    .bind(fields)
    .bind(who.api_key_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes an entry in its own transaction: refusals and failures, whose
/// request transaction is rolled back or never begun. A failure to write it
/// is logged (there is nothing else left to fail).
pub async fn record_alone(pool: &PgPool, who: &Principal, entry: Entry) {
    let result = async {
        let mut conn = pool.acquire().await?;
        record(&mut conn, who, std::slice::from_ref(&entry)).await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, action = entry.action.as_str(), entity_type = entry.entity_type, "audit write failed");
    }
}
