//! SQL for `herbs`. The TCM filter is one `tcm_properties @> $1`
//! containment (GIN `jsonb_path_ops`); `q` is full-text search on the
//! generated `search` tsvector (GIN). Lists read `herbs_visible`
//! (migration 0010): as phi_app, the table's read policy would keep both
//! indexes out of reach, since `@>` and `@@` are not leakproof.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::order_by;
use super::{Listing, Result, Rows, Tx, Value, list as page, update_returning};
use crate::query::ListQuery;
use crate::schema::HERBS;

const COLUMNS: &str =
    "id, slug, name, scientific_name, description, status, tcm_properties, created_at, updated_at";

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

pub struct NewRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub scientific_name: Option<String>,
    pub description: Option<String>,
    pub status: &'static str,
    pub tcm_properties: serde_json::Value,
}

#[derive(Default)]
pub struct Patch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub scientific_name: Option<Option<String>>,
    pub description: Option<Option<String>>,
    pub status: Option<&'static str>,
    pub tcm_properties: Option<serde_json::Value>,
}

/// The TCM part of a herb list: one containment for every property that
/// must hold, any of several temperatures, and full text.
#[derive(Debug, Default, PartialEq)]
pub struct TcmFilter {
    pub containment: Option<serde_json::Value>,
    pub any_temperature: Vec<serde_json::Value>,
    pub text: Option<String>,
}

pub async fn insert(tx: &mut Tx, h: NewRow) -> Result<HerbRow> {
    let sql = format!(
        "INSERT INTO herbs (id, slug, name, scientific_name, description, status, tcm_properties) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    );
    Ok(tx
        .q_as(&sql)
        .bind(h.id)
        .bind(h.slug)
        .bind(h.name)
        .bind(h.scientific_name)
        .bind(h.description)
        .bind(h.status)
        .bind(h.tcm_properties)
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<HerbRow>> {
    let sql = format!("SELECT {COLUMNS} FROM herbs WHERE id = $1");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}

pub async fn update(tx: &mut Tx, id: Uuid, p: Patch) -> Result<Option<HerbRow>> {
    let mut sets = Vec::new();
    if let Some(v) = p.name {
        sets.push(("name", Value::Text(Some(v))));
    }
    if let Some(v) = p.slug {
        sets.push(("slug", Value::Text(Some(v))));
    }
    if let Some(v) = p.scientific_name {
        sets.push(("scientific_name", Value::Text(v)));
    }
    if let Some(v) = p.description {
        sets.push(("description", Value::Text(v)));
    }
    if let Some(v) = p.status {
        sets.push(("status", Value::Text(Some(v.into()))));
    }
    if let Some(v) = p.tcm_properties {
        sets.push(("tcm_properties", Value::Json(v)));
    }
    update_returning(tx, "herbs", COLUMNS, id, sets).await
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> Result<Option<HerbRow>> {
    let sql = format!("DELETE FROM herbs WHERE id = $1 RETURNING {COLUMNS}");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}

pub async fn list(tx: &mut Tx, q: &ListQuery, tcm: &TcmFilter) -> Result<Rows<HerbRow>> {
    let extra = |qb: &mut QueryBuilder<'_, Postgres>| {
        if let Some(c) = &tcm.containment {
            qb.push(" AND tcm_properties @> ").push_bind(c.clone());
        }
        if !tcm.any_temperature.is_empty() {
            qb.push(" AND (");
            for (i, t) in tcm.any_temperature.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("tcm_properties @> ").push_bind(t.clone());
            }
            qb.push(")");
        }
        if let Some(text) = &tcm.text {
            qb.push(" AND search @@ websearch_to_tsquery('english', ")
                .push_bind(text.clone())
                .push(")");
        }
    };
    page(
        tx,
        Listing {
            from: "herbs_visible",
            select: COLUMNS,
            order: order_by(&q.sort, HERBS.default_order),
            extra: &extra,
            knn_within_m: None,
            one_off: false,
        },
        q,
    )
    .await
}
