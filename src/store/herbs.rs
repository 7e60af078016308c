//! SQL for `herbs`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub const COLUMNS: &str =
    "id, slug, name, scientific_name, description, status, tcm_properties, created_at, updated_at";

pub const CONSTRAINTS: &[(&str, &str)] = &[("herbs_slug_key", "slug")];

#[derive(Debug, sqlx::FromRow)]
pub struct HerbRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub scientific_name: Option<String>,
    pub description: Option<String>,
    pub status: String,
    pub tcm_properties: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewHerb {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub scientific_name: Option<String>,
    pub description: Option<String>,
    pub status: &'static str,
    pub tcm_properties: serde_json::Value,
}

pub async fn insert(conn: &mut PgConnection, h: NewHerb) -> Result<HerbRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO herbs (id, slug, name, scientific_name, description, status, tcm_properties) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(h.id)
    .bind(h.slug)
    .bind(h.name)
    .bind(h.scientific_name)
    .bind(h.description)
    .bind(h.status)
    .bind(h.tcm_properties)
    .fetch_one(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<HerbRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM herbs WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<Option<HerbRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM herbs WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}
