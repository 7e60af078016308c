//! SQL for `practitioners`.
//!
//! Proximity filters with `earth_box(..) @> earth` and `earth_distance(..)`
//! on the stored point (`earth`, kept from lat/lon by a trigger), and orders
//! by `earth <-> point`, a GiST KNN scan, instead of sorting every row in range by distance (the
//! CMS guide's pattern; 100x slower at 1M rows, see BENCHMARKS.md).
//! `distance_m` is computed only for the rows returned.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::filter::order_by;
use super::{Listing, Result, Rows, Tx, Value, list as page, update_returning};
use crate::crypto::SealedField;
use crate::domain::geo::on_earthdistance_sphere;
use crate::query::{ListQuery, Near};
use crate::schema::PRACTITIONERS;

const COLUMNS: &str = "id, slug, name, modalities, bio, city, region, country, postal_code, \
    website, status, lat, lon, user_id, email, phone, licence_number, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
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
pub struct NewRow {
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

/// What a PATCH changes: absent leaves a column, `Some(None)` clears it.
#[derive(Default)]
pub struct Patch {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub modalities: Option<Vec<String>>,
    pub bio: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub region: Option<Option<String>>,
    pub country: Option<Option<String>>,
    pub postal_code: Option<Option<String>>,
    pub website: Option<Option<String>>,
    pub status: Option<&'static str>,
    pub location: Option<(f64, f64)>,
    /// The sealed email and its blind index, together.
    pub email: Option<(Option<SealedField>, Option<Vec<u8>>)>,
    pub phone: Option<Option<SealedField>>,
    pub licence_number: Option<Option<SealedField>>,
    pub user_id: Option<Option<String>>,
}

impl Patch {
    /// Destructured whole: a new column does not build until it is set here.
    fn sets(self) -> Vec<(&'static str, Value)> {
        let Patch {
            name,
            slug,
            modalities,
            bio,
            city,
            region,
            country,
            postal_code,
            website,
            status,
            location,
            email,
            phone,
            licence_number,
            user_id,
        } = self;
        let mut s = Vec::new();
        if let Some(v) = name {
            s.push(("name", Value::Text(Some(v))));
        }
        if let Some(v) = slug {
            s.push(("slug", Value::Text(Some(v))));
        }
        if let Some(v) = modalities {
            s.push(("modalities", Value::TextArray(v)));
        }
        for (col, v) in [
            ("bio", bio),
            ("city", city),
            ("region", region),
            ("country", country),
            ("postal_code", postal_code),
            ("website", website),
            ("user_id", user_id),
        ] {
            if let Some(v) = v {
                s.push((col, Value::Text(v)));
            }
        }
        if let Some(v) = status {
            s.push(("status", Value::Text(Some(v.into()))));
        }
        if let Some((lat, lon)) = location {
            s.push(("lat", Value::Float(lat)));
            s.push(("lon", Value::Float(lon)));
        }
        if let Some((sealed, bidx)) = email {
            s.push(("email_bidx", Value::Bytes(bidx)));
            s.push(("email", Value::Sealed(sealed)));
        }
        if let Some(v) = phone {
            s.push(("phone", Value::Sealed(v)));
        }
        if let Some(v) = licence_number {
            s.push(("licence_number", Value::Sealed(v)));
        }
        s
    }
}

pub async fn insert(tx: &mut Tx, p: NewRow) -> Result<PractitionerRow> {
    let sql = format!(
        "INSERT INTO practitioners (id, slug, name, modalities, bio, city, region, country, \
         postal_code, website, status, lat, lon, user_id, email, email_bidx, phone, licence_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         RETURNING {COLUMNS}"
    );
    Ok(tx
        .q_as(&sql)
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
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<PractitionerRow>> {
    let sql = format!("SELECT {COLUMNS} FROM practitioners WHERE id = $1");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}

/// The practitioners among `ids` that the caller can see.
pub async fn get_many(tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<PractitionerRow>> {
    let sql = format!("SELECT {COLUMNS} FROM practitioners WHERE id = ANY($1)");
    Ok(tx.q_as(&sql).bind(ids).fetch_all(&mut **tx).await?)
}

/// Whether the caller can see the practitioner at all.
pub async fn visible(tx: &mut Tx, id: Uuid) -> Result<bool> {
    Ok(tx
        .q_scalar("SELECT EXISTS (SELECT 1 FROM practitioners WHERE id = $1)")
        .bind(id)
        .fetch_one(&mut **tx)
        .await?)
}

pub async fn update(tx: &mut Tx, id: Uuid, patch: Patch) -> Result<Option<PractitionerRow>> {
    update_returning(tx, "practitioners", COLUMNS, id, patch.sets()).await
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> Result<Option<PractitionerRow>> {
    let sql = format!("DELETE FROM practitioners WHERE id = $1 RETURNING {COLUMNS}");
    Ok(tx.q_as(&sql).bind(id).fetch_optional(&mut **tx).await?)
}

/// The origin of a proximity query, as a literal: floats formatted by Rust
/// from checked finite values. PostgreSQL then computes `phi_earth(..)` once
/// while planning; as a bound parameter in a reusable plan it is computed
/// again for every row the distance condition tests. The KNN order needs
/// it inline anyway to follow the index.
fn origin(n: Near) -> String {
    format!("phi_earth({:?}::float8, {:?}::float8)", n.lat, n.lon)
}

/// The proximity part of a query: the box (GiST on the stored `earth`
/// point) and the distance, computed once per row from the stored point.
fn push_near(qb: &mut QueryBuilder<'_, Postgres>, n: Near) {
    let o = origin(n);
    let (min_m, max_m) = (
        on_earthdistance_sphere(n.min_m),
        on_earthdistance_sphere(n.max_m),
    );
    qb.push(format!(" AND earth_box({o}, "))
        .push_bind(max_m)
        .push(format!(") @> earth AND earth_distance({o}, earth) "));
    if min_m > 0.0 {
        qb.push("BETWEEN ")
            .push_bind(min_m)
            .push(" AND ")
            .push_bind(max_m);
    } else {
        qb.push("<= ").push_bind(max_m);
    }
}

/// A page of practitioners (and the count): the filter, and when `near` is
/// set, nearest first with `distance_m`.
///
/// Lists read `practitioners_visible` (migration 0010): the read policy as
/// a plain condition, so the box can use the GiST index for the count.
///
/// Nearest first from the origin with no other sort is a KNN walk: the page
/// is taken from the index in distance order, with only the visibility
/// rule and the caller's filter inside, and the radius applied outside; the
/// walk stops after offset + limit visible rows, where a box inside it made
/// the planner collect and sort every row in the box. No `id` tiebreak on
/// the KNN order: a second key would make the planner sort every visible
/// row.
///
/// `own_only`: the caller's own listings (those linked to them), for a
/// practitioner's bulk change.
pub async fn list(tx: &mut Tx, q: &ListQuery, own_only: bool) -> Result<Rows<PractitionerRow>> {
    let near = q.near;
    let knn_within_m = match (near, q.sort.is_empty()) {
        (Some(n), true) if n.min_m <= 0.0 => Some(on_earthdistance_sphere(n.max_m)),
        _ => None,
    };
    let (select, order) = match near {
        Some(n) => (
            format!(
                "{COLUMNS}, earth_distance({}, earth) AS distance_m",
                origin(n)
            ),
            if q.sort.is_empty() {
                format!(
                    " ORDER BY earth <-> {}{}",
                    origin(n),
                    if knn_within_m.is_some() { "" } else { ", id" }
                )
            } else {
                order_by(&q.sort, &[])
            },
        ),
        None => (
            COLUMNS.to_string(),
            order_by(&q.sort, PRACTITIONERS.default_order),
        ),
    };
    let extra = move |qb: &mut QueryBuilder<'_, Postgres>| {
        if let Some(n) = near {
            push_near(qb, n);
        }
        if own_only {
            qb.push(" AND user_id = (SELECT app_user_id())");
        }
    };
    page(
        tx,
        Listing {
            from: "practitioners_visible",
            select: &select,
            order,
            extra: &extra,
            knn_within_m,
            // Each origin is its own statement: do not let them push the
            // prepared statements every request uses out of the cache.
            one_off: near.is_some(),
        },
        q,
    )
    .await
}
