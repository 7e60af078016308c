//! SQL for `consents`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub const COLUMNS: &str = "id, owner_id, practitioner_id, submission_id, expires_at, created_at";

#[derive(Debug, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: Uuid,
    pub owner_id: String,
    pub practitioner_id: Uuid,
    pub submission_id: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    owner_id: &str,
    practitioner_id: Uuid,
    submission_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<ConsentRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO consents (id, owner_id, practitioner_id, submission_id, expires_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(owner_id)
    .bind(practitioner_id)
    .bind(submission_id)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

pub async fn list(
    conn: &mut PgConnection,
    limit: i64,
    offset: i64,
) -> Result<Vec<ConsentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM consents ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2"
    ))
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await
}

pub async fn count(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM consents")
        .fetch_one(conn)
        .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<ConsentRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM consents WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}
