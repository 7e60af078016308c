//! The OpenAPI 3.1 document, generated from the code (utoipa): every route,
//! each collection's schemas, and the error responses, served at
//! `/api/openapi.json`, with Swagger UI (vendored, builds offline) at
//! `/api/docs/`.

use utoipa::OpenApi;

use crate::domain::consent::{ConsentDoc, ConsentInput};
use crate::domain::geo::Location;
use crate::domain::herb::{HerbDoc, HerbFields, Meridian, Taste, TcmProperties, Temperature};
use crate::domain::practitioner::{Contact, PractitionerDoc, PractitionerFields, Status};
use crate::domain::region::Region;
use crate::domain::submission::{SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom};
use crate::error::{ErrorBody, ErrorItem, FieldError, ValidationData};
use crate::query::Page;

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
        crate::routes::collections::practitioner::count,
        crate::routes::collections::practitioner::update_many,
        crate::routes::collections::practitioner::delete_many,
        crate::routes::collections::practitioner::create,
        crate::routes::collections::practitioner::get,
        crate::routes::collections::practitioner::update,
        crate::routes::collections::practitioner::delete,
        crate::routes::collections::practitioners_near,
        crate::routes::collections::herb::list,
        crate::routes::collections::herb::count,
        crate::routes::collections::herb::update_many,
        crate::routes::collections::herb::delete_many,
        crate::routes::collections::herb::create,
        crate::routes::collections::herb::get,
        crate::routes::collections::herb::update,
        crate::routes::collections::herb::delete,
        crate::routes::collections::submission::list,
        crate::routes::collections::submission::count,
        crate::routes::collections::submission::update_many,
        crate::routes::collections::submission::delete_many,
        crate::routes::collections::submission::create,
        crate::routes::collections::submission::get,
        crate::routes::collections::submission::update,
        crate::routes::collections::submission::delete,
        crate::routes::collections::consents_list,
        crate::routes::collections::consents_count,
        crate::routes::collections::consents_create,
        crate::routes::collections::consents_revoke,
        crate::routes::health::audit,
        crate::routes::audit::export,
        crate::routes::audit::manifest,
    ),
    components(schemas(
        ErrorBody, ErrorItem, ValidationData, FieldError, Location, Status, Contact,
        PractitionerDoc, PractitionerFields, HerbDoc, HerbFields, TcmProperties, Taste, Temperature, Meridian,
        SubmissionDoc, SubmissionFields, SubmissionStatus, Symptom, Region, ConsentDoc, ConsentInput,
        Page<PractitionerDoc>, Page<HerbDoc>, Page<SubmissionDoc>, Page<ConsentDoc>, crate::query::Count,
        crate::query::Bulk<PractitionerDoc>, crate::query::Bulk<HerbDoc>, crate::query::Bulk<SubmissionDoc>,
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

/// The OpenAPI 3.1 document, generated from the code.
async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(ApiDoc::openapi())
}

/// `/api/openapi.json` and the vendored Swagger UI at `/api/docs/`.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(
        actix_web::web::resource("/api/openapi.json").route(actix_web::web::get().to(openapi_json)),
    )
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
            .url("/api/openapi-ui.json", ApiDoc::openapi()),
    );
}
