//! The OpenAPI 3.1 document, generated from the code (utoipa): every route,
//! each collection's schemas, and the error responses, served at
//! `/api/openapi.json`, with Swagger UI (vendored, builds offline) at
//! `/api/docs/`.

use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::domain::geo::Location;
use crate::domain::herb::{HerbDoc, HerbFields, Meridian, Taste, TcmProperties, Temperature};
use crate::domain::practitioner::{Contact, PractitionerDoc, PractitionerFields, Status};
use crate::domain::submission::{SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom};
use crate::error::FieldError;
use crate::query::Page;
use crate::service::consents::{ConsentDoc, ConsentInput};

/// `{"errors":[..]}`: every error. Validation errors carry
/// `name: "ValidationError"` and `data.errors[]` (path and message); a 5xx
/// carries only "Something went wrong." and the request id.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub errors: Vec<ErrorItem>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    pub message: String,
    pub name: Option<String>,
    pub data: Option<ValidationData>,
    pub request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ValidationData {
    pub errors: Vec<FieldError>,
}

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
    limit: Option<u32>,
    /// Page number from 1.
    page: Option<u32>,
    /// `false`: the first `limit` documents without counting all matches
    /// (`totalDocs` is then the page's size). Faster on large result sets.
    pagination: Option<bool>,
    /// A declared sortable field; `-field` for descending.
    sort: Option<String>,
    /// `where[field][operator]=value`; nested `where[or][0]..` and
    /// `where[and][0]..`. Operators: equals, not_equals, in, not_in, like,
    /// contains, exists, greater_than(_equal), less_than(_equal), near.
    #[param(style = DeepObject, explode, value_type = Object)]
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
    lat: f64,
    lon: f64,
    /// Radius in kilometres (default 25).
    radius_km: Option<f64>,
    limit: Option<u32>,
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "phi-gateway",
        description = "Encrypted PHI storage gateway for a health CMS. Speaks Payload CMS's conventions: \
                       list pages, {doc, message} writes, where[field][op] queries, JWT or API-Key auth."
    ),
    paths(
        crate::routes::health::alive,
        crate::routes::health::database,
        crate::routes::health::metrics,
        crate::routes::collections::practitioner::list,
        crate::routes::collections::practitioner::create,
        crate::routes::collections::practitioner::get,
        crate::routes::collections::practitioner::update,
        crate::routes::collections::practitioner::delete,
        crate::routes::collections::practitioners_near,
        crate::routes::collections::herb::list,
        crate::routes::collections::herb::create,
        crate::routes::collections::herb::get,
        crate::routes::collections::herb::update,
        crate::routes::collections::herb::delete,
        crate::routes::collections::submission::list,
        crate::routes::collections::submission::create,
        crate::routes::collections::submission::get,
        crate::routes::collections::submission::update,
        crate::routes::collections::submission::delete,
        crate::routes::collections::consents_list,
        crate::routes::collections::consents_create,
        crate::routes::collections::consents_revoke,
        crate::routes::audit::export,
    ),
    components(schemas(
        ErrorBody, ErrorItem, ValidationData, FieldError, Location, Status, Contact,
        PractitionerDoc, PractitionerFields, HerbDoc, HerbFields, TcmProperties, Taste, Temperature, Meridian,
        SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom, ConsentDoc, ConsentInput,
        Page<PractitionerDoc>, Page<HerbDoc>, Page<SubmissionDoc>, Page<ConsentDoc>,
    )),
    modifiers(&Security),
    tags(
        (name = "practitioners", description = "Public directory; contact fields sealed"),
        (name = "herbs", description = "Reference data with TCM properties"),
        (name = "symptom-submissions", description = "PHI, sealed per field, visible to its owner"),
        (name = "consents", description = "A patient's sharing with practitioners"),
        (name = "audit", description = "Compliance export"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "payload_jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Payload CMS JWT (HS256); `JWT <token>` is accepted too",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`<collection> API-Key <key>` for service and auditor keys",
            ))),
        );
    }
}
