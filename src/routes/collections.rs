//! The three collections' HTTP handlers: translate requests into service
//! calls and results into Payload's response shapes, nothing more.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

use super::{respond, shape};

use crate::domain::consent::{ConsentDoc, ConsentInput};
use crate::error::ApiError;
use crate::extract::Json;
use crate::identity::Principal;
use crate::query::{self, Bulk, Page, param, repeatable};
use crate::routes::params::DocResponse;
use crate::schema;
use crate::service::{Services, consents, herbs, practitioners, submissions};

fn created<T: Serialize>(doc: T, singular: &str) -> HttpResponse {
    respond::json(
        actix_web::http::StatusCode::CREATED,
        &DocResponse {
            doc,
            message: format!("{singular} successfully created."),
        },
    )
}

fn updated<T: Serialize>(doc: T) -> HttpResponse {
    respond::ok(&DocResponse {
        doc,
        message: "Updated successfully.".into(),
    })
}

fn deleted<T: Serialize>(doc: T) -> HttpResponse {
    respond::ok(&DocResponse {
        doc,
        message: "Deleted successfully.".into(),
    })
}

fn bulk<T: Serialize>(docs: Vec<T>, verb: &str, plural: &str) -> HttpResponse {
    let message = format!("{verb} {} {plural} successfully.", docs.len());
    respond::ok(&Bulk {
        docs,
        errors: vec![],
        message,
    })
}

type Svc = web::Data<Services>;
type Id = web::Path<Uuid>;
type Reply = Result<HttpResponse, ApiError>;

/// Five handlers per collection, identical in shape, each with its OpenAPI
/// description.
macro_rules! collection {
    ($module:ident, $service:ident, $singular:literal, $plural:literal, $coll:expr, $extra:expr, $list:literal, $count:literal, $item:literal, $tag:literal,
     $doc:ty, $fields:ty, $new:ty $(, $params:ty)?) => {
        pub mod $module {
            use super::*;
            use crate::error::ErrorBody;
            use crate::routes::params::ListParams;

            #[utoipa::path(get, path = $list, tag = $tag, params(ListParams $(, $params)?), responses(
                (status = 200, description = "A page of documents", body = Page<$doc>),
                (status = 400, description = "Unknown field, operator or parameter", body = ErrorBody),
                (status = 401, description = "Bad credentials", body = ErrorBody),
            ))]
            pub async fn list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let q = query::parse(req.query_string(), &$coll, $extra, &who)?;
                let select = q.select.clone();
                let found = $service::list(&svc, &who, q).await?;
                Ok(respond::ok(&shape::page(found, &select)))
            }

            #[utoipa::path(get, path = $count, tag = $tag, params(crate::routes::params::CountParams $(, $params)?), responses(
                (status = 200, description = "How many documents match, as the same list would count them", body = crate::query::Count),
                (status = 400, description = "Unknown field, operator or parameter, or a paging parameter", body = ErrorBody),
                (status = 401, description = "Bad credentials", body = ErrorBody),
            ))]
            pub async fn count(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let q = query::parse_count(req.query_string(), &$coll, $extra, &who)?;
                let found = $service::list(&svc, &who, q).await?;
                Ok(respond::ok(&crate::query::Count::from(found)))
            }

            #[utoipa::path(patch, path = $list, tag = $tag, params(crate::routes::params::BulkParams $(, $params)?), request_body = $fields, responses(
                (status = 200, description = "Every matching document changed, in one transaction", body = Bulk<$doc>),
                (status = 400, description = "No filter, more than 100 matches, or a validation error: nothing changed", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "One of them not yours to change: nothing changed", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not application/json", body = ErrorBody),
            ))]
            pub async fn update_many(svc: Svc, who: Principal, req: HttpRequest, body: Json<$fields>) -> Reply {
                let q = query::parse_bulk(req.query_string(), &$coll, $extra, &who, crate::service::BULK_MAX)?;
                let docs = $service::update_many(&svc, &who, q, body.into_inner()).await?;
                Ok(bulk(docs, "Updated", $plural))
            }

            #[utoipa::path(delete, path = $list, tag = $tag, params(crate::routes::params::BulkParams $(, $params)?), responses(
                (status = 200, description = "Every matching document deleted, in one transaction", body = Bulk<$doc>),
                (status = 400, description = "No filter, or more than 100 matches: nothing deleted", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "One of them not yours to delete: nothing deleted", body = ErrorBody),
            ))]
            pub async fn delete_many(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let q = query::parse_bulk(req.query_string(), &$coll, $extra, &who, crate::service::BULK_MAX)?;
                let docs = $service::delete_many(&svc, &who, q).await?;
                Ok(bulk(docs, "Deleted", $plural))
            }

            #[utoipa::path(post, path = $list, tag = $tag, params(crate::routes::params::ItemParams), request_body = $fields, responses(
                (status = 201, description = "Created", body = DocResponse<$doc>),
                (status = 400, description = "Validation error or malformed JSON", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Not allowed", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not application/json", body = ErrorBody),
            ))]
            pub async fn create(svc: Svc, who: Principal, req: HttpRequest, body: Json<$fields>) -> Reply {
                let item = query::parse_write(req.query_string(), &$coll)?;
                let input: $new = body.into_inner().try_into()?;
                let doc = $service::create(&svc, &who, input).await?;
                Ok(created(shape::one(doc, &item.select), $singular))
            }

            #[utoipa::path(get, path = $item, tag = $tag, params(("id" = uuid::Uuid, Path), crate::routes::params::ItemParams), responses(
                (status = 200, description = "The document", body = $doc),
                (status = 401, description = "Bad credentials", body = ErrorBody),
                (status = 404, description = "No such document, or not yours to see", body = ErrorBody),
            ))]
            pub async fn get(svc: Svc, who: Principal, id: Id, req: HttpRequest) -> Reply {
                let item = query::parse_item(req.query_string(), &$coll)?;
                let found = $service::get(&svc, &who, *id, &item).await?;
                Ok(respond::ok(&shape::one(found, &item.select)))
            }

            #[utoipa::path(patch, path = $item, tag = $tag, params(("id" = uuid::Uuid, Path), crate::routes::params::ItemParams), request_body = $fields, responses(
                (status = 200, description = "Updated", body = DocResponse<$doc>),
                (status = 400, description = "Validation error", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Visible but not yours to change", body = ErrorBody),
                (status = 404, description = "No such document", body = ErrorBody),
            ))]
            pub async fn update(svc: Svc, who: Principal, id: Id, req: HttpRequest, body: Json<$fields>) -> Reply {
                let item = query::parse_write(req.query_string(), &$coll)?;
                let doc = $service::update(&svc, &who, *id, body.into_inner()).await?;
                Ok(updated(shape::one(doc, &item.select)))
            }

            #[utoipa::path(delete, path = $item, tag = $tag, params(("id" = uuid::Uuid, Path), crate::routes::params::ItemParams), responses(
                (status = 200, description = "Deleted", body = DocResponse<$doc>),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Visible but not yours to delete", body = ErrorBody),
                (status = 404, description = "No such document", body = ErrorBody),
            ))]
            pub async fn delete(svc: Svc, who: Principal, id: Id, req: HttpRequest) -> Reply {
                let item = query::parse_write(req.query_string(), &$coll)?;
                let doc = $service::delete(&svc, &who, *id).await?;
                Ok(deleted(shape::one(doc, &item.select)))
            }
        }
    };
}

collection!(
    practitioner,
    practitioners,
    "Practitioner",
    "Practitioners",
    schema::PRACTITIONERS,
    &[],
    "/api/practitioners",
    "/api/practitioners/count",
    "/api/practitioners/{id}",
    "practitioners",
    crate::domain::practitioner::PractitionerDoc,
    crate::domain::practitioner::PractitionerFields,
    crate::domain::practitioner::NewPractitioner
);
collection!(
    herb,
    herbs,
    "Herb",
    "Herbs",
    schema::HERBS,
    herbs::FILTER_PARAMS,
    "/api/herbs",
    "/api/herbs/count",
    "/api/herbs/{id}",
    "herbs",
    crate::domain::herb::HerbDoc,
    crate::domain::herb::HerbFields,
    crate::domain::herb::NewHerb,
    crate::routes::params::HerbFilterParams
);
collection!(
    submission,
    submissions,
    "Symptom submission",
    "Symptom submissions",
    schema::SUBMISSIONS,
    &[],
    "/api/symptom-submissions",
    "/api/symptom-submissions/count",
    "/api/symptom-submissions/{id}",
    "symptom-submissions",
    crate::domain::submission::SubmissionDoc,
    crate::domain::submission::SubmissionFields,
    crate::domain::submission::NewSubmission
);

/// The `/near` route's own parameters.
const NEAR_PARAMS: &[query::ParamSpec] = &[
    param("lat"),
    param("lon"),
    param("radius_km"),
    repeatable("modality"),
];

/// Nearest first, with `distanceM`; GiST KNN on the stored point.
#[utoipa::path(get, path = "/api/practitioners/near", tag = "practitioners", params(crate::routes::params::NearParams), responses(
    (status = 200, description = "A page of practitioners, nearest first", body = Page<crate::domain::practitioner::PractitionerDoc>),
    (status = 400, description = "Bad point or radius", body = crate::error::ErrorBody),
))]
pub async fn practitioners_near(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let q = query::parse(
        req.query_string(),
        &schema::PRACTITIONERS,
        NEAR_PARAMS,
        &who,
    )?;
    let select = q.select.clone();
    let found = practitioners::near(&svc, &who, q).await?;
    Ok(respond::ok(&shape::page(found, &select)))
}

#[utoipa::path(get, path = "/api/consents", tag = "consents", params(crate::routes::params::ConsentListParams), responses(
    (status = 200, description = "Your consents, and those naming you as practitioner", body = Page<ConsentDoc>),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn consents_list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let q = query::parse(req.query_string(), &schema::CONSENTS, &[], &who)?;
    let select = q.select.clone();
    let found = consents::list(&svc, &who, q).await?;
    Ok(respond::ok(&shape::page(found, &select)))
}

#[utoipa::path(get, path = "/api/consents/count", tag = "consents", responses(
    (status = 200, description = "How many consents you may see", body = crate::query::Count),
    (status = 400, description = "A parameter consents do not take", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn consents_count(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let q = query::parse_count(req.query_string(), &schema::CONSENTS, &[], &who)?;
    let found = consents::list(&svc, &who, q).await?;
    Ok(respond::ok(&crate::query::Count::from(found)))
}

#[utoipa::path(post, path = "/api/consents", tag = "consents", request_body = ConsentInput, responses(
    (status = 200, description = "Exactly this consent was given already: it is answered again, unchanged", body = DocResponse<ConsentDoc>),
    (status = 201, description = "Shared", body = DocResponse<ConsentDoc>),
    (status = 400, description = "Cannot share with this practitioner, not your submission, or expiry in the past", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn consents_create(svc: Svc, who: Principal, body: Json<ConsentInput>) -> Reply {
    Ok(
        match consents::create(&svc, &who, body.into_inner()).await? {
            (doc, true) => created(doc, "Consent"),
            (doc, false) => respond::ok(&DocResponse {
                doc,
                message: "Consent already given.".into(),
            }),
        },
    )
}

#[utoipa::path(delete, path = "/api/consents/{id}", tag = "consents", params(("id" = uuid::Uuid, Path)), responses(
    (status = 200, description = "Revoked; effective on the next request", body = DocResponse<ConsentDoc>),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    (status = 404, description = "No such consent of yours", body = crate::error::ErrorBody),
))]
pub async fn consents_revoke(svc: Svc, who: Principal, id: Id) -> Reply {
    Ok(deleted(consents::revoke(&svc, &who, *id).await?))
}

/// A collection's routes under one scope: the prefix is compared as a
/// string, so only the requested collection's patterns are tried (each
/// dynamic pattern costs a regex match, for routing and again for the
/// route label).
macro_rules! register {
    ($cfg:expr, $path:literal, $module:ident $(, $first:expr)?) => {
        $cfg.service(
            web::scope($path)
                $(.service($first))?
                // Before `/{id}`, which would take "count" for an id.
                .service(web::resource("/count").route(web::get().to($module::count)))
                .service(
                    web::resource("")
                        .route(web::get().to($module::list))
                        .route(web::post().to($module::create))
                        .route(web::patch().to($module::update_many))
                        .route(web::delete().to($module::delete_many)),
                )
                .service(
                    web::resource("/{id}")
                        .route(web::get().to($module::get))
                        .route(web::patch().to($module::update))
                        .route(web::delete().to($module::delete)),
                ),
        );
    };
}

/// The collections' routes, inside the `/api` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register!(
        cfg,
        "/practitioners",
        practitioner,
        web::resource("/near").route(web::get().to(practitioners_near))
    );
    register!(cfg, "/herbs", herb);
    register!(cfg, "/symptom-submissions", submission);
    cfg.service(
        web::scope("/consents")
            .service(web::resource("/count").route(web::get().to(consents_count)))
            .service(
                web::resource("")
                    .route(web::get().to(consents_list))
                    .route(web::post().to(consents_create)),
            )
            .service(web::resource("/{id}").route(web::delete().to(consents_revoke))),
    );
}
