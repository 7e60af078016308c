//! Herbs: CRUD, Payload queries, and TCM property filters.
//!
//! `taste`, `temperature`, `meridian` and `action` parameters become one
//! `tcm_properties @> $1` containment (GIN `jsonb_path_ops`); `q` is
//! full-text search on the generated `search` tsvector (GIN). Several
//! values of one property must all hold, except `temperature`, of which a herb
//! has one: several temperatures mean any of them.

use uuid::Uuid;

use super::{Services, client_error, new_id};
use crate::domain::herb::{
    HerbDoc, HerbFields, Meridian, NewHerb, Taste, TcmProperties, Temperature,
};
use crate::domain::practitioner::Status;
use crate::error::{ApiError, FieldError};
use crate::identity::Principal;
use crate::query::{ListQuery, Page, ParamSpec, param, repeatable};
use crate::schema::HERBS;
use crate::store;
pub use crate::store::herbs::TcmFilter;
use crate::store::herbs::{self as table, HerbRow, NewRow, Patch};

/// The herb list's own parameters: each TCM property may be given several
/// times (all must hold; several temperatures mean any of them).
pub const FILTER_PARAMS: &[ParamSpec] = &[
    repeatable("taste"),
    repeatable("temperature"),
    repeatable("meridian"),
    repeatable("action"),
    param("q"),
];

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

pub async fn create(svc: &Services, who: &Principal, input: NewHerb) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let row = NewRow {
        id: new_id(),
        slug: input.slug,
        name: input.name,
        scientific_name: input.scientific_name,
        description: input.description,
        status: input.status.as_str(),
        tcm_properties: serde_json::to_value(input.tcm_properties).expect("plain data"),
    };
    let mut tx = svc.pool.begin(who).await?;
    let row = table::insert(&mut tx, row)
        .await
        .map_err(|e| client_error(&HERBS, e))?;
    tx.commit().await?;
    to_doc(row)
}

/// `item`: a herb has no sealed field and no relationship; its `select` is
/// applied as the document is written out.
pub async fn get(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    _item: &crate::query::ItemQuery,
) -> Result<HerbDoc, ApiError> {
    let mut tx = svc.directory(who).begin(who).await?;
    let row = table::get(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(row)
}

/// The TCM filter parameters, checked against the vocabularies.
pub fn tcm_filter(extra: &[(String, String)]) -> Result<TcmFilter, ApiError> {
    let mut tastes = Vec::new();
    let mut meridians = Vec::new();
    let mut actions = Vec::new();
    let mut temperatures: Vec<Temperature> = Vec::new();
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
                Some(t) => temperatures.push(t),
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
    if temperatures.len() == 1 {
        c.insert(
            "temperature".into(),
            serde_json::to_value(temperatures[0]).expect("plain"),
        );
    } else {
        out.any_temperature = temperatures
            .iter()
            .map(|t| serde_json::json!({ "temperature": t.as_str() }))
            .collect();
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
    let tcm = tcm_filter(&q.params)?;
    let mut tx = svc.directory(who).begin(who).await?;
    let found = table::list(&mut tx, &q, &tcm).await?;
    tx.commit().await?;
    let docs = found
        .rows
        .into_iter()
        .map(to_doc)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(docs, found.total, found.capped, &q))
}

/// Destructured whole: a new field does not build until it is passed on.
fn patch_for(f: &HerbFields) -> Patch {
    let HerbFields {
        name,
        slug,
        scientific_name,
        description,
        status,
        tcm_properties,
    } = f;
    Patch {
        name: name.as_ref().map(|v| v.trim().to_string()),
        slug: slug.clone(),
        scientific_name: scientific_name.clone(),
        description: description.clone(),
        status: status.map(Status::as_str),
        tcm_properties: tcm_properties
            .as_ref()
            .map(|t| serde_json::to_value(t.clone().normalised()).expect("plain")),
    }
}

/// The herbs a bulk request matches (its `where` and TCM filters), at most
/// [`super::BULK_MAX`].
async fn bulk_ids(tx: &mut store::Tx, q: &ListQuery) -> Result<Vec<Uuid>, ApiError> {
    let spec = tcm_filter(&q.params)?;
    let found = table::list(tx, q, &spec).await?;
    super::bulk_size(found.rows.len())?;
    Ok(found.rows.iter().map(|r| r.id).collect())
}

/// `PATCH /api/herbs?where=..`: all matching herbs in one transaction, or none.
pub async fn update_many(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
    f: HerbFields,
) -> Result<Vec<HerbDoc>, ApiError> {
    who.require_staff()?;
    if f.slug.is_some() {
        return Err(ApiError::bad_request(
            "slug is unique: set it one herb at a time.",
        ));
    }
    let mut tx = svc.pool.begin(who).await?;
    let mut docs = Vec::new();
    for id in bulk_ids(&mut tx, &q).await? {
        let row = table::update(&mut tx, id, patch_for(&f))
            .await
            .map_err(|e| client_error(&HERBS, e))?
            .ok_or(ApiError::NotFound)?;
        docs.push(to_doc(row)?);
    }
    tx.commit().await?;
    Ok(docs)
}

/// `DELETE /api/herbs?where=..`: all matching herbs, or none.
pub async fn delete_many(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
) -> Result<Vec<HerbDoc>, ApiError> {
    who.require_staff()?;
    let mut tx = svc.pool.begin(who).await?;
    let mut docs = Vec::new();
    for id in bulk_ids(&mut tx, &q).await? {
        let row = table::delete(&mut tx, id)
            .await?
            .ok_or(ApiError::NotFound)?;
        docs.push(to_doc(row)?);
    }
    tx.commit().await?;
    Ok(docs)
}

pub async fn update(
    svc: &Services,
    who: &Principal,
    id: Uuid,
    f: HerbFields,
) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let patch = patch_for(&f);
    let mut tx = svc.pool.begin(who).await?;
    let row = table::update(&mut tx, id, patch)
        .await
        .map_err(|e| client_error(&HERBS, e))?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    to_doc(row)
}

pub async fn delete(svc: &Services, who: &Principal, id: Uuid) -> Result<HerbDoc, ApiError> {
    who.require_staff()?;
    let mut tx = svc.pool.begin(who).await?;
    let row = table::delete(&mut tx, id)
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
        assert!(f.any_temperature.is_empty());
        let f = tcm_filter(&p(&[("temperature", "cold"), ("temperature", "cool")])).unwrap();
        assert_eq!(f.containment, None);
        assert_eq!(
            f.any_temperature,
            vec![
                serde_json::json!({"temperature": "cold"}),
                serde_json::json!({"temperature": "cool"})
            ]
        );
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
