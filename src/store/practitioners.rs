//! SQL for `practitioners`.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::crypto::SealedField;

pub const COLUMNS: &str = "id, slug, name, modalities, bio, city, region, country, postal_code, \
    website, status, lat, lon, user_id, email, phone, licence_number, created_at, updated_at";

/// Unique constraints and the API path they belong to.
pub const CONSTRAINTS: &[(&str, &str)] = &[
    ("practitioners_slug_key", "slug"),
    ("practitioners_email_bidx_key", "email"),
];

#[derive(Debug, sqlx::FromRow)]
pub struct PractitionerRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub modalities: Vec<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub website: Option<String>,
    pub status: String,
    pub lat: f64,
    pub lon: f64,
    pub user_id: Option<String>,
    pub email: Option<SealedField>,
    pub phone: Option<SealedField>,
    pub licence_number: Option<SealedField>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(default)]
    pub distance_m: Option<f64>,
}

/// A row to insert: public fields plain, contact fields sealed.
pub struct NewPractitioner {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub modalities: Vec<String>,
    pub bio: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
    pub website: Option<String>,
    pub status: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub user_id: Option<String>,
    pub email: Option<SealedField>,
    pub email_bidx: Option<Vec<u8>>,
    pub phone: Option<SealedField>,
    pub licence_number: Option<SealedField>,
}

pub async fn insert(
    conn: &mut PgConnection,
    p: NewPractitioner,
) -> Result<PractitionerRow, sqlx::Error> {
    sqlx::query_as(&format!(
        "INSERT INTO practitioners (id, slug, name, modalities, bio, city, region, country, \
         postal_code, website, status, lat, lon, user_id, email, email_bidx, phone, licence_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING {COLUMNS}"
    ))
    .bind(p.id)
    .bind(p.slug)
    .bind(p.name)
    .bind(p.modalities)
    .bind(p.bio)
    .bind(p.city)
    .bind(p.region)
    .bind(p.country)
    .bind(p.postal_code)
    .bind(p.website)
    .bind(p.status)
    .bind(p.lat)
    .bind(p.lon)
    .bind(p.user_id)
    .bind(p.email)
    .bind(p.email_bidx)
    .bind(p.phone)
    .bind(p.licence_number)
    .fetch_one(conn)
    .await
}

pub async fn get(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PractitionerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM practitioners WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn delete(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PractitionerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "DELETE FROM practitioners WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}
