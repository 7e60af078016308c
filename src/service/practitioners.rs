//! Practitioners: CRUD, Payload queries and proximity search.
//!
//! Proximity filters with `earth_box(..) @> phi_earth(lat, lon)` and
//! `earth_distance(..) <= r`, and orders by `phi_earth(lat, lon) <-> point`,
//! a GiST KNN scan, instead of sorting every row in range by distance (the
//! CMS guide's pattern; 100x slower at 1M rows, see BENCHMARKS.md).
//! `distance_m` is computed only for the rows returned.

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::Principal;
use crate::crypto::Place;
use crate::crypto::blind_index::normalise_email;
use crate::db;
use crate::domain::geo::Location;
use crate::domain::parse_body;
use crate::domain::practitioner::{Contact, PractitionerDoc, PractitionerFields, Status, TABLE};
use crate::error::ApiError;
use crate::query::{self, FieldKind, FieldSpec, ListQuery, Near, Page};
use crate::store::practitioners::{
    self as store, COLUMNS, CONSTRAINTS, NewPractitioner, PractitionerRow,
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
        name: "name",
        column: "name",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "slug",
        column: "slug",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "modalities",
        column: "modalities",
        kind: FieldKind::TextArray,
        sortable: false,
    },
    FieldSpec {
        name: "city",
        column: "city",
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
        name: "country",
        column: "country",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "postalCode",
        column: "postal_code",
        kind: FieldKind::Text,
        sortable: true,
    },
    FieldSpec {
        name: "status",
        column: "status",
        kind: FieldKind::Enum(&["draft", "published"]),
        sortable: true,
    },
    FieldSpec {
        name: "userId",
        column: "user_id",
        kind: FieldKind::Text,
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
        name: "email",
        column: "email_bidx",
        kind: FieldKind::BlindIndexed {
            table: TABLE,
            column: "email",
        },
        sortable: false,
    },
    FieldSpec {
        name: "location",
        column: "",
        kind: FieldKind::Location,
        sortable: false,
    },
];

fn place(column: &'static str, id: Uuid) -> Place<'static> {
    Place::new(TABLE, column, id)
}

fn may_see_contact(who: &Principal, row: &PractitionerRow) -> bool {
    who.is_staff() || (row.user_id.is_some() && row.user_id == who.user_id)
}

fn to_doc(
    svc: &Services,
    who: &Principal,
    row: PractitionerRow,
) -> Result<PractitionerDoc, ApiError> {
    // Only the callers who may see contact fields cause a decryption.
    let contact = if may_see_contact(who, &row) {
        Some(Contact {
            email: svc.open_text_opt(row.email.as_ref(), place("email", row.id))?,
            phone: svc.open_text_opt(row.phone.as_ref(), place("phone", row.id))?,
            licence_number: svc
                .open_text_opt(row.licence_number.as_ref(), place("licence_number", row.id))?,
        })
    } else {
        None
    };
    let user_id = if who.is_staff() { row.user_id } else { None };
    Ok(PractitionerDoc {
        id: row.id,
        name: row.name,
        slug: row.slug,
        modalities: row.modalities,
        bio: row.bio,
        city: row.city,
        region: row.region,
        country: row.country,
        postal_code: row.postal_code,
        website: row.website,
        status: Status::from_db(&row.status),
        location: Location {
            lat: row.lat,
            lon: row.lon,
        },
        contact,
        user_id,
        distance_m: row.distance_m,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Modalities keep their order, once each, trimmed.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for m in list {
        let m = m.trim().to_string();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

fn email_bidx(svc: &Services, email: &str) -> Vec<u8> {
    svc.keyring
        .blind_index(TABLE, "email", &normalise_email(email))
        .as_bytes()
        .to_vec()
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    body: serde_json::Value,
) -> Result<PractitionerDoc, ApiError> {
    who.require_staff()?;
    let f: PractitionerFields = parse_body(body)?;
    require(f.missing_for_create())?;
    let id = new_id();
    let location = f.location.expect("checked");
    let email = f.email.flatten();
    let new = NewPractitioner {
        id,
        slug: f.slug.expect("checked"),
        name: f.name.expect("checked").trim().to_string(),
        modalities: dedup(f.modalities.unwrap_or_default()),
        bio: f.bio.flatten(),
        city: f.city.flatten(),
        region: f.region.flatten(),
        country: f.country.flatten(),
        postal_code: f.postal_code.flatten(),
        website: f.website.flatten(),
        status: f.status.unwrap_or_default().as_str(),
        lat: location.lat,
        lon: location.lon,
        user_id: f.user_id.flatten(),
        email_bidx: email.as_deref().map(|e| email_bidx(svc, e)),
        email: svc.seal_text(email.as_deref(), place("email", id))?,
        phone: svc.seal_text(f.phone.flatten().as_deref(), place("phone", id))?,
        licence_number: svc.seal_text(
            f.licence_number.flatten().as_deref(),
            place("licence_number", id),
        )?,
    };
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::insert(&mut tx, new)
        .await
        .map_err(|e| db_error(e, CONSTRAINTS))?;
    let doc = to_doc(svc, who, row)?;
    // Changes to sealed fields, and deletions, are recorded by the table's
    // audit trigger on this transaction.
    tx.commit().await?;
    Ok(doc)
}

pub async fn get(svc: &Services, who: &Principal, id: Uuid) -> Result<PractitionerDoc, ApiError> {
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::get(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(svc, who, row)
}

/// The proximity part of a query: filter and KNN order, all bound.
fn push_near(qb: &mut QueryBuilder<'_, Postgres>, n: Near) {
    qb.push(" AND earth_box(phi_earth(")
        .push_bind(n.lat)
        .push(", ")
        .push_bind(n.lon)
        .push("), ")
        .push_bind(n.max_m)
        .push(") @> phi_earth(lat, lon) AND earth_distance(phi_earth(")
        .push_bind(n.lat)
        .push(", ")
        .push_bind(n.lon)
        .push("), phi_earth(lat, lon)) BETWEEN ")
        .push_bind(n.min_m)
        .push(" AND ")
        .push_bind(n.max_m);
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
) -> Result<Page<PractitionerDoc>, ApiError> {
    let near = query::take_near(&mut q.filter, FIELDS)?;
    list_near(svc, who, q, near).await
}

async fn list_near(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
    near: Option<Near>,
) -> Result<Page<PractitionerDoc>, ApiError> {
    // Nearest first from the origin: the KNN walk (see ListSpec::knn_within_m).
    let knn_within_m = match (near, &q.sort) {
        (Some(n), None) if n.min_m <= 0.0 => Some(n.max_m),
        _ => None,
    };
    let (select, order) = match (near, &q.sort) {
        (Some(n), None) => (
            // Floats are formatted by Rust from checked finite values; the
            // KNN operator needs the point inline to use the index's order.
            format!(
                "{COLUMNS}, earth_distance(phi_earth({lat:?}::float8, {lon:?}::float8), phi_earth(lat, lon)) AS distance_m",
                lat = n.lat,
                lon = n.lon
            ),
            // No tie-breaker in the KNN walk: a second key would make the
            // planner sort every visible row instead of walking the index.
            format!(
                " ORDER BY phi_earth(lat, lon) <-> phi_earth({lat:?}::float8, {lon:?}::float8){}",
                if knn_within_m.is_some() { "" } else { ", id" },
                lat = n.lat,
                lon = n.lon
            ),
        ),
        (Some(n), Some(_)) => (
            format!(
                "{COLUMNS}, earth_distance(phi_earth({lat:?}::float8, {lon:?}::float8), phi_earth(lat, lon)) AS distance_m",
                lat = n.lat,
                lon = n.lon
            ),
            query::order_by(&q.sort, FIELDS, "")?,
        ),
        (None, _) => (
            COLUMNS.to_string(),
            query::order_by(&q.sort, FIELDS, "created_at DESC, id DESC")?,
        ),
    };
    let blind = |t: &str, c: &str, v: &str| svc.blind_candidates(t, c, v);
    let extra = move |qb: &mut QueryBuilder<'_, Postgres>| {
        if let Some(n) = near {
            push_near(qb, n);
        }
    };
    let mut tx = db::scoped(&svc.pool, who).await?;
    let (rows, total) = common::list_rows::<PractitionerRow>(
        &mut tx,
        ListSpec {
            from: TABLE,
            select: &select,
            filter: q.filter.as_ref(),
            fields: FIELDS,
            blind: &blind,
            extra: &extra,
            order: &order,
            limit: q.limit as i64,
            offset: q.offset(),
            count: q.pagination,
            knn_within_m,
        },
    )
    .await?;
    tx.commit().await?;
    let docs = rows
        .into_iter()
        .map(|r| to_doc(svc, who, r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(docs, total, &q))
}

/// `GET /api/practitioners/near?lat=&lon=&radius_km=&limit=&modality=`.
pub async fn near(
    svc: &Services,
    who: &Principal,
    mut q: ListQuery,
) -> Result<Page<PractitionerDoc>, ApiError> {
    let get = |name: &str| {
        q.extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let num = |name: &'static str| -> Result<Option<f64>, ApiError> {
        get(name)
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| ApiError::invalid(name, "must be a number"))
            })
            .transpose()
    };
    let lat = num("lat")?.ok_or_else(|| ApiError::invalid("lat", "is required"))?;
    let lon = num("lon")?.ok_or_else(|| ApiError::invalid("lon", "is required"))?;
    let radius_km = num("radius_km")?.unwrap_or(25.0);
    let point = Location { lat, lon };
    validator::Validate::validate(&point)
        .map_err(|e| ApiError::Validation(crate::domain::flatten(&e)))?;
    if !(0.0..=20_037.5).contains(&radius_km) {
        return Err(ApiError::invalid("radius_km", "must be from 0 to 20037.5"));
    }
    let modalities: Vec<String> = q
        .extra
        .iter()
        .filter(|(k, _)| k == "modality")
        .map(|(_, v)| v.clone())
        .collect();
    for m in modalities {
        let cond = query::Filter::Cond {
            field: "modalities".into(),
            op: query::Op::Contains,
            values: vec![m],
        };
        q.filter = Some(match q.filter.take() {
            None => cond,
            Some(query::Filter::And(mut parts)) => {
                parts.push(cond);
                query::Filter::And(parts)
            }
            Some(other) => query::Filter::And(vec![other, cond]),
        });
    }
    let near = Near {
        lat,
        lon,
        max_m: radius_km * 1000.0,
        min_m: 0.0,
    };
    list_near(svc, who, q, Some(near)).await
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    body: serde_json::Value,
) -> Result<PractitionerDoc, ApiError> {
    who.require_user()?;
    let f: PractitionerFields = parse_body(body)?;
    // The linked practitioner may edit their profile, not who it belongs to
    // or whether it is published.
    if !who.is_staff() && (f.user_id.is_some() || f.status.is_some() || f.slug.is_some()) {
        return Err(ApiError::Forbidden);
    }
    let mut sets: Vec<(&'static str, Value)> = Vec::new();
    if let Some(v) = f.name {
        sets.push(("name", Value::Text(Some(v.trim().to_string()))));
    }
    if let Some(v) = f.slug {
        sets.push(("slug", Value::Text(Some(v))));
    }
    if let Some(v) = f.modalities {
        sets.push(("modalities", Value::TextArray(dedup(v))));
    }
    for (col, v) in [
        ("bio", f.bio),
        ("city", f.city),
        ("region", f.region),
        ("country", f.country),
        ("postal_code", f.postal_code),
        ("website", f.website),
        ("user_id", f.user_id),
    ] {
        if let Some(v) = v {
            sets.push((col, Value::Text(v)));
        }
    }
    if let Some(s) = f.status {
        sets.push(("status", Value::Text(Some(s.as_str().into()))));
    }
    if let Some(l) = f.location {
        sets.push(("lat", Value::Float(l.lat)));
        sets.push(("lon", Value::Float(l.lon)));
    }
    if let Some(email) = f.email {
        sets.push((
            "email_bidx",
            Value::Bytes(email.as_deref().map(|e| email_bidx(svc, e))),
        ));
        sets.push((
            "email",
            Value::Sealed(svc.seal_text(email.as_deref(), place("email", id))?),
        ));
    }
    if let Some(phone) = f.phone {
        sets.push((
            "phone",
            Value::Sealed(svc.seal_text(phone.as_deref(), place("phone", id))?),
        ));
    }
    if let Some(lic) = f.licence_number {
        sets.push((
            "licence_number",
            Value::Sealed(svc.seal_text(lic.as_deref(), place("licence_number", id))?),
        ));
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let updated: Option<PractitionerRow> =
        common::update_returning(&mut tx, TABLE, COLUMNS, id, sets)
            .await
            .map_err(|e| db_error(e, CONSTRAINTS))?;
    let row = match updated {
        Some(r) => r,
        // Visible but not theirs to change: 403; invisible: 404.
        None => {
            let visible = store::get(&mut tx, id).await?.is_some();
            return Err(if visible {
                ApiError::Forbidden
            } else {
                ApiError::NotFound
            });
        }
    };
    let doc = to_doc(svc, who, row)?;
    // Changes to sealed fields, and deletions, are recorded by the table's
    // audit trigger on this transaction.
    tx.commit().await?;
    Ok(doc)
}

pub async fn delete(
    svc: &Services,
    who: &Principal,
    id: Uuid,
) -> Result<PractitionerDoc, ApiError> {
    who.require_user()?;
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = match store::delete(&mut tx, id).await? {
        Some(r) => r,
        None => {
            let visible = store::get(&mut tx, id).await?.is_some();
            return Err(if visible {
                ApiError::Forbidden
            } else {
                ApiError::NotFound
            });
        }
    };
    let doc = to_doc(svc, who, row)?;
    // Changes to sealed fields, and deletions, are recorded by the table's
    // audit trigger on this transaction.
    tx.commit().await?;
    Ok(doc)
}
