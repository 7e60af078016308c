//! SQL for `symptom_submissions`. Sealed columns in, sealed columns out.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::crypto::SealedField;

pub const COLUMNS: &str = "id, owner_id, status, practitioner_id, symptoms, notes, contact_email, \
    date_of_birth, age_band, region, symptom_categories, created_at, updated_at";

pub const CONSTRAINTS: &[(&str, &str)] =
    &[("symptom_submissions_practitioner_id_fkey", "practitionerId")];

#[derive(Debug, sqlx::FromRow)]
pub struct SubmissionRow {
    pub id: Uuid,
    pub owner_id: String,
    pub status: String,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: SealedField,
    pub notes: Option<SealedField>,
    pub contact_email: Option<SealedField>,
    pub date_of_birth: Option<SealedField>,
    pub age_band: Option<String>,
    pub region: Option<String>,
    pub symptom_categories: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewSubmission {
    pub id: Uuid,
    pub owner_id: String,
    pub status: &'static str,
    pub practitioner_id: Option<Uuid>,
    pub symptoms: SealedField,
    pub notes: Option<SealedField>,
    pub contact_email: Option<SealedField>,
    pub contact_email_bidx: Option<Vec<u8>>,
    pub date_of_birth: Option<SealedField>,
    pub age_band: Option<String>,
    pub region: Option<String>,
    pub symptom_categories: Vec<String>,
}

pub async fn insert(
    conn: &mut PgConnection,
    s: NewSubmission,
) -> Result<SubmissionRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO symptom_submissions (id, owner_id, status, practitioner_id, symptoms, notes, \
         contact_email, contact_email_bidx, date_of_birth, age_band, region, symptom_categories) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    ))
    .bind(s.id)
    .bind(s.owner_id)
    .bind(s.status)
    .bind(s.practitioner_id)
    .bind(s.symptoms)
    .bind(s.notes)
    .bind(s.contact_email)
    .bind(s.contact_email_bidx)
    .bind(s.date_of_birth)
    .bind(s.age_band)
    .bind(s.region)
    .bind(s.symptom_categories)
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<SubmissionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM symptom_submissions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn delete(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<SubmissionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM symptom_submissions WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}
