//! Consent: a patient shares all their submissions, or one, with a
//! practitioner, optionally until a time. The consent binds the CMS user
//! linked to the practitioner record at that moment, so re-pointing the
//! record later carries nothing to anyone else. Row-level security does the
//! rest: the practitioner's read policy on submissions checks consents live,
//! so a revocation or an expiry takes effect on the next request. Giving,
//! withdrawing (and cascading) consents are recorded by the table's audit
//! trigger; listing them by the service.

use uuid::Uuid;

use super::{Services, client_error, list_entry, new_id};
use crate::audit::{self, Action, Entry};
use crate::domain::consent::{ConsentDoc, ConsentInput, ConsentScope};
use crate::error::ApiError;
use crate::identity::Principal;
use crate::page::Page;
use crate::query::ListQuery;
use crate::schema::CONSENTS;
use crate::store::consents::{self as table, ConsentRow};
use crate::store::submissions;

const TABLE: &str = "consents";

impl From<ConsentRow> for ConsentDoc {
    fn from(r: ConsentRow) -> Self {
        Self {
            id: r.id,
            owner: r.owner_id,
            practitioner_id: r.practitioner_id,
            submission_id: r.submission_id,
            expires_at: r.expires_at,
            // The database holds only the vocabulary (a CHECK constraint).
            scope: r
                .scope
                .iter()
                .filter_map(|s| ConsentScope::parse(s))
                .collect(),
            created_at: r.created_at,
        }
    }
}

fn no_such(path: &str) -> ApiError {
    ApiError::invalid(path, "refers to a record that does not exist")
}

/// One answer whether the practitioner is unknown, unpublished or has no
/// linked account: which of these holds is not the patient's to learn.
fn cannot_share() -> ApiError {
    ApiError::invalid("practitionerId", "cannot share with this practitioner")
}

/// A consent given, and whether it is new (`false`: the caller had given
/// exactly this one already, and it is answered again, unchanged).
pub async fn create(
    svc: &Services,
    who: &Principal,
    input: ConsentInput,
) -> Result<(ConsentDoc, bool), ApiError> {
    let me = who.require_user()?.to_string();
    let scope: Vec<&str> = input.scope().iter().map(|s| s.as_str()).collect();
    let mut tx = svc.begin_phi(who).await?;
    if table::practitioner_linked(&mut tx, input.practitioner_id).await? != Some(true) {
        return Err(cannot_share());
    }
    if let Some(sid) = input.submission_id {
        // Only one's own submission (the owner's read policy hides others').
        let own = submissions::get(&mut tx, sid)
            .await?
            .is_some_and(|s| s.owner_id == me);
        if !own {
            return Err(no_such("submissionId"));
        }
    }
    if let Some(same) = table::find_same(
        &mut tx,
        &me,
        input.practitioner_id,
        input.submission_id,
        input.expires_at,
        &scope,
    )
    .await?
    {
        // Shown again: a read of the caller's own consent.
        audit::record(
            &mut tx,
            who,
            &[Entry::new(Action::Read, TABLE, same.id).subject(&same.owner_id)],
        )
        .await?;
        tx.commit().await?;
        return Ok((same.into(), false));
    }
    let row = table::insert(
        &mut tx,
        new_id(),
        &me,
        input.practitioner_id,
        input.submission_id,
        input.expires_at,
        &scope,
    )
    .await
    .map_err(|e| client_error(&CONSENTS, e))?
    .ok_or_else(cannot_share)?;
    tx.commit().await?;
    Ok((row.into(), true))
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
) -> Result<Page<ConsentDoc>, ApiError> {
    who.require_user()?;
    if q.filter.is_some() || q.near.is_some() || !q.sort.is_empty() {
        return Err(ApiError::bad_request(
            "Consents take only limit, page and pagination.",
        ));
    }
    let mut tx = svc.begin_phi(who).await?;
    let rows = table::list(&mut tx, q.limit as i64, q.offset()).await?;
    let short = (rows.len() as i64) < q.limit as i64 && (!rows.is_empty() || q.page == 1);
    let total = if q.pagination && !short {
        table::count(&mut tx).await?
    } else {
        q.offset() + rows.len() as i64
    };
    let mut entries = vec![list_entry(TABLE, &q, rows.len(), total)];
    entries.extend(
        rows.iter()
            .map(|r| Entry::new(Action::Read, TABLE, r.id).subject(&r.owner_id)),
    );
    audit::record(&mut tx, who, &entries).await?;
    tx.commit().await?;
    Ok(Page::new(
        rows.into_iter().map(Into::into).collect(),
        total,
        false,
        &q,
    ))
}

pub async fn revoke(svc: &Services, who: &Principal, id: Uuid) -> Result<ConsentDoc, ApiError> {
    who.require_user()?;
    let mut tx = svc.begin_phi(who).await?;
    let Some(row) = table::delete(&mut tx, id).await? else {
        return Err(ApiError::NotFound);
    };
    tx.commit().await?;
    Ok(row.into())
}
