//! The collections' HTTP handlers: translate requests into service calls
//! and results into Payload's response shapes, nothing more. Each document
//! collection is one `collection!` (its module of handlers, its routes and
//! its part of the OpenAPI document); `collections!` lists them once, for
//! the router and the document both.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

use super::respond::{self, DocResponse};
use super::shape;

use crate::domain::consent::{ConsentDoc, ConsentInput};
use crate::error::ApiError;
use crate::extract::Json;
use crate::identity::Principal;
use crate::page::{Bulk, Count, Page};
use crate::query::{self, ListParams, NoParams};
use crate::schema::{self, Collection};
use crate::service::{Services, consents};

fn created<T: Serialize>(doc: T, coll: &Collection) -> HttpResponse {
    respond::json(
        actix_web::http::StatusCode::CREATED,
        &DocResponse {
            doc,
            message: format!("{} successfully created.", coll.singular),
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

/// A bulk change's answer: each document shaped (what a consent does not
/// grant left out, as everywhere).
fn bulk<T: shape::Parts>(docs: Vec<T>, verb: &str, coll: &Collection) -> HttpResponse {
    static ALL: crate::query::Selection = crate::query::Selection::All;
    let message = format!("{verb} {} {} successfully.", docs.len(), coll.plural);
    respond::ok(&Bulk {
        docs: docs
            .into_iter()
            .map(|d| shape::one(d, &ALL))
            .collect::<Vec<_>>(),
        errors: vec![],
        message,
    })
}

type Svc = web::Data<Services>;
type Id = web::Path<Uuid>;
type Reply = Result<HttpResponse, ApiError>;

/// A document collection's module: its eight handlers (list, count, bulk
/// update and delete, create, get, update, delete), each with its OpenAPI
/// description; `register`, its routes under `/api/<slug>`; and `Doc`,
/// its part of the document. Its path and labels come from its `schema`
/// entry; its own query parameters (`params`) are one struct, parsed,
/// documented and handed to the service's list, count and bulk changes.
/// `more`: further routes of its own, registered before `/{id}`.
macro_rules! collection {
    (
        module: $module:ident,
        service: $service:ident,
        schema: $coll:ident,
        doc: $doc:ty,
        fields: $fields:ty,
        new: $new:ty,
        params: $params:ty,
        more: [$($more_path:literal => $more:path),* $(,)?] $(,)?
    ) => {
        pub mod $module {
            use super::*;
            use crate::error::ErrorBody;
            use crate::query::{BulkParams, CountParams, ItemParams};
            use crate::schema::$coll as COLL;
            use crate::service::$service;

            #[utoipa::path(get, path = format!("/api/{}", COLL.slug), tag = COLL.slug, params(ListParams, $params), responses(
                (status = 200, description = "A page of documents", body = Page<$doc>),
                (status = 400, description = "Unknown field, operator or parameter", body = ErrorBody),
                (status = 401, description = "Bad credentials", body = ErrorBody),
            ))]
            pub async fn list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let (q, own) = query::parse::<$params>(req.query_string(), &COLL, &who)?;
                let select = q.select.clone();
                let found = $service::list(&svc, &who, q, own).await?;
                Ok(respond::ok(&shape::page(found, &select)))
            }

            #[utoipa::path(get, path = format!("/api/{}/count", COLL.slug), tag = COLL.slug, params(CountParams, $params), responses(
                (status = 200, description = "How many documents match, as the same list would count them", body = Count),
                (status = 400, description = "Unknown field, operator or parameter, or a paging parameter", body = ErrorBody),
                (status = 401, description = "Bad credentials", body = ErrorBody),
            ))]
            pub async fn count(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let (q, own) = query::parse_count::<$params>(req.query_string(), &COLL, &who)?;
                let found = $service::list(&svc, &who, q, own).await?;
                Ok(respond::ok(&Count::from(found)))
            }

            #[utoipa::path(patch, path = format!("/api/{}", COLL.slug), tag = COLL.slug, params(BulkParams, $params), request_body = $fields, responses(
                (status = 200, description = "Every matching document changed, in one transaction", body = Bulk<$doc>),
                (status = 400, description = "No filter, more than 100 matches, or a validation error: nothing changed", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "One of them not yours to change: nothing changed", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not application/json", body = ErrorBody),
            ))]
            pub async fn update_many(svc: Svc, who: Principal, req: HttpRequest, body: Json<$fields>) -> Reply {
                let (q, own) = query::parse_bulk::<$params>(req.query_string(), &COLL, &who, crate::service::BULK_MAX)?;
                let docs = $service::update_many(&svc, &who, q, own, body.into_inner()).await?;
                Ok(bulk(docs, "Updated", &COLL))
            }

            #[utoipa::path(delete, path = format!("/api/{}", COLL.slug), tag = COLL.slug, params(BulkParams, $params), responses(
                (status = 200, description = "Every matching document deleted, in one transaction", body = Bulk<$doc>),
                (status = 400, description = "No filter, or more than 100 matches: nothing deleted", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "One of them not yours to delete: nothing deleted", body = ErrorBody),
            ))]
            pub async fn delete_many(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
                let (q, own) = query::parse_bulk::<$params>(req.query_string(), &COLL, &who, crate::service::BULK_MAX)?;
                let docs = $service::delete_many(&svc, &who, q, own).await?;
                Ok(bulk(docs, "Deleted", &COLL))
            }

            #[utoipa::path(post, path = format!("/api/{}", COLL.slug), tag = COLL.slug, params(ItemParams), request_body = $fields, responses(
                (status = 201, description = "Created", body = DocResponse<$doc>),
                (status = 400, description = "Validation error or malformed JSON", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Not allowed", body = ErrorBody),
                (status = 413, description = "Body too large", body = ErrorBody),
                (status = 415, description = "Not application/json", body = ErrorBody),
            ))]
            pub async fn create(svc: Svc, who: Principal, req: HttpRequest, body: Json<$fields>) -> Reply {
                let item = query::parse_write(req.query_string(), &COLL)?;
                let input: $new = body.into_inner().try_into()?;
                let doc = $service::create(&svc, &who, input).await?;
                Ok(created(shape::one(doc, &item.select), &COLL))
            }

            #[utoipa::path(get, path = format!("/api/{}/{{id}}", COLL.slug), tag = COLL.slug, params(("id" = uuid::Uuid, Path), ItemParams), responses(
                (status = 200, description = "The document", body = $doc),
                (status = 401, description = "Bad credentials", body = ErrorBody),
                (status = 404, description = "No such document, or not yours to see", body = ErrorBody),
            ))]
            pub async fn get(svc: Svc, who: Principal, id: Id, req: HttpRequest) -> Reply {
                let item = query::parse_item(req.query_string(), &COLL)?;
                let found = $service::get(&svc, &who, *id, &item).await?;
                Ok(respond::ok(&shape::one(found, &item.select)))
            }

            #[utoipa::path(patch, path = format!("/api/{}/{{id}}", COLL.slug), tag = COLL.slug, params(("id" = uuid::Uuid, Path), ItemParams), request_body = $fields, responses(
                (status = 200, description = "Updated", body = DocResponse<$doc>),
                (status = 400, description = "Validation error", body = ErrorBody),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Visible but not yours to change", body = ErrorBody),
                (status = 404, description = "No such document", body = ErrorBody),
            ))]
            pub async fn update(svc: Svc, who: Principal, id: Id, req: HttpRequest, body: Json<$fields>) -> Reply {
                let item = query::parse_write(req.query_string(), &COLL)?;
                let doc = $service::update(&svc, &who, *id, body.into_inner()).await?;
                Ok(updated(shape::one(doc, &item.select)))
            }

            #[utoipa::path(delete, path = format!("/api/{}/{{id}}", COLL.slug), tag = COLL.slug, params(("id" = uuid::Uuid, Path), ItemParams), responses(
                (status = 200, description = "Deleted", body = DocResponse<$doc>),
                (status = 401, description = "Not logged in", body = ErrorBody),
                (status = 403, description = "Visible but not yours to delete", body = ErrorBody),
                (status = 404, description = "No such document", body = ErrorBody),
            ))]
            pub async fn delete(svc: Svc, who: Principal, id: Id, req: HttpRequest) -> Reply {
                let item = query::parse_write(req.query_string(), &COLL)?;
                let doc = $service::delete(&svc, &who, *id).await?;
                Ok(deleted(shape::one(doc, &item.select)))
            }

            /// Its routes, under one scope: the prefix is compared as a
            /// string, so only the requested collection's patterns are
            /// tried (each dynamic pattern costs a regex match, for routing
            /// and again for the route label).
            pub fn register(cfg: &mut web::ServiceConfig) {
                cfg.service(
                    web::scope(&format!("/{}", COLL.slug))
                        $(.service(web::resource($more_path).route(web::get().to($more))))*
                        // Before `/{id}`, which would take "count" for an id.
                        .service(web::resource("/count").route(web::get().to(count)))
                        .service(
                            web::resource("")
                                .route(web::get().to(list))
                                .route(web::post().to(create))
                                .route(web::patch().to(update_many))
                                .route(web::delete().to(delete_many)),
                        )
                        .service(
                            web::resource("/{id}")
                                .route(web::get().to(get))
                                .route(web::patch().to(update))
                                .route(web::delete().to(delete)),
                        ),
                );
            }

            /// Its part of the OpenAPI document.
            #[derive(utoipa::OpenApi)]
            #[openapi(
                paths(list, count, update_many, delete_many, create, get, update, delete $(, $more)*),
                components(schemas($doc, $fields, Page<$doc>, Bulk<$doc>)),
            )]
            pub struct Doc;
        }
    };
}

/// The document collections, each named once: the router registers each
/// one's routes, and the OpenAPI document merges each one's part. (A
/// collection in `schema` with documents but not here fails
/// `openapi::tests::every_collection_with_documents_is_served`.)
macro_rules! collections {
    ($($module:ident),+ $(,)?) => {
        fn register_collections(cfg: &mut web::ServiceConfig) {
            $($module::register(cfg);)+
        }

        /// Each document collection's part of the OpenAPI document.
        pub fn documents() -> Vec<utoipa::openapi::OpenApi> {
            vec![$(<$module::Doc as utoipa::OpenApi>::openapi()),+]
        }
    };
}

collection! {
    module: practitioner,
    service: practitioners,
    schema: PRACTITIONERS,
    doc: crate::domain::practitioner::PractitionerDoc,
    fields: crate::domain::practitioner::PractitionerFields,
    new: crate::domain::practitioner::NewPractitioner,
    params: NoParams,
    more: ["/near" => practitioners_near],
}

collection! {
    module: herb,
    service: herbs,
    schema: HERBS,
    doc: crate::domain::herb::HerbDoc,
    fields: crate::domain::herb::HerbFields,
    new: crate::domain::herb::NewHerb,
    params: crate::service::herbs::HerbFilters,
    more: [],
}

collection! {
    module: submission,
    service: submissions,
    schema: SUBMISSIONS,
    doc: crate::domain::submission::SubmissionDoc,
    fields: crate::domain::submission::SubmissionFields,
    new: crate::domain::submission::NewSubmission,
    params: NoParams,
    more: [],
}

collections!(practitioner, herb, submission);

/// Nearest first, with `distanceM`; GiST KNN on the stored point.
#[utoipa::path(get, path = "/api/practitioners/near", tag = "practitioners", params(ListParams, crate::service::practitioners::NearParams), responses(
    (status = 200, description = "A page of practitioners, nearest first", body = Page<crate::domain::practitioner::PractitionerDoc>),
    (status = 400, description = "Bad point or radius", body = crate::error::ErrorBody),
))]
pub async fn practitioners_near(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let (q, near) = query::parse(req.query_string(), &schema::PRACTITIONERS, &who)?;
    let select = q.select.clone();
    let found = crate::service::practitioners::near(&svc, &who, q, near).await?;
    Ok(respond::ok(&shape::page(found, &select)))
}

#[utoipa::path(get, path = "/api/consents", tag = "consents", params(ListParams), responses(
    (status = 200, description = "Your consents, and those naming you as practitioner", body = Page<ConsentDoc>),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn consents_list(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let (q, NoParams {}) = query::parse(req.query_string(), &schema::CONSENTS, &who)?;
    let select = q.select.clone();
    let found = consents::list(&svc, &who, q).await?;
    Ok(respond::ok(&shape::page(found, &select)))
}

#[utoipa::path(get, path = "/api/consents/count", tag = "consents", responses(
    (status = 200, description = "How many consents you may see", body = Count),
    (status = 400, description = "A parameter consents do not take", body = crate::error::ErrorBody),
    (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
))]
pub async fn consents_count(svc: Svc, who: Principal, req: HttpRequest) -> Reply {
    let (q, NoParams {}) = query::parse_count(req.query_string(), &schema::CONSENTS, &who)?;
    let found = consents::list(&svc, &who, q).await?;
    Ok(respond::ok(&Count::from(found)))
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
            (doc, true) => created(doc, &schema::CONSENTS),
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

/// The collections' routes, inside the `/api` scope.
pub fn configure(cfg: &mut web::ServiceConfig) {
    register_collections(cfg);
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
