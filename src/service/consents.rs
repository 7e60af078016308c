//! Consent: a patient shares all their submissions, or one, with a
//! practitioner, optionally until a time. Row-level security does the rest:
//! the practitioner's read policy on submissions checks consents live, so a
//! revocation or an expiry takes effect on the next request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use validator::Validate;

use crate::audit::{self, Action, Entry};
use crate::auth::Principal;
use crate::db;
use crate::domain::parse_body;
use crate::error::{ApiError, FieldError};
use crate::query::{ListQuery, Page};
use crate::store::consents::{self as store, ConsentRow};
use crate::store::{practitioners, submissions};

use super::{Services, new_id};

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsentInput {
    pub practitioner_id: Uuid,
    /// One submission; absent shares them all.
    pub submission_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentDoc {
    pub id: Uuid,
    pub owner: String,
    pub practitioner_id: Uuid,
    pub submission_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ConsentRow> for ConsentDoc {
    fn from(r: ConsentRow) -> Self {
        Self {
            id: r.id,
            owner: r.owner_id,
            practitioner_id: r.practitioner_id,
            submission_id: r.submission_id,
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    body: serde_json::Value,
) -> Result<ConsentDoc, ApiError> {
    let me = who.require_user()?.to_string();
    let input: ConsentInput = parse_body(body)?;
    if input.expires_at.is_some_and(|t| t <= Utc::now()) {
        return Err(ApiError::invalid("expiresAt", "must be in the future"));
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    if practitioners::get(&mut tx, input.practitioner_id)
        .await?
        .is_none()
    {
        return Err(ApiError::invalid(
            "practitionerId",
            "refers to a record that does not exist",
        ));
    }
    if let Some(sid) = input.submission_id {
        // Only one's own submission (the owner's read policy hides others').
        let own = submissions::get(&mut tx, sid)
            .await?
            .is_some_and(|s| s.owner_id == me);
        if !own {
            return Err(ApiError::Validation(vec![FieldError::new(
                "submissionId",
                "refers to a record that does not exist",
            )]));
        }
    }
    let row = store::insert(
        &mut tx,
        new_id(),
        &me,
        input.practitioner_id,
        input.submission_id,
        input.expires_at,
    )
    .await
    .map_err(|e| super::db_error(e, &[]))?;
    let fields = if row.submission_id.is_some() {
        vec!["practitionerId", "submissionId"]
    } else {
        vec!["practitionerId"]
    };
    audit::record(
        &mut tx,
        who,
        &[Entry::new(Action::Create, "consents", row.id).fields(fields)],
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
) -> Result<Page<ConsentDoc>, ApiError> {
    who.require_user()?;
    if q.filter.is_some() || q.sort.is_some() {
        return Err(ApiError::bad_request("Consents take only limit and page."));
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let rows = store::list(&mut tx, q.limit as i64, q.offset()).await?;
    let total = if q.pagination {
        store::count(&mut tx).await?
    } else {
        rows.len() as i64
    };
    tx.commit().await?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        &q,
    ))
}

pub async fn revoke(svc: &Services, who: &Principal, id: Uuid) -> Result<ConsentDoc, ApiError> {
    who.require_user()?;
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::delete(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(&mut tx, who, &[Entry::new(Action::Delete, "consents", id)]).await?;
    tx.commit().await?;
    Ok(row.into())
}
