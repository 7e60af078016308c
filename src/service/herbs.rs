//! Herbs: CRUD, Payload queries, and TCM property filters.
//!
//! `taste`, `temperature`, `meridian` and `action` parameters become one
//! `tcm_properties @> $1` containment (GIN `jsonb_path_ops`); `q` is
//! full-text search on the generated `search` tsvector (GIN). Several
//! values of one property must all hold, except `temperature`, of which a herb
//! has one: several temperatures mean any of them.

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;
use validator::Validate;

use super::{Services, client_error, new_id};
use crate::domain::herb::{
    HerbDoc, HerbFields, Meridian, NewHerb, Taste, TcmProperties, Temperature,
};
use crate::domain::practitioner::Status;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::page::Page;
use crate::query::ListQuery;
use crate::query::params::params;
use crate::schema::HERBS;
use crate::store;
pub use crate::store::herbs::TcmFilter;
use crate::store::herbs::{self as table, HerbRow, NewRow, Patch};

/// The herb list's own parameters (also taken by its count and bulk
/// changes): TCM properties, each of which may be given several times
/// (all must hold; several temperatures mean any of them), and full-text
/// search.
#[derive(Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HerbFilters {
    /// Repeatable; every taste must hold.
    #[serde(default)]
    pub taste: Vec<Taste>,
    /// Repeatable; any of them.
    #[serde(default)]
    pub temperature: Vec<Temperature>,
    /// Repeatable; every meridian must hold.
    #[serde(default)]
    pub meridian: Vec<Meridian>,
    /// Repeatable; every action must hold.
    #[serde(default)]
    #[validate(length(max = 30, message = "at most 30 actions"))]
    pub action: Vec<String>,
    /// Full-text search over name, scientific name and description.
    pub q: Option<String>,
}

params!(HerbFilters);

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
    let mut tx = svc.pool.begin(who).await?;
    let row = insert_in(&mut tx, input).await?;
    tx.commit().await?;
    to_doc(row)
}

/// Inserts a new herb on the caller's transaction.
pub(crate) async fn insert_in(
    tx: &mut crate::store::Tx,
    input: NewHerb,
) -> Result<HerbRow, ApiError> {
    let row = NewRow {
        id: new_id(),
        slug: input.slug,
        name: input.name,
        scientific_name: input.scientific_name,
        description: input.description,
        status: input.status.as_str(),
        tcm_properties: serde_json::to_value(input.tcm_properties).expect("plain data"),
    };
    table::insert(tx, row)
        .await
        .map_err(|e| client_error(&HERBS, e))
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

/// The TCM filters as the store's containment and text conditions.
pub fn tcm_filter(f: &HerbFilters) -> TcmFilter {
    let HerbFilters {
        taste: tastes,
        temperature: temperatures,
        meridian: meridians,
        action,
        q,
    } = f;
    let actions: Vec<String> = action.iter().map(|a| a.trim().to_lowercase()).collect();
    let mut out = TcmFilter {
        text: q
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        ..TcmFilter::default()
    };
    let mut c = serde_json::Map::new();
    if !tastes.is_empty() {
        c.insert("taste".into(), serde_json::to_value(tastes).expect("plain"));
    }
    if !meridians.is_empty() {
        c.insert(
            "meridians".into(),
            serde_json::to_value(meridians).expect("plain"),
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
    out
}

pub async fn list(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
    filters: HerbFilters,
) -> Result<Page<HerbDoc>, ApiError> {
    let tcm = tcm_filter(&filters);
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
async fn bulk_ids(
    tx: &mut store::Tx,
    q: &ListQuery,
    filters: &HerbFilters,
) -> Result<Vec<Uuid>, ApiError> {
    let spec = tcm_filter(filters);
    let found = table::list(tx, q, &spec).await?;
    super::bulk_size(found.rows.len())?;
    Ok(found.rows.iter().map(|r| r.id).collect())
}

/// `PATCH /api/herbs?where=..`: all matching herbs in one transaction, or none.
pub async fn update_many(
    svc: &Services,
    who: &Principal,
    q: ListQuery,
    filters: HerbFilters,
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
    for id in bulk_ids(&mut tx, &q, &filters).await? {
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
    filters: HerbFilters,
) -> Result<Vec<HerbDoc>, ApiError> {
    who.require_staff()?;
    let mut tx = svc.pool.begin(who).await?;
    let mut docs = Vec::new();
    for id in bulk_ids(&mut tx, &q, &filters).await? {
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

    fn p(query: &str) -> HerbFilters {
        crate::query::parse_params(query).unwrap()
    }

    #[test]
    fn filters_become_one_containment() {
        let f = tcm_filter(&p(
            "taste=bitter&taste=sweet&temperature=cold&meridian=large%20intestine",
        ));
        assert_eq!(
            f.containment,
            Some(
                serde_json::json!({"taste": ["bitter", "sweet"], "temperature": "cold", "meridians": ["large intestine"]})
            )
        );
        assert!(f.any_temperature.is_empty());
        let f = tcm_filter(&p("temperature=cold&temperature=cool"));
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
    fn unknown_vocabulary_is_a_validation_error_naming_the_parameter() {
        let err =
            crate::query::parse_params::<HerbFilters>("taste=umami&meridian=spine").unwrap_err();
        match err {
            ApiError::Validation(v) => {
                assert_eq!(v.len(), 1);
                assert_eq!(v[0].path, "taste");
                assert!(v[0].message.contains("bitter"), "{:?}", v[0]);
                assert!(!v[0].message.contains("umami"), "{:?}", v[0]);
            }
            other => panic!("{other:?}"),
        }
    }
}
