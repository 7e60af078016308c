//! Symptom submissions (PHI): sealed per field, bound to their row, visible
//! to their owner (and, through row-level security, to whom the owner shares
//! them with, and to an admin on a recorded break-glass reason).
//!
//! Nobody but those sees that a row exists: every other caller gets 404.

use chrono::{NaiveDate, Utc};
use uuid::Uuid;

use crate::audit::{self, Action, Entry, Outcome};
use crate::auth::Principal;
use crate::crypto::Place;
use crate::crypto::blind_index::normalise_email;
use crate::db;
use crate::domain::parse_body;
use crate::domain::submission::{
    SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom, TABLE, age_band, categories,
};
use crate::error::ApiError;
use crate::query::{self, FieldKind, FieldSpec, ListQuery, Page};
use crate::store::submissions::{
    self as store, COLUMNS, CONSTRAINTS, NewSubmission, SubmissionRow,
};
use crate::store::{self as common, ListSpec, Value};

use super::{Services, db_error, new_id, require};

pub const FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "id",
        column: "id",
        kind: FieldKind::Uuid,
        sortable: false,
    },
    FieldSpec {
        name: "owner",
        column: "owner_id",
        kind: FieldKind::Text,
        sortable: false,
    },
    FieldSpec {
        name: "status",
        column: "status",
        kind: FieldKind::Enum(SubmissionStatus::ALL),
        sortable: true,
    },
    FieldSpec {
        name: "practitionerId",
        column: "practitioner_id",
        kind: FieldKind::Uuid,
        sortable: false,
    },
    FieldSpec {
        name: "ageBand",
        column: "age_band",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "region",
        column: "region",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "symptomCategories",
        column: "symptom_categories",
        kind: FieldKind::TextArray,
        sortable: false,
    },
    FieldSpec {
        name: "createdAt",
        column: "created_at",
        kind: FieldKind::Timestamp,
        sortable: true,
    },
    FieldSpec {
        name: "updatedAt",
        column: "updated_at",
        kind: FieldKind::Timestamp,
        sortable: true,
    },
    FieldSpec {
        name: "contactEmail",
        column: "contact_email_bidx",
        kind: FieldKind::BlindIndexed {
            table: TABLE,
            column: "contact_email",
        },
        sortable: false,
    },
];

fn place(column: &'static str, id: Uuid) -> Place<'static> {
    Place::new(TABLE, column, id)
}

fn to_doc(svc: &Services, row: SubmissionRow) -> Result<SubmissionDoc, ApiError> {
    let id = row.id;
    let symptoms_json = svc.open(&row.symptoms, place("symptoms", id))?;
    let symptoms: Vec<Symptom> = serde_json::from_slice(&symptoms_json).map_err(|_| {
        tracing::error!(table = TABLE, column = "symptoms", row_id = %id, "sealed symptoms are not the expected JSON");
        ApiError::internal("opening symptoms", anyhow::anyhow!("unexpected shape"))
    })?;
    let date_of_birth = svc
        .open_text_opt(row.date_of_birth.as_ref(), place("date_of_birth", id))?
        .map(|s| {
            NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| {
                tracing::error!(table = TABLE, column = "date_of_birth", row_id = %id, "sealed date is not a date");
                ApiError::internal("opening date_of_birth", anyhow::anyhow!("not a date"))
            })
        })
        .transpose()?;
    Ok(SubmissionDoc {
        id,
        owner: row.owner_id,
        status: SubmissionStatus::from_db(&row.status),
        practitioner_id: row.practitioner_id,
        symptoms,
        notes: svc.open_text_opt(row.notes.as_ref(), place("notes", id))?,
        contact_email: svc.open_text_opt(row.contact_email.as_ref(), place("contact_email", id))?,
        date_of_birth,
        age_band: row.age_band,
        region: row.region,
        symptom_categories: row.symptom_categories,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Opens a row for the response; a failure is recorded as DECRYPT_FAILURE
/// in its own transaction (the request's rolls back).
async fn open_doc(
    svc: &Services,
    who: &Principal,
    row: SubmissionRow,
) -> Result<SubmissionDoc, ApiError> {
    let id = row.id;
    match to_doc(svc, row) {
        Ok(doc) => Ok(doc),
        Err(e) => {
            audit::record_alone(
                &svc.pool,
                who,
                Entry::new(Action::DecryptFailure, TABLE, id).outcome(Outcome::Failure),
            )
            .await;
            Err(e)
        }
    }
}

/// Records a refused attempt (in its own transaction) and returns the error.
async fn refused(
    svc: &Services,
    who: &Principal,
    action: Action,
    id: Option<Uuid>,
    e: ApiError,
) -> ApiError {
    let mut entry = Entry::new(
        Action::AccessDenied,
        TABLE,
        id.map(|i| i.to_string()).unwrap_or_default(),
    )
    .outcome(Outcome::Denied)
    .reason(Some(format!("{} refused", action.as_str())));
    if id.is_none() {
        entry = entry.without_id();
    }
    audit::record_alone(&svc.pool, who, entry).await;
    e
}

/// The READ entries for rows a caller was shown; an admin's emergency read of
/// someone else's record is also a BREAK_GLASS entry with the reason.
fn read_entries(who: &Principal, docs: &[SubmissionDoc]) -> Vec<Entry> {
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        out.push(Entry::new(Action::Read, TABLE, d.id));
        if who.break_glass() && who.user_id.as_deref() != Some(d.owner.as_str()) {
            out.push(
                Entry::new(Action::BreakGlass, TABLE, d.id).reason(who.break_glass_reason.clone()),
            );
        }
    }
    out
}

fn email_bidx(svc: &Services, email: &str) -> Vec<u8> {
    svc.keyring
        .blind_index(TABLE, "contact_email", &normalise_email(email))
        .as_bytes()
        .to_vec()
}

fn seal_symptoms(
    svc: &Services,
    symptoms: &[Symptom],
    id: Uuid,
) -> Result<crate::crypto::SealedField, ApiError> {
    let json = zeroize::Zeroizing::new(serde_json::to_vec(symptoms).expect("plain data"));
    svc.seal(&json, place("symptoms", id))
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    body: serde_json::Value,
) -> Result<SubmissionDoc, ApiError> {
    let owner = match who.require_user() {
        Ok(u) => u.to_string(),
        Err(e) => return Err(refused(svc, who, Action::Create, None, e).await),
    };
    let f: SubmissionFields = parse_body(body)?;
    require(f.missing_for_create())?;
    let id = new_id();
    let symptoms = f.symptoms.expect("checked");
    let dob = f.date_of_birth.flatten();
    let email = f.contact_email.flatten();
    let new = NewSubmission {
        id,
        owner_id: owner,
        status: f.status.unwrap_or_default().as_str(),
        practitioner_id: f.practitioner_id.flatten(),
        symptoms: seal_symptoms(svc, &symptoms, id)?,
        notes: svc.seal_text(f.notes.flatten().as_deref(), place("notes", id))?,
        contact_email_bidx: email.as_deref().map(|e| email_bidx(svc, e)),
        contact_email: svc.seal_text(email.as_deref(), place("contact_email", id))?,
        date_of_birth: svc.seal_text(
            dob.map(|d| d.to_string()).as_deref(),
            place("date_of_birth", id),
        )?,
        age_band: dob.map(|d| age_band(d, Utc::now().date_naive())),
        region: f.region.flatten(),
        symptom_categories: categories(&symptoms),
    };
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::insert(&mut tx, new)
        .await
        .map_err(|e| db_error(e, CONSTRAINTS))?;
    let doc = open_doc(svc, who, row).await?;
    // The CREATE/UPDATE/DELETE entry is written by the table's audit
    // trigger, on this transaction.
    tx.commit().await?;
    Ok(doc)
}

pub async fn get(svc: &Services, who: &Principal, id: Uuid) -> Result<SubmissionDoc, ApiError> {
    if let Err(e) = who.require_user() {
        return Err(refused(svc, who, Action::Read, Some(id), e).await);
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let Some(row) = store::get(&mut tx, id).await? else {
        drop(tx);
        return Err(refused(svc, who, Action::Read, Some(id), ApiError::NotFound).await);
    };
    let doc = open_doc(svc, who, row).await?;
    audit::record(&mut tx, who, &read_entries(who, std::slice::from_ref(&doc))).await?;
    tx.commit().await?;
    Ok(doc)
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
) -> Result<Page<SubmissionDoc>, ApiError> {
    if let Err(e) = who.require_user() {
        return Err(refused(svc, who, Action::Read, None, e).await);
    }
    let order = query::order_by(&q.sort, FIELDS, "created_at DESC, id DESC")?;
    let blind = |t: &str, c: &str, v: &str| svc.blind_candidates(t, c, v);
    let none = |_: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>| {};
    let mut tx = db::scoped(&svc.pool, who).await?;
    let (rows, total) = common::list_rows::<SubmissionRow>(
        &mut tx,
        ListSpec {
            from: TABLE,
            select: COLUMNS,
            filter: q.filter.as_ref(),
            fields: FIELDS,
            blind: &blind,
            extra: &none,
            order: &order,
            limit: q.limit as i64,
            offset: q.offset(),
            count: q.pagination,
            knn_within_m: None,
        },
    )
    .await?;
    let mut docs = Vec::with_capacity(rows.len());
    for r in rows {
        docs.push(open_doc(svc, who, r).await?);
    }
    audit::record(&mut tx, who, &read_entries(who, &docs)).await?;
    tx.commit().await?;
    Ok(Page::new(docs, total, &q))
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    body: serde_json::Value,
) -> Result<SubmissionDoc, ApiError> {
    if let Err(e) = who.require_user() {
        return Err(refused(svc, who, Action::Update, Some(id), e).await);
    }
    let f: SubmissionFields = parse_body(body)?;
    let mut sets: Vec<(&'static str, Value)> = Vec::new();
    if let Some(symptoms) = &f.symptoms {
        sets.push((
            "symptoms",
            Value::Sealed(Some(seal_symptoms(svc, symptoms, id)?)),
        ));
        sets.push(("symptom_categories", Value::TextArray(categories(symptoms))));
    }
    if let Some(notes) = f.notes {
        sets.push((
            "notes",
            Value::Sealed(svc.seal_text(notes.as_deref(), place("notes", id))?),
        ));
    }
    if let Some(email) = f.contact_email {
        sets.push((
            "contact_email_bidx",
            Value::Bytes(email.as_deref().map(|e| email_bidx(svc, e))),
        ));
        sets.push((
            "contact_email",
            Value::Sealed(svc.seal_text(email.as_deref(), place("contact_email", id))?),
        ));
    }
    if let Some(dob) = f.date_of_birth {
        sets.push((
            "date_of_birth",
            Value::Sealed(svc.seal_text(
                dob.map(|d| d.to_string()).as_deref(),
                place("date_of_birth", id),
            )?),
        ));
        sets.push((
            "age_band",
            Value::Text(dob.map(|d| age_band(d, Utc::now().date_naive()))),
        ));
    }
    if let Some(region) = f.region {
        sets.push(("region", Value::Text(region)));
    }
    if let Some(status) = f.status {
        sets.push(("status", Value::Text(Some(status.as_str().into()))));
    }
    if let Some(p) = f.practitioner_id {
        sets.push(("practitioner_id", Value::Uuid(p)));
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let updated: Option<SubmissionRow> =
        common::update_returning(&mut tx, TABLE, COLUMNS, id, sets)
            .await
            .map_err(|e| db_error(e, CONSTRAINTS))?;
    // Not theirs, or not there: the same answer.
    let Some(row) = updated else {
        drop(tx);
        return Err(refused(svc, who, Action::Update, Some(id), ApiError::NotFound).await);
    };
    let doc = open_doc(svc, who, row).await?;
    // The CREATE/UPDATE/DELETE entry is written by the table's audit
    // trigger, on this transaction.
    tx.commit().await?;
    Ok(doc)
}

pub async fn delete(svc: &Services, who: &Principal, id: Uuid) -> Result<SubmissionDoc, ApiError> {
    if let Err(e) = who.require_user() {
        return Err(refused(svc, who, Action::Delete, Some(id), e).await);
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let Some(row) = store::delete(&mut tx, id).await? else {
        drop(tx);
        return Err(refused(svc, who, Action::Delete, Some(id), ApiError::NotFound).await);
    };
    let doc = open_doc(svc, who, row).await?;
    // The CREATE/UPDATE/DELETE entry is written by the table's audit
    // trigger, on this transaction.
    tx.commit().await?;
    Ok(doc)
}
