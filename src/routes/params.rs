//! Request and response shapes that exist for the OpenAPI document: the
//! query parameters each list route takes, and the `{doc, message}` answer.
//! (The parameters are parsed by `query`; these describe them.)

#![allow(dead_code)] // the parameter structs only describe; DocResponse is also the wire body

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::domain::herb::{Meridian, Taste, Temperature};

/// `{"doc":{..},"message":".."}`: the answer to a create, update or delete.
#[derive(Serialize, ToSchema)]
pub struct DocResponse<T> {
    pub doc: T,
    pub message: String,
}

/// Payload's list parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Page number from 1; a page may start at most 10,000 documents in
    /// (1,000 without credentials).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// `false`: the first `limit` documents without counting all matches
    /// (`totalDocs` is then the page's size). Faster on large result sets.
    pagination: Option<bool>,
    /// A declared sortable field; `-field` for descending.
    sort: Option<String>,
    /// `where[field][operator]=value`; nested `where[or][0]..` and
    /// `where[and][0]..`. Operators: equals, not_equals, in, not_in, like,
    /// contains, exists, greater_than(_equal), less_than(_equal), near.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    r#where: Option<String>,
    /// Payload 3's field selection: `select[field]=true` shows only those
    /// fields (and `id`), `select[field]=false` hides them; not both kinds
    /// in one request. Only selected sealed fields are decrypted.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    select: Option<String>,
    /// 0 (default) leaves relationships as ids; 1 to 10 (Payload's
    /// `maxDepth`) populates a submission's `practitionerId` with the
    /// practitioner's document, as the caller may see it.
    #[param(minimum = 0, maximum = 10)]
    depth: Option<u32>,
}

/// A consent list's parameters (consents take no filter and no sort).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ConsentListParams {
    /// Page size, 1 to 100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// Page number from 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// `false`: the page without counting all.
    pagination: Option<bool>,
}

/// A bulk change's parameters: the filter, required.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct BulkParams {
    /// As for the list: `where[field][operator]=value`, nested `or`/`and`.
    /// Required: a change of every document is not taken.
    #[param(style = DeepObject, explode, value_type = Object)]
    r#where: String,
}

/// A document's parameters (by id: GET, PATCH, DELETE; and POST's answer).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ItemParams {
    /// As for lists: `select[field]=true|false`.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    select: Option<String>,
    /// On GET: 0 (default) to 10 populates `practitionerId`. A write's
    /// answer is not populated: 0 only.
    #[param(minimum = 0, maximum = 10)]
    depth: Option<u32>,
}

/// Payload's count parameters: the filter only.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CountParams {
    /// As for the list: `where[field][operator]=value`, nested `or`/`and`.
    #[param(style = DeepObject, explode, value_type = Option<Object>)]
    r#where: Option<String>,
}

/// TCM filters on the herb list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HerbFilterParams {
    /// Repeatable; every taste must hold.
    taste: Option<Vec<Taste>>,
    /// Repeatable; any of them.
    temperature: Option<Vec<Temperature>>,
    /// Repeatable; every meridian must hold.
    meridian: Option<Vec<Meridian>>,
    /// Repeatable; every action must hold.
    action: Option<Vec<String>>,
    /// Full-text search over name, scientific name and description.
    q: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NearParams {
    #[param(minimum = -90, maximum = 90)]
    lat: f64,
    #[param(minimum = -180, maximum = 180)]
    lon: f64,
    /// Radius in kilometres (default 25).
    #[param(minimum = 0, maximum = 200)]
    radius_km: Option<f64>,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    #[param(minimum = 1)]
    page: Option<u32>,
    /// `false`: the `limit` nearest without counting everyone in the radius.
    pagination: Option<bool>,
    /// Repeatable; practitioners offering each.
    modality: Option<Vec<String>>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ExportParams {
    /// Date or RFC 3339 time (inclusive).
    from: Option<String>,
    /// Date or RFC 3339 time (exclusive).
    to: Option<String>,
    /// ndjson (default), csv or fhir (FHIR R4 AuditEvent NDJSON).
    format: Option<String>,
}
