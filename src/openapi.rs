//! The OpenAPI 3.1 document, generated from the code (utoipa): every route,
//! each collection's schemas, and the error responses, served at
//! `/api/openapi.json`, with Swagger UI (vendored, builds offline) at
//! `/api/docs/`.

use utoipa::OpenApi;

use crate::domain::consent::{ConsentDoc, ConsentInput};
use crate::domain::geo::Location;
use crate::domain::herb::{Meridian, Taste, TcmProperties, Temperature};
use crate::domain::practitioner::{Contact, Status};
use crate::domain::region::Region;
use crate::domain::submission::{SubmissionStatus, Symptom};
use crate::error::{ErrorBody, ErrorItem, FieldError, ValidationData};
use crate::page::{Count, Page};

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
        crate::routes::collections::consents_list,
        crate::routes::collections::consents_count,
        crate::routes::collections::consents_create,
        crate::routes::collections::consents_revoke,
        crate::routes::health::audit,
        crate::routes::audit::export,
        crate::routes::audit::manifest,
        crate::routes::audit::my_access_report,
        crate::routes::audit::disclosures,
        crate::routes::sessions::logout,
    ),
    components(schemas(
        ErrorBody, ErrorItem, ValidationData, FieldError, Location, Status, Contact,
        TcmProperties, Taste, Temperature, Meridian, SubmissionStatus, Symptom, Region,
        ConsentDoc, ConsentInput, Page<ConsentDoc>, Count,
        crate::domain::time::Instant, crate::audit::export::Format,
        crate::routes::audit::ReportFormat, crate::domain::consent::ConsentScope,
        crate::service::report::AccountingFormat, crate::routes::sessions::LoggedOut,
    )),
    tags(
        (name = "practitioners", description = "Public directory; contact fields sealed"),
        (name = "herbs", description = "Reference data with TCM properties"),
        (name = "symptom-submissions", description = "PHI, sealed per field, visible to its owner"),
        (name = "consents", description = "A patient's sharing with practitioners"),
        (name = "audit", description = "Compliance export, and a patient's report of who accessed their records"),
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Ending a Payload session at the gateway too"),
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

/// Answers any route may give, added to every operation: 400 for a query
/// parameter it does not take, 401 for refused credentials (API routes),
/// 429 and 503 from the gate and the pool, and for bodies 413 and 415. Written once here rather than on each route.
struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let error = || {
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build()
        };
        let response = |what: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(what)
                    .content("application/json", error())
                    .build(),
            )
        };
        // Operation ids: the collections' handlers share names (list, get,
        // ..); each gets its tag in front so that every id is unique.
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for item in openapi.paths.paths.values() {
            for op in [&item.get, &item.post, &item.patch, &item.delete, &item.put]
                .into_iter()
                .flatten()
            {
                if let Some(id) = &op.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let tag = op.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(id), Some(tag)) = (&op.operation_id, tag)
                    && seen.get(id).copied().unwrap_or(0) > 1
                {
                    op.operation_id = Some(format!("{}_{id}", tag.replace('-', "_")));
                }
            }
        }
        // A created document links to reading, changing and deleting it
        // (for clients and for schemathesis' stateful runs).
        for tag in ["practitioners", "herbs", "symptom_submissions"] {
            let path = format!("/api/{}", tag.replace('_', "-"));
            let Some(created) = openapi
                .paths
                .paths
                .get_mut(&path)
                .and_then(|i| i.post.as_mut())
                .and_then(|op| op.responses.responses.get_mut("201"))
            else {
                continue;
            };
            if let RefOr::T(resp) = created {
                for (name, op) in [("Get", "get"), ("Update", "update"), ("Delete", "delete")] {
                    resp.links.insert(
                        format!("{name}Created"),
                        RefOr::T(
                            utoipa::openapi::link::LinkBuilder::new()
                                .operation_id(format!("{tag}_{op}"))
                                .parameter("id", "$response.body#/doc/id")
                                .build(),
                        ),
                    );
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                let mut add = |code: &str, what: &str| {
                    r.entry(code.to_string()).or_insert_with(|| response(what));
                };
                add(
                    "400",
                    "A parameter this route does not take, or a malformed one",
                );
                add(
                    "429",
                    "Too many requests without credentials from this client (Retry-After)",
                );
                add(
                    "503",
                    "The database is unavailable, or the anonymous share of it is in use (Retry-After)",
                );
                if api {
                    // Anonymous callers are welcome on some routes; a
                    // credential that is presented is checked everywhere.
                    add(
                        "401",
                        "Credentials were presented and refused: a bad, expired or logged-out token, or an unknown API key",
                    );
                }
                if has_body {
                    add("413", "Body too large");
                    add("415", "Not application/json");
                }
            }
        }
    }
}

/// What a create must carry: the PATCH body's schema with these fields
/// required and not null (one Rust type serves both; the service checks
/// the difference, `TryFrom<..Fields> for New..`).
const CREATE_BODIES: &[(&str, &str, &str, &[&str])] = &[
    ("/api/herbs", "HerbFields", "HerbCreate", &["name", "slug"]),
    (
        "/api/practitioners",
        "PractitionerFields",
        "PractitionerCreate",
        &["name", "slug", "location"],
    ),
    (
        "/api/symptom-submissions",
        "SubmissionFields",
        "SubmissionCreate",
        &["symptoms"],
    ),
];

/// Fields a PATCH may leave out but never set to null
/// (`domain::non_null`): `Option` in Rust, not nullable on the wire.
const NEVER_NULL: &[(&str, &[&str])] = &[
    ("HerbFields", &["name", "slug", "status", "tcmProperties"]),
    (
        "PractitionerFields",
        &["name", "slug", "modalities", "status", "location"],
    ),
    ("SubmissionFields", &["symptoms", "status"]),
];

/// Takes `null` out of a property's types.
fn not_null(prop: &mut serde_json::Value) {
    if let Some(types) = prop.get_mut("type").and_then(|t| t.as_array_mut()) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            prop["type"] = types[0].clone();
        }
    }
    if let Some(alts) = prop.get_mut("oneOf").and_then(|t| t.as_array_mut()) {
        alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
        if alts.len() == 1 {
            let only = alts[0].clone();
            let described = prop.get("description").cloned();
            *prop = only;
            if let Some(d) = described {
                prop["description"] = d;
            }
        }
    }
}

/// The OpenAPI 3.1 document: generated from the code, with the create
/// bodies made exact.
/// Every operation on patients' data takes `X-Purpose-Of-Use`, which
/// practitioners and admins must send (`Services::begin_phi`).
fn purpose_header(doc: &mut serde_json::Value) {
    let vocabulary: Vec<&str> = crate::identity::PurposeOfUse::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    let param = serde_json::json!({
        "name": "X-Purpose-Of-Use",
        "in": "header",
        "required": false,
        "description": "Why you access patients' data (HIPAA purpose of use; FHIR purposeOfEvent). \
                        Required of practitioners and admins (400 without it); a patient's own \
                        access is recorded as patient-request.",
        "schema": {"type": "string", "enum": vocabulary},
    });
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        if !(path.starts_with("/api/symptom-submissions") || path.starts_with("/api/consents")) {
            continue;
        }
        for method in ["get", "post", "patch", "delete"] {
            if let Some(op) = item.get_mut(method).and_then(|o| o.as_object_mut()) {
                let params = op
                    .entry("parameters")
                    .or_insert_with(|| serde_json::json!([]));
                if let Some(list) = params.as_array_mut() {
                    list.push(param.clone());
                }
            }
        }
    }
}

pub fn document() -> serde_json::Value {
    use utoipa::Modify;
    let mut api = ApiDoc::openapi();
    for part in crate::routes::collections::documents() {
        api.merge(part);
    }
    // After the merge: every operation, the collections' included.
    Security.modify(&mut api);
    CommonResponses.modify(&mut api);
    let mut doc = serde_json::to_value(api).expect("the document is JSON");
    for (schema, fields) in NEVER_NULL {
        for field in *fields {
            not_null(&mut doc["components"]["schemas"][*schema]["properties"][*field]);
        }
    }
    purpose_header(&mut doc);
    // At depth 1 or more, a submission's practitioner is their document.
    doc["components"]["schemas"]["SubmissionDoc"]["properties"]["practitionerId"] = serde_json::json!({
        "description": "The practitioner it is shared with: an id at depth 0 (the default), \
                        their document (as the caller may see it) at depth 1 or more",
        "oneOf": [
            {"type": "string", "format": "uuid"},
            {"$ref": "#/components/schemas/PractitionerDoc"},
            {"type": "null"}
        ]
    });
    for (path, fields, create, required) in CREATE_BODIES {
        let mut schema = doc["components"]["schemas"][*fields].clone();
        for field in *required {
            not_null(&mut schema["properties"][*field]);
        }
        schema["required"] = serde_json::json!(required);
        // utoipa 5.5 writes a link's keys in snake case; OpenAPI's are camel.
        if let Some(links) = doc["paths"][*path]["post"]["responses"]["201"]
            .get_mut("links")
            .and_then(|l| l.as_object_mut())
        {
            for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(v) = link.remove(from) {
                        link.insert(to.to_string(), v);
                    }
                }
            }
        }
        doc["components"]["schemas"][*create] = schema;
        doc["paths"][*path]["post"]["requestBody"]["content"]["application/json"]["schema"] =
            serde_json::json!({"$ref": format!("#/components/schemas/{create}")});
    }
    doc
}

async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(document())
}

/// `/api/openapi.json` and the vendored Swagger UI at `/api/docs/`.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(
        actix_web::web::resource("/api/openapi.json").route(actix_web::web::get().to(openapi_json)),
    )
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}").url(
            "/api/openapi-ui.json",
            serde_json::from_value::<utoipa::openapi::OpenApi>(document())
                .expect("the document reads back"),
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{self, Collection};

    /// The one description of what a PATCH may change (`schema`) names
    /// exactly the fields of the PATCH body the document publishes, and
    /// says which of them may be cleared as the document does: a new field
    /// fails here until it is described, and once described, the
    /// generated field-lifecycle test (tests/api/fields.rs) covers it.
    /// A collection `schema` describes with documents is served: its list
    /// path is in the document (the router and the document are driven by
    /// the same list, `routes::collections`), and every `$ref` resolves.
    #[test]
    fn every_collection_with_documents_is_served() {
        let doc = document();
        for coll in crate::schema::ALL {
            if coll.document.is_empty() {
                continue;
            }
            let path = format!("/api/{}", coll.slug);
            assert!(
                doc["paths"][&path]["get"].is_object(),
                "{} has documents but no {path} in the OpenAPI document: add it to collections! in routes/collections.rs",
                coll.slug
            );
        }
        let text = doc.to_string();
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "$ref to {name}, which is not in components"
            );
        }
    }

    #[test]
    fn the_writable_fields_are_described_once_and_match_the_bodies() {
        let doc = document();
        let bodies: [(&Collection, &str); 3] = [
            (&schema::PRACTITIONERS, "PractitionerFields"),
            (&schema::HERBS, "HerbFields"),
            (&schema::SUBMISSIONS, "SubmissionFields"),
        ];
        for (coll, body) in bodies {
            let props = doc["components"]["schemas"][body]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{body} has no properties"));
            let published: Vec<&str> = props.keys().map(String::as_str).collect();
            let mut described: Vec<&str> = coll.writes.iter().map(|w| w.name).collect();
            described.sort_unstable();
            let mut published_sorted = published.clone();
            published_sorted.sort_unstable();
            assert_eq!(
                published_sorted, described,
                "{}: schema.rs `writes` against the {body} body",
                coll.slug
            );
            for w in coll.writes {
                let prop = &props[w.name];
                let nullable = prop["type"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "null"))
                    || prop["oneOf"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["type"] == "null"));
                assert_eq!(
                    nullable, w.clearable,
                    "{}.{}: clearable in schema.rs, nullable in the document: {prop}",
                    coll.slug, w.name
                );
                assert!(
                    !w.writers.is_empty(),
                    "{}.{}: nobody writes it",
                    coll.slug,
                    w.name
                );
            }
        }
        // Every other collection takes no PATCH.
        for c in schema::ALL {
            if !bodies.iter().any(|(b, _)| b.slug == c.slug) {
                assert!(c.writes.is_empty(), "{}", c.slug);
            }
        }
    }

    /// Every vocabulary the document lists is spelled as the API takes it
    /// (the document once said `Liver` where the API takes `liver`).
    #[test]
    fn the_documents_enums_are_the_apis_spelling() {
        use crate::domain::herb::{Meridian, Taste, Temperature};
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        for (name, all) in [
            ("Taste", Taste::ALL),
            ("Temperature", Temperature::ALL),
            ("Meridian", Meridian::ALL),
            (
                "SubmissionStatus",
                crate::domain::submission::SubmissionStatus::ALL,
            ),
            ("Status", crate::schema::PUBLICATION),
        ] {
            let listed: Vec<&str> = schemas[name]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has no enum"))
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(listed, all, "{name}");
        }
        // And the API takes each one (a herb filter parses every value).
        for t in Taste::ALL {
            assert!(Taste::parse(t).is_some());
        }
    }
}
