//! Herbs: CRUD, Payload queries, and TCM property filters.
//!
//! `taste`, `temperature`, `meridian` and `action` parameters become one
//! `tcm_properties @> $1` containment (GIN `jsonb_path_ops`); `q` is
//! full-text search on the generated `search` tsvector (GIN). Several
//! values of one property must all hold, except `temperature`, of which a herb
//! has one: several temperatures mean any of them.

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::Principal;
use crate::db;
use crate::domain::herb::{
    HerbDoc, HerbFields, Meridian, TABLE, Taste, TcmProperties, Temperature,
};
use crate::domain::parse_body;
use crate::domain::practitioner::Status;
use crate::error::{ApiError, FieldError};
use crate::query::{self, FieldKind, FieldSpec, ListQuery, Page};
use crate::store::herbs::{self as store, COLUMNS, CONSTRAINTS, HerbRow, NewHerb};
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
        name: "scientificName",
        column: "scientific_name",
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
];

/// The herb list's own parameters.
pub const FILTER_PARAMS: &[&str] = &["taste", "temperature", "meridian", "action", "q"];

fn to_doc(row: HerbRow) -> Result<HerbDoc, ApiError> {
    let tcm: TcmProperties = serde_json::from_value(row.tcm_properties)
        .map_err(|e| ApiError::internal("herbs.tcm_properties holds an unknown shape", e))?;
    Ok(HerbDoc {
        id: row.id,
        name: row.name,
        slug: row.slug,
        scientific_name: row.scientific_name,
        description: row.description,
        status: Status::from_db(&row.status),
        tcm_properties: tcm,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

pub async fn create(
    svc: &Services,
    who: &Principal,
    body: serde_json::Value,
) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let f: HerbFields = parse_body(body)?;
    require(f.missing_for_create())?;
    let tcm = f.tcm_properties.unwrap_or_default().normalised();
    let new = NewHerb {
        id: new_id(),
        slug: f.slug.expect("checked"),
        name: f.name.expect("checked").trim().to_string(),
        scientific_name: f.scientific_name.flatten(),
        description: f.description.flatten(),
        status: f.status.unwrap_or_default().as_str(),
        tcm_properties: serde_json::to_value(tcm).expect("plain data"),
    };
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::insert(&mut tx, new)
        .await
        .map_err(|e| db_error(e, CONSTRAINTS))?;
    tx.commit().await?;
    to_doc(row)
}

pub async fn get(svc: &Services, who: &Principal, id: Uuid) -> Result<HerbDoc, ApiError> {
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::get(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(row)
}

/// The TCM filter parameters, checked against the vocabularies.
#[derive(Debug, Default, PartialEq)]
pub struct TcmFilter {
    pub containment: Option<serde_json::Value>,
    pub temperatures: Vec<Temperature>,
    pub text: Option<String>,
}

pub fn tcm_filter(extra: &[(String, String)]) -> Result<TcmFilter, ApiError> {
    let mut tastes = Vec::new();
    let mut meridians = Vec::new();
    let mut actions = Vec::new();
    let mut out = TcmFilter::default();
    let mut errors = Vec::new();
    for (k, v) in extra {
        match k.as_str() {
            "taste" => match Taste::parse(v) {
                Some(t) => tastes.push(t),
                None => errors.push(FieldError::new(
                    "taste",
                    format!("must be one of {}", Taste::ALL.join(", ")),
                )),
            },
            "temperature" => match Temperature::parse(v) {
                Some(t) => out.temperatures.push(t),
                None => errors.push(FieldError::new(
                    "temperature",
                    format!("must be one of {}", Temperature::ALL.join(", ")),
                )),
            },
            "meridian" => match Meridian::parse(v) {
                Some(m) => meridians.push(m),
                None => errors.push(FieldError::new(
                    "meridian",
                    format!("must be one of {}", Meridian::ALL.join(", ")),
                )),
            },
            "action" => actions.push(v.trim().to_lowercase()),
            "q" => {
                let t = v.trim();
                if !t.is_empty() {
                    out.text = Some(t.to_string());
                }
            }
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut c = serde_json::Map::new();
    if !tastes.is_empty() {
        c.insert(
            "taste".into(),
            serde_json::to_value(&tastes).expect("plain"),
        );
    }
    if !meridians.is_empty() {
        c.insert(
            "meridians".into(),
            serde_json::to_value(&meridians).expect("plain"),
        );
    }
    if !actions.is_empty() {
        c.insert(
            "actions".into(),
            serde_json::to_value(&actions).expect("plain"),
        );
    }
    if out.temperatures.len() == 1 {
        c.insert(
            "temperature".into(),
            serde_json::to_value(out.temperatures[0]).expect("plain"),
        );
        out.temperatures.clear();
    }
    if !c.is_empty() {
        out.containment = Some(serde_json::Value::Object(c));
    }
    Ok(out)
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
) -> Result<Page<HerbDoc>, ApiError> {
    let tcm = tcm_filter(&q.extra)?;
    let extra = |qb: &mut QueryBuilder<'_, Postgres>| {
        if let Some(c) = &tcm.containment {
            qb.push(" AND tcm_properties @> ").push_bind(c.clone());
        }
        if !tcm.temperatures.is_empty() {
            qb.push(" AND (");
            for (i, t) in tcm.temperatures.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push("tcm_properties @> ")
                    .push_bind(serde_json::json!({ "temperature": t.as_str() }));
            }
            qb.push(")");
        }
        if let Some(text) = &tcm.text {
            qb.push(" AND search @@ websearch_to_tsquery('english', ")
                .push_bind(text.clone())
                .push(")");
        }
    };
    let order = query::order_by(&q.sort, FIELDS, "name, id")?;
    let blind = |_: &str, _: &str, _: &str| Vec::new();
    let mut tx = db::scoped(&svc.pool, who).await?;
    let (rows, total) = common::list_rows::<HerbRow>(
        &mut tx,
        ListSpec {
            from: TABLE,
            select: COLUMNS,
            filter: q.filter.as_ref(),
            fields: FIELDS,
            blind: &blind,
            extra: &extra,
            order: &order,
            limit: q.limit as i64,
            offset: q.offset(),
            count: q.pagination,
            knn_within_m: None,
        },
    )
    .await?;
    tx.commit().await?;
    let docs = rows
        .into_iter()
        .map(to_doc)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(docs, total, &q))
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    body: serde_json::Value,
) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let f: HerbFields = parse_body(body)?;
    let mut sets: Vec<(&'static str, Value)> = Vec::new();
    if let Some(v) = f.name {
        sets.push(("name", Value::Text(Some(v.trim().to_string()))));
    }
    if let Some(v) = f.slug {
        sets.push(("slug", Value::Text(Some(v))));
    }
    if let Some(v) = f.scientific_name {
        sets.push(("scientific_name", Value::Text(v)));
    }
    if let Some(v) = f.description {
        sets.push(("description", Value::Text(v)));
    }
    if let Some(s) = f.status {
        sets.push(("status", Value::Text(Some(s.as_str().into()))));
    }
    if let Some(t) = f.tcm_properties {
        sets.push((
            "tcm_properties",
            Value::Json(serde_json::to_value(t.normalised()).expect("plain")),
        ));
    }
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row: HerbRow = common::update_returning(&mut tx, TABLE, COLUMNS, id, sets)
        .await
        .map_err(|e| db_error(e, CONSTRAINTS))?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(row)
}

pub async fn delete(svc: &Services, who: &Principal, id: Uuid) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let mut tx = db::scoped(&svc.pool, who).await?;
    let row = store::delete(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn filters_become_one_containment() {
        let f = tcm_filter(&p(&[
            ("taste", "bitter"),
            ("taste", "sweet"),
            ("temperature", "cold"),
            ("meridian", "large intestine"),
        ]))
        .unwrap();
        assert_eq!(
            f.containment,
            Some(
                serde_json::json!({"taste": ["bitter", "sweet"], "temperature": "cold", "meridians": ["large intestine"]})
            )
        );
        assert!(f.temperatures.is_empty());
        let f = tcm_filter(&p(&[("temperature", "cold"), ("temperature", "cool")])).unwrap();
        assert_eq!(f.containment, None);
        assert_eq!(f.temperatures, vec![Temperature::Cold, Temperature::Cool]);
    }

    #[test]
    fn unknown_vocabulary_is_a_validation_error() {
        let err = tcm_filter(&p(&[("taste", "umami"), ("meridian", "spine")])).unwrap_err();
        match err {
            ApiError::Validation(v) => {
                assert_eq!(
                    v.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
                    vec!["taste", "meridian"]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
